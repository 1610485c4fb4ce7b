/// A network and copies of it for data-parallel training steps: each shard of a batch runs forward
/// and backward on its own copy, concurrently, with single-threaded kernels, and the copies'
/// gradients are added into the main network's. The step's losses must average over the whole
/// batch (each shard divides by the full batch size), so the shards' losses and gradients add up
/// to the whole batch's, up to float summation order.
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

    /// `shards` ≤ 1 runs every step on `main` alone. `makeCopy` builds an untrained network of the
    /// same shape (its weights are overwritten before use).
    public init(main: Network, shards: Int, makeCopy: () -> Network,
                weights: @escaping (Network) -> ParameterList, trainable: @escaping (Network) -> ParameterList) {
        self.main = main
        self.weights = weights
        self.trainable = trainable
        replicas = (1..<max(1, shards)).map { _ in makeCopy() }
    }

    public var shards: Int { replicas.count + 1 }

    /// Runs `body(network, items)` for each shard of `0..<batch` (contiguous, in order) and returns
    /// the results in shard order. Shard 0 accumulates into `main`'s gradients like a plain step;
    /// the others start from zero on a synced copy and are added to `main` in shard order, so the
    /// result never depends on which thread finished first.
    public func run<Result>(batch: Int, _ body: (Network, Range<Int>) -> Result) -> [Result] {
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
