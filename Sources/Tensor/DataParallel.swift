/// A network and copies of it for data-parallel training steps: each shard of a batch runs forward
/// and backward on its own copy, concurrently, with single-threaded kernels, and the copies'
/// gradients are added into the main network's. The step's losses must average over the whole
/// batch (each shard divides by the full batch size), so the shards' losses and gradients add up
/// to the whole batch's, up to float summation order.
///
/// Across processes (`collective` of several ranks) each rank is one shard: rank r runs shard r of
/// every batch on `main` (the same boundaries as r-th of `size` shards in one process), and the
/// ranks' gradients are summed in rank order (`Collective.sumInRankOrder`), so the result is bit
/// for bit that of one process with `size` shards. Ranks keep identical weights by applying the
/// same updates to the same sums; nothing is synced before a step.
///
/// Why: the tiny models' GEMMs (a few hundred rows per shard) and their many short elementwise
/// passes scale poorly when every op is split over two threads (a fork/join per op, serial glue
/// in between, OpenBLAS 0.3.21 on small shapes); shards need one join per step.
public final class DataParallel<Network>: @unchecked Sendable {
    /// The network the optimizer updates; it also computes shard 0.
    public let main: Network
    /// One copy per further shard: weights synced from `main` before every step, own gradients.
    private let replicas: [Network]
    /// Every tensor a step reads (weights, fixed tables, momentum copies), in one fixed order.
    private let weights: (Network) -> ParameterList
    /// What the optimizer updates: the gradients the shards add up.
    private let trainable: (Network) -> ParameterList
    /// The processes of the job; one shard per rank when there are several.
    public let collective: any Collective
    /// The flattened gradients a distributed step sums (kept between steps).
    private var exchange: [Float] = []

    /// `shards` ≤ 1 runs every step on `main` alone. `makeCopy` builds an untrained network of the
    /// same shape (its weights are overwritten before use). With a `collective` of several ranks,
    /// `shards` is ignored: the job has one shard per rank and this process computes its rank's.
    public init(main: Network, shards: Int, collective: any Collective = SingleProcess(), makeCopy: () -> Network,
                weights: @escaping (Network) -> ParameterList, trainable: @escaping (Network) -> ParameterList) {
        self.main = main
        self.weights = weights
        self.trainable = trainable
        self.collective = collective
        replicas = collective.isDistributed ? [] : (1..<max(1, shards)).map { _ in makeCopy() }
    }

    /// Shards of every batch, over the whole job.
    public var shards: Int { collective.isDistributed ? collective.size : replicas.count + 1 }

    /// Runs `body(network, items)` for each shard of `0..<batch` (contiguous, in order) and returns
    /// the results in shard order. Shard 0 accumulates into `main`'s gradients like a plain step;
    /// the others start from zero on a synced copy and are added to `main` in shard order, so the
    /// result never depends on which thread finished first.
    public func run<Result: ShardResult>(batch: Int, _ body: (Network, Range<Int>) -> Result) -> [Result] {
        if collective.isDistributed { return runRank(batch: batch, body) }
        let n = min(shards, batch)
        if n <= 1 { return [body(main, 0..<batch)] }
        let copies = Array(replicas.prefix(n - 1))
        syncWeights(into: copies)
        var results = [Result?](repeating: nil, count: n)
        results.withUnsafeMutableBufferPointer { out in
            let out = out.baseAddress!
            Parallel.runConcurrently(n) { shard in
                let items = (shard * batch / n)..<((shard + 1) * batch / n)
                let network = shard == 0 ? main : copies[shard - 1]
                if shard > 0 { trainable(network).zeroGrads() }
                out[shard] = body(network, items)
            }
        }
        addGradients(of: copies)
        return results.map { $0! }
    }

    /// This rank's shard on `main`, then the job's gradient sum and every shard's result.
    private func runRank<Result: ShardResult>(batch: Int, _ body: (Network, Range<Int>) -> Result) -> [Result] {
        let (rank, n) = (collective.rank, collective.size)
        precondition(batch >= n, "a batch of \(batch) images cannot give each of \(n) ranks a shard")
        let local = body(main, (rank * batch / n)..<((rank + 1) * batch / n))
        sumGradients()
        return collective.gather(local.exchangedValues).map { local.replacingValues($0) }
    }

    /// main.grad ← Σ over ranks in rank order: the parameters' gradients in one vector, summed by
    /// the collective, copied back.
    private func sumGradients() {
        let parameters = trainable(main).entries.map(\.parameter).filter(\.trainable)
        let total = parameters.reduce(0) { $0 + $1.grad.count }
        if exchange.count != total { exchange = [Float](repeating: 0, count: total) }
        exchange.withUnsafeMutableBufferPointer { flat in
            var offset = 0
            for p in parameters {
                let n = p.grad.count
                p.grad.withPointer { (flat.baseAddress! + offset).update(from: $0, count: n) }
                offset += n
            }
            collective.sumInRankOrder(flat)
            offset = 0
            for p in parameters {
                let n = p.grad.count
                p.withGradPointer { $0.update(from: flat.baseAddress! + offset, count: n) }
                offset += n
            }
        }
    }

    private func syncWeights(into copies: [Network]) {
        let source = weights(main).entries
        for copy in copies {
            for ((_, from), (_, to)) in zip(source, weights(copy).entries) {
                let n = from.value.count
                from.value.withPointer { src in to.value.withMutablePointer { $0.update(from: src, count: n) } }
            }
        }
    }

    /// main.grad += copy.grad for every trainable parameter, copies in shard order (deterministic);
    /// parameters are spread over the workers.
    private func addGradients(of copies: [Network]) {
        let targets = trainable(main).entries.filter { $0.parameter.trainable }
        let sources = copies.map { trainable($0) }
        Parallel.forEachChunk(targets.count) { chunk in
            for i in chunk {
                let target = targets[i].parameter
                for source in sources {
                    guard let gradient = source[targets[i].name] else { continue }
                    target.grad.add(gradient.grad)
                }
            }
        }
    }
}
