import Tensor

/// A pretraining step split over the cores by images (data parallelism): the batch's masks are
/// drawn as for one network, each shard of the batch runs forward and backward on its own copy of
/// the network with single-threaded kernels, and the copies' gradients are added into the main
/// network's. Losses and gradients equal the whole batch's up to float summation order.
///
/// Why: the tiny presets' GEMMs (a few hundred rows per shard) and their many short elementwise
/// passes scale poorly when every op is split over two threads (a fork/join per op, serial glue
/// in between, OpenBLAS 0.3.21 on small shapes); shards need one join per step.
public final class DataParallelStep: @unchecked Sendable {
    /// The network the optimizer updates; it also computes shard 0.
    public let network: PretrainingNetwork
    /// One copy per further shard: weights synced from `network` every step, own gradients.
    private let replicas: [PretrainingNetwork]

    /// `shards` ≤ 1 runs every step on `network` alone.
    public init(network: PretrainingNetwork, shards: Int) {
        self.network = network
        replicas = (1..<max(1, shards)).map { _ in PretrainingNetwork(config: network.config) }
    }

    public var shards: Int { replicas.count + 1 }

    /// `PretrainingNetwork.trainStep` over the shards: the same masks from `rng`, gradients
    /// accumulated into `network`'s parameters.
    public func trainStep(_ images: Tensor, rng: inout SeededRandom, masking: String, weightMask: Bool,
                          featureWeight: Float) -> PretrainingNetwork.Losses {
        let batch = images.shape[0]
        let plan = network.maskPlan(batch: batch, rng: &rng, masking: masking)
        let n = min(shards, batch)
        if n <= 1 { return network.step(images, plan: plan, weightMask: weightMask, featureWeight: featureWeight) }
        syncReplicaWeights(count: n - 1)
        var losses = [PretrainingNetwork.Losses?](repeating: nil, count: n)
        losses.withUnsafeMutableBufferPointer { out in
            let out = out.baseAddress!
            Parallel.runConcurrently(n) { shard in
                let range = (shard * batch / n)..<((shard + 1) * batch / n)
                let net = shard == 0 ? network : replicas[shard - 1]
                if shard > 0 { net.parameters.zeroGrads() }
                out[shard] = net.step(images.batchSlice(range), plan: plan.shard(range), weightMask: weightMask,
                                      featureWeight: featureWeight, lossBatch: batch)
            }
        }
        addReplicaGradients(count: n - 1)
        // Each shard's losses are already divided by the whole batch: they add up.
        let all = losses.map { $0! }
        let feature = all.compactMap(\.feature)
        return .init(total: all.map(\.total).reduce(0, +), pixel: all.map(\.pixel).reduce(0, +),
                     feature: feature.isEmpty ? nil : feature.reduce(0, +))
    }

    /// Copies every weight the step reads (online and momentum encoder) into the first `count` replicas.
    private func syncReplicaWeights(count: Int) {
        let source = network.checkpointParameters.entries
        for replica in replicas.prefix(count) {
            for ((_, from), (_, to)) in zip(source, replica.checkpointParameters.entries) {
                let n = from.value.count
                from.value.withPointer { src in to.value.withMutablePointer { $0.update(from: src, count: n) } }
            }
        }
    }

    /// network.grad += replica.grad for every trainable parameter, in replica order (deterministic).
    private func addReplicaGradients(count: Int) {
        let targets = network.parameters.entries.filter { $0.parameter.trainable }
        Parallel.forEachChunk(targets.count) { chunk in
            for i in chunk {
                let target = targets[i].parameter
                for replica in replicas.prefix(count) {
                    guard let source = replica.parameters[targets[i].name] else { continue }
                    target.grad.add(source.grad)
                }
            }
        }
    }
}
