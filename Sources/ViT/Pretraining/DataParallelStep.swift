import Tensor

/// A pretraining step split over the cores by images (`DataParallel`): the batch's masks are
/// drawn as for one network, each shard of the batch runs forward and backward on its own copy of
/// the network, and the copies' gradients are added into the main network's. Losses and gradients
/// equal the whole batch's up to float summation order.
public final class DataParallelStep: @unchecked Sendable {
    private let copies: DataParallel<PretrainingNetwork>

    /// `shards` ≤ 1 runs every step on `network` alone.
    public init(network: PretrainingNetwork, shards: Int) {
        // The momentum encoder is read by the step, so copies sync the checkpoint's tensors.
        copies = DataParallel(main: network, shards: shards, makeCopy: { PretrainingNetwork(config: network.config) },
                              weights: \.checkpointParameters, trainable: \.parameters)
    }

    /// The network the optimizer updates; it also computes shard 0.
    public var network: PretrainingNetwork { copies.main }
    public var shards: Int { copies.shards }

    /// `PretrainingNetwork.trainStep` over the shards: the same masks from `rng`, gradients
    /// accumulated into `network`'s parameters.
    public func trainStep(_ images: Tensor, rng: inout SeededRandom, masking: String, weightMask: Bool,
                          featureWeight: Float) -> PretrainingNetwork.Losses {
        let batch = images.shape[0]
        let plan = network.maskPlan(batch: batch, rng: &rng, masking: masking)
        let all = copies.run(batch: batch) { net, items in
            net.step(images.batchSlice(items), plan: plan.shard(items), weightMask: weightMask,
                     featureWeight: featureWeight, lossBatch: batch)
        }
        // Each shard's losses are already divided by the whole batch: they add up.
        let feature = all.compactMap(\.feature)
        return .init(total: all.map(\.total).reduce(0, +), pixel: all.map(\.pixel).reduce(0, +),
                     feature: feature.isEmpty ? nil : feature.reduce(0, +))
    }
}
