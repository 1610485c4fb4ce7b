import Tensor
import Objectives

/// What a pretraining recipe does with a step's gradients once the loss is computed: the objective's
/// adjustments (gradient clipping, frozen tensors, a scheduled weight decay), AdamW over the
/// objective's parameters at the step's learning rate, then the objective's after-step hook (EMA
/// teachers and momentum encoders, centres, codebooks).
///
/// `Pretrainer.train` runs it after every step; the trajectory tests run it on fixed batches and
/// plans, so what they compare with the official training loops is the trainer's own composition.
public struct PretrainUpdate: Sendable {
    /// AdamW's moments and step counts (what a checkpoint saves besides the weights).
    public var optimizer: AdamW
    /// The per-iteration learning rate: cosine with a linear warmup from 0.
    public let schedule: CosineSchedule
    let options: any ObjectiveOptions
    /// The recipe's weight decay: AdamW's, and where an objective's decay schedule starts.
    let baseWeightDecay: Double

    /// The update of `network` under `recipe`, at `stepsPerEpoch` steps per epoch. AdamW decays what
    /// the official recipes decay: not 1-D tensors and biases, nor the objective's `noDecayNames`.
    public init(network: PretrainingNetwork, recipe: PretrainRecipe, stepsPerEpoch: Int) {
        let exempt = network.noDecayNames
        optimizer = AdamW(parameters: network.parameters, beta1: Float(recipe.beta1), beta2: Float(recipe.beta2),
                          weightDecay: Float(recipe.weightDecay)) { name, p in
            .init(decay: AdamW.officialDecay(name, p, exempt: exempt))
        }
        schedule = CosineSchedule(base: recipe.lr, final: recipe.minLR, totalSteps: stepsPerEpoch * recipe.epochs,
                                  warmupSteps: Int((recipe.warmupEpochs * Double(stepsPerEpoch)).rounded()))
        options = recipe.objectiveOptions
        baseWeightDecay = recipe.weightDecay
    }

    /// The learning rate of step `step` (optimizer steps done before it).
    public func lr(at step: Int) -> Float { Float(schedule.value(at: step)) }

    /// What one update used.
    public struct Applied: Sendable, Equatable {
        public var lr: Float
        /// The weight decay of the tensors that decay (the objective's schedule, or the recipe's).
        public var weightDecay: Float
        /// Tensors left as they were (moments included).
        public var frozen: Set<String>
    }

    /// One training iteration of `network` once the data is drawn: gradients zeroed, `step` (forward
    /// and backward: the trainer's `DataParallelStep.trainStep`, a test's step under fixed masks),
    /// refused if its loss is not finite (nothing updated: the last checkpoint stays as it was),
    /// then `apply`. `Pretrainer.train` runs every step through it.
    public mutating func iterate(_ network: PretrainingNetwork, clock: TrainingClock,
                                 step: () -> StepReport) throws -> (report: StepReport, applied: Applied) {
        network.parameters.zeroGrads()
        let report = step()
        guard report.total.isFinite else {
            throw Pretrainer.TrainingError(description: Divergence.message(loss: report.total, step: clock.step,
                                                                           totalSteps: clock.totalSteps, lr: lr(at: clock.step)))
        }
        return (report, apply(to: network, clock: clock, report: report))
    }

    /// Updates `network` from the gradients of the step at `clock`, whose whole-batch report is
    /// `report` (the objective's after-step hook reads its sums).
    @discardableResult
    public mutating func apply(to network: PretrainingNetwork, clock: TrainingClock, report: StepReport) -> Applied {
        let lr = lr(at: clock.step)
        let adjustment = network.prepareUpdate(options: options, clock: clock, baseWeightDecay: baseWeightDecay)
        let weightDecay = adjustment.weightDecay.map { Float($0) }
        optimizer.step(network.parameters, lr: lr, weightDecay: weightDecay, frozen: adjustment.frozen)
        network.afterStep(options: options, clock: clock, report: report)
        return Applied(lr: lr, weightDecay: weightDecay ?? optimizer.weightDecay, frozen: adjustment.frozen)
    }
}
