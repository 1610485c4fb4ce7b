import Tensor

/// A pretraining step split over the cores by images (`DataParallel`): the batch's plan (masks) is
/// drawn as for one network, each shard of the batch runs forward and backward on its own copy of
/// the network under its shard of the plan, and the copies' gradients are added into the main
/// network's. Losses and gradients equal the whole batch's up to float summation order.
public final class DataParallelStep: @unchecked Sendable {
    private let copies: DataParallel<PretrainingNetwork>

    /// `shards` ≤ 1 runs every step on `network` alone; a distributed `collective` has one shard
    /// per rank (see `DataParallel`).
    public init(network: PretrainingNetwork, shards: Int, collective: any Collective = SingleProcess()) {
        // Training-only state (momentum encoders, teachers) is read by the step, so copies sync
        // every checkpointed tensor.
        copies = DataParallel(main: network, shards: shards, collective: collective, makeCopy: { PretrainingNetwork(config: network.config) },
                              weights: \.checkpointParameters, trainable: \.parameters)
    }

    /// The network the optimizer updates; it also computes shard 0.
    public var network: PretrainingNetwork { copies.main }
    public var shards: Int { copies.shards }

    /// `PretrainingNetwork.trainStep` over the shards: one plan from `rng`, gradients accumulated
    /// into `network`'s parameters, the shards' reports combined in shard order.
    public func trainStep(_ batch: PretrainingBatch, rng: inout SeededRandom, options: any ObjectiveOptions,
                          clock: TrainingClock) -> StepReport {
        let plan = network.plan(batch: batch.count, rng: &rng, options: options, clock: clock)
        return step(batch, plan: plan, options: options, clock: clock)
    }

    /// The step under a given plan (a test's hand-made masks): each shard under its part of it.
    public func step(_ batch: PretrainingBatch, plan: any ShardablePlan, options: any ObjectiveOptions,
                     clock: TrainingClock) -> StepReport {
        let count = batch.count
        let reports = copies.run(batch: count) { net, items in
            net.step(batch.shard(items), plan: plan.shard(items), options: options, clock: clock, lossBatch: count)
        }
        return StepReport.combining(reports)
    }
}
