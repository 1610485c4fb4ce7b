import Foundation

/// Splits work over the cores for the kernels BLAS does not parallelize itself (elementwise
/// passes, per-(batch, head) attention GEMMs that are too small for BLAS threading).
public enum Parallel {
    /// Worker count; `TensorRuntime.configure` sets it with the BLAS thread count.
    nonisolated(unsafe) public static var workers = 1

    /// Calls `body` on disjoint chunks covering 0..<n, concurrently when each chunk would get at
    /// least `grain` items. Chunks are fixed by n and `workers`, so results never depend on timing.
    @inlinable
    public static func forEachChunk(_ n: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        let chunks = min(workers, max(1, n / max(grain, 1)))
        if chunks <= 1 { body(0..<n); return }
        withoutActuallyEscaping(body) { body in
            let box = UnsafeSendable(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                box.value((c * n / chunks)..<((c + 1) * n / chunks))
            }
        }
    }
}

/// Carries a non-Sendable value (a closure over raw pointers) into `concurrentPerform`: safe
/// here because every chunk touches a disjoint range and the call returns only when all finish.
@usableFromInline
struct UnsafeSendable<T>: @unchecked Sendable {
    @usableFromInline let value: T
    @usableFromInline init(_ value: T) { self.value = value }
}

extension Parallel {
    /// Runs `body(0)`, …, `body(n − 1)` at once, one thread each, with `workers` set to 1 meanwhile:
    /// the tasks are the parallelism, so the kernels they call must not split their work again.
    /// For coarse tasks (a data-parallel shard of a training step), not for per-op work.
    public static func runConcurrently(_ n: Int, _ body: (Int) -> Void) {
        if n <= 1 { if n == 1 { body(0) }; return }
        let saved = workers
        workers = 1
        defer { workers = saved }
        withoutActuallyEscaping(body) { body in
            let box = UnsafeSendable(body)
            DispatchQueue.concurrentPerform(iterations: n) { box.value($0) }
        }
    }
}
