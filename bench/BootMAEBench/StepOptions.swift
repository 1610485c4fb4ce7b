import CBLAS  // malloc.h (mallopt)
import Foundation
import Tensor

/// `--compare-shards 1,2` → [1, 2].
func shardCounts(_ list: String) throws -> [Int] {
    let counts = list.split(separator: ",").map { Int($0) }
    guard !counts.isEmpty, counts.allSatisfy({ ($0 ?? 0) > 0 }) else {
        throw BenchError("--compare-shards needs positive counts separated by commas, got '\(list)'")
    }
    return counts.map { $0! }
}

/// `--threads` (default 2) and `--shards` (default: one per thread, as the trainers split a batch),
/// with the numeric runtime configured for them and `--malloc-arenas` applied.
func configureStepRuntime(_ options: Options) throws -> (threads: Int, shards: Int) {
    let threads = try options.int("--threads", default: 2)
    let shards = try options.int("--shards", default: threads)
    TensorRuntime.configure(threads: threads)
    try applyMallocArenas(options)
    return (threads, shards)
}

/// `--malloc-arenas N`: glibc's limit on malloc arenas (threads beyond it share arenas), set after
/// `TensorRuntime.configure` (which sets 1) and before any worker thread allocates, to measure the
/// page faults each setting costs; 16 is glibc's default on 2 cores (8 per core). glibc fixes the limit when a thread first needs an arena of its own, so one
/// process can measure only one setting: compare processes run one after another.
func applyMallocArenas(_ options: Options) throws {
    guard let arenas = try options.string("--malloc-arenas") else { return }
    guard let n = Int32(arenas), n > 0 else { throw BenchError("--malloc-arenas must be a positive integer, got '\(arenas)'") }
    #if os(Linux)
    guard mallopt(M_ARENA_MAX, n) == 1 else { throw BenchError("mallopt(M_ARENA_MAX, \(n)) failed") }
    #endif
}

/// The variants of `--compare-shards`: one per shard count at the mode's threads, preceded by the
/// whole batch on one thread when `--with-one-thread` is given (on a loaded machine two threads
/// can lose to one, and this shows it in the same run). `setShards` switches the step's shard count.
func shardVariants(_ options: Options, threads: Int, setShards: @escaping (Int) -> Void) throws -> [StepVariant] {
    guard let list = try options.string("--compare-shards") else { return [] }
    var variants: [StepVariant] = []
    if options.flag("--with-one-thread") {
        variants.append(StepVariant(name: "1 thread") { Parallel.workers = 1; setShards(1) })
    }
    for n in try shardCounts(list) {
        variants.append(StepVariant(name: "\(threads) thr, \(n) shard(s)") { Parallel.workers = threads; setShards(n) })
    }
    return variants
}
