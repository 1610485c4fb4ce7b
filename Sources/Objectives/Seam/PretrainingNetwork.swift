import Checkpoint
import Tensor
import ViT

/// A pretraining network of any registered objective, as the trainer, checkpoints, `export`, the
/// evaluations and the service hold it. It forwards to the objective; the only casts from the
/// erased settings, options and plans to the objective's own types are here.
public struct PretrainingNetwork: Sendable {
    public let config: PretrainingConfig
    public let objective: any PretrainingObjective

    /// An untrained network of `config`'s shape.
    public init(config: PretrainingConfig) {
        func make<O: PretrainingObjective>(_ type: O.Type) -> any PretrainingObjective {
            guard let settings = config.settings(of: O.self) else {
                preconditionFailure("config.json settings are not \(O.name)'s")
            }
            return O(encoder: config.encoder, settings: settings)
        }
        self.config = config
        objective = make(config.objectiveType)
    }

    public var objectiveType: any PretrainingObjective.Type { type(of: objective) }
    public var encoder: VisionTransformer { objective.encoder }
    public var parameters: ParameterList { objective.parameters }
    public var checkpointParameters: ParameterList { objective.checkpointParameters }
    public var exportParameters: ParameterList { objective.exportParameters }
    public var noDecayNames: Set<String> { objective.noDecayNames }
    /// What an export of this network serves, from the protocols its objective conforms to: embeddings
    /// always, reconstructions with a pixel decoder of its own (`PixelReconstructing`), code grids as a
    /// tokenizer (`ImageTokenizing`). Classification is the encoder's head, not the objective's.
    public var capabilities: Set<Capability> {
        Set([.embed] + (canReconstruct ? [.reconstruct] : []) + (tokenizer != nil ? [.tokenize] : []))
    }

    /// Fresh weights from `seed`.
    public func initialize(seed: UInt64) {
        var rng = SeededRandom(seed: seed, stream: 0xC0FFEE)
        objective.initialize(rng: &rng)
    }

    public func load(_ weights: SafeTensorsFile, ignoring: [String] = []) throws {
        try objective.load(weights, ignoring: ignoring)
    }

    /// The step's random choices for a batch, drawn from `rng`.
    public func plan(batch: Int, rng: inout SeededRandom, options: any ObjectiveOptions, clock: TrainingClock) -> any ShardablePlan {
        func draw<O: PretrainingObjective>(_ o: O, _ rng: inout SeededRandom) -> any ShardablePlan {
            o.plan(batch: batch, rng: &rng, options: Self.cast(options, for: O.self), clock: clock)
        }
        return draw(objective, &rng)
    }

    /// Forward and backward of one shard under its plan (see `PretrainingObjective.step`).
    public func step(_ batch: PretrainingBatch, plan: any ShardablePlan, options: any ObjectiveOptions, clock: TrainingClock,
                     lossBatch: Int? = nil, phase: PhaseMarker? = nil) -> StepReport {
        func run<O: PretrainingObjective>(_ o: O) -> StepReport {
            guard let plan = plan as? O.Plan else { preconditionFailure("a \(type(of: plan)) is no plan of \(O.name)") }
            return o.step(batch, plan: plan, options: Self.cast(options, for: O.self), clock: clock,
                          lossBatch: lossBatch ?? batch.count, phase: phase)
        }
        return run(objective)
    }

    /// Draws the plan from `rng` and runs one step on the whole batch.
    public func trainStep(_ batch: PretrainingBatch, rng: inout SeededRandom, options: any ObjectiveOptions, clock: TrainingClock,
                          phase: PhaseMarker? = nil) -> StepReport {
        let plan = plan(batch: batch.count, rng: &rng, options: options, clock: clock)
        phase?("masks")
        return step(batch, plan: plan, options: options, clock: clock, phase: phase)
    }

    /// The views each image needs (nil: one view at the model's size).
    public func dataViews(options: any ObjectiveOptions) -> [ViewGroupSpec]? {
        func ask<O: PretrainingObjective>(_ o: O) -> [ViewGroupSpec]? { o.dataViews(options: Self.cast(options, for: O.self)) }
        return ask(objective)
    }

    /// Between backward and the optimizer step (clipping, freezing, scheduled weight decay).
    public func prepareUpdate(options: any ObjectiveOptions, clock: TrainingClock, baseWeightDecay: Double) -> UpdateAdjustment {
        func run<O: PretrainingObjective>(_ o: O) -> UpdateAdjustment {
            o.prepareUpdate(options: Self.cast(options, for: O.self), clock: clock, baseWeightDecay: baseWeightDecay)
        }
        return run(objective)
    }

    /// After the optimizer step (EMA updates, centres), with the whole batch's report.
    public func afterStep(options: any ObjectiveOptions, clock: TrainingClock, report: StepReport) {
        func run<O: PretrainingObjective>(_ o: O) { o.afterStep(options: Self.cast(options, for: O.self), clock: clock, report: report) }
        run(objective)
    }

    /// The pixel reconstructions this network makes, when its objective has a pixel decoder.
    public var reconstructor: (any PixelReconstructing)? { objective as? any PixelReconstructing }

    static func cast<O: PretrainingObjective>(_ options: any ObjectiveOptions, for _: O.Type) -> O.Options {
        guard let typed = options as? O.Options else { preconditionFailure("\(type(of: options)) are not \(O.name)'s options") }
        return typed
    }
}
