import Checkpoint
import Tensor
import ViT

/// A masked-image-modeling objective: its networks, its settings, one training step, and what its
/// export serves. The trainer, checkpoints, `export`, the model registry and the service reach an
/// objective only through this protocol (wrapped in `PretrainingNetwork`); each objective lives in
/// its own folder and is registered in one line (`ObjectiveRegistry`).
///
/// A training step, as `Pretrainer` runs it: `plan` draws the batch's random choices (masks) once,
/// `step` runs forward and backward on a shard of the batch under the shard of that plan
/// (gradients accumulate into `parameters`), AdamW updates `parameters`, then `afterStep` runs
/// (EMA teachers and momentum encoders).
public protocol PretrainingObjective: Sendable {
    /// The architecture beyond the encoder (decoders, heads, mask sizes): config.json, flat beside
    /// the encoder's fields.
    associatedtype Settings: ObjectiveSettings
    /// Training-only knobs (loss weights, schedules, masking): recipe.json's `objective_options`.
    associatedtype Options: ObjectiveOptions
    /// The random choices of one step for the whole batch (masks), split into shards by image.
    associatedtype Plan: ShardablePlan

    /// The registered name: config.json's `objective` and `pretrain --objective`.
    static var name: String { get }
    /// The name people know it by, for titles and logs.
    static var displayName: String { get }
    /// One line for `pretrain --help`.
    static var summary: String { get }
    /// The losses a step reports, the total first (the loss plot draws these).
    static var lossNames: [String] { get }
    /// The objective-specific command-line flags of `pretrain` (beyond the common ones).
    static var flags: [ObjectiveFlag] { get }
    /// The encoder (with this objective's preprocessing and position encoding) and settings a
    /// preset's sizes give, shaped by the objective's flags.
    static func configure(_ shape: BackboneShape, maskRatio: Double, flags: ObjectiveFlagValues) throws -> (ViTConfig, Settings)
    /// Training options from the flags; `epochs` for defaults that scale with the run.
    static func options(flags: ObjectiveFlagValues, epochs: Int) throws -> Options
    /// The masked share `configure` gets when the command line sets none.
    static var defaultMaskRatio: Double { get }
    /// The official recipe's optimizer defaults: learning rate per 256 images, the final rate of
    /// the cosine schedule, warmup as a share of the epochs, AdamW's betas and weight decay.
    static var defaultBaseLR: Double { get }
    static func defaultMinLR(peak: Double) -> Double
    static var defaultWarmupShare: Double { get }
    static var defaultBetas: (beta1: Double, beta2: Double) { get }
    static var defaultWeightDecay: Double { get }

    /// An untrained network of this shape (weights are set by `initialize` or a checkpoint).
    init(encoder: ViTConfig, settings: Settings)

    /// The encoder an export serves for embeddings.
    var encoder: VisionTransformer { get }
    /// What the optimizer updates.
    var parameters: ParameterList { get }
    /// What a training checkpoint holds: `parameters` plus training-only state (momentum encoders).
    var checkpointParameters: ParameterList { get }
    /// What an export holds.
    var exportParameters: ParameterList { get }
    /// When an export is only an encoder (iBOT serves its teacher), that encoder; nil exports the
    /// whole network under its pretraining config.
    var exportedEncoder: VisionTransformer? { get }
    /// Tensors that never decay (beyond biases and norms, which never do).
    var noDecayNames: Set<String> { get }

    /// Fresh weights from `rng`, following the official initialisation.
    func initialize(rng: inout SeededRandom)
    /// Loads a checkpoint or an export (the key map): by default every tensor of
    /// `checkpointParameters` under its name.
    func load(_ weights: SafeTensorsFile, ignoring: [String]) throws

    /// The views of each image a step needs; nil (the default) is one view at the model's size
    /// with the recipe's crop scale.
    func dataViews(options: Options) -> [ViewGroupSpec]?
    /// The step's random choices for a batch of `batch` images.
    func plan(batch: Int, rng: inout SeededRandom, options: Options, clock: TrainingClock) -> Plan
    /// Forward and backward on `batch` (one shard of a batch of `lossBatch` images: losses divide
    /// by `lossBatch`, so shards' losses and gradients add up); gradients accumulate.
    func step(_ batch: PretrainingBatch, plan: Plan, options: Options, clock: TrainingClock, lossBatch: Int,
              phase: PhaseMarker?) -> StepReport
    /// Between the backward pass and the optimizer step: clips or freezes gradients and sets the
    /// step's scheduled optimizer values; nothing by default.
    /// `baseWeightDecay` is the recipe's (the start of a scheduled decay).
    func prepareUpdate(options: Options, clock: TrainingClock, baseWeightDecay: Double) -> UpdateAdjustment
    /// After the optimizer step (EMA updates, centres from the step's summed statistics); nothing
    /// by default. `report` is the whole batch's, shards combined.
    func afterStep(options: Options, clock: TrainingClock, report: StepReport)
}

extension PretrainingObjective {
    public var checkpointParameters: ParameterList { parameters }
    public var exportParameters: ParameterList { parameters }
    public var noDecayNames: Set<String> { [] }
    public static var flags: [ObjectiveFlag] { [] }
    public static var defaultMaskRatio: Double { 0.75 }
    public static var defaultBaseLR: Double { 1.5e-4 }
    public static func defaultMinLR(peak: Double) -> Double { 0 }
    public static var defaultWarmupShare: Double { 0.05 }
    public static var defaultBetas: (beta1: Double, beta2: Double) { (0.9, 0.95) }
    public static var defaultWeightDecay: Double { 0.05 }
    public var exportedEncoder: VisionTransformer? { nil }
    public func dataViews(options: Options) -> [ViewGroupSpec]? { nil }
    public func prepareUpdate(options: Options, clock: TrainingClock, baseWeightDecay: Double) -> UpdateAdjustment { UpdateAdjustment() }
    public func afterStep(options: Options, clock: TrainingClock, report: StepReport) {}

    public func load(_ weights: SafeTensorsFile, ignoring: [String]) throws {
        try ModelDirectory.load(checkpointParameters, from: weights, ignoring: ignoring)
    }
}

/// Called with a phase's name as it ends, inside a training step: how benchmarks time the phases
/// of a step without the step knowing about clocks.
public typealias PhaseMarker = (String) -> Void

/// What a served model can do.
public enum Capability: String, Sendable, Codable, CaseIterable {
    case embed, classify, reconstruct
    /// Image → code grid and back (`/v1/tokens`): a tokenizer's export (`ImageTokenizing`).
    case tokenize
}

/// An objective's architecture settings: decoded from and encoded into config.json beside the
/// encoder's fields (snake_case keys of its own).
public protocol ObjectiveSettings: Codable, Sendable, Equatable {
    /// Problems of a hand-written config, as sentences naming the field; empty when valid.
    func validationErrors(encoder: ViTConfig) -> [String]
    /// The settings as an exported model's config.json holds them (`export`), after checking what
    /// they refer to on the training machine (`SettingsExportError` when that no longer holds);
    /// the same settings by default.
    func exported() throws -> Self
    /// Checks, before a run starts or resumes, that what the settings refer to outside the run
    /// folder is there and unchanged (PeCo: its tokenizer export), so a fault is a message up
    /// front rather than a trap at the first step; nothing to check by default.
    func checkReferences() throws
}

extension ObjectiveSettings {
    public func isEqual(to other: any ObjectiveSettings) -> Bool { (other as? Self) == self }
    public func exported() throws -> Self { self }
    public func checkReferences() throws {}
}

/// Why a run's settings cannot be exported, worded for the person exporting.
public struct SettingsExportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// An objective's training options (recipe.json).
public protocol ObjectiveOptions: Codable, Sendable, Equatable {
    /// Problems of the options with the encoder they train (a crop size that is no whole number
    /// of patches), as sentences naming the flag; empty when valid (the default).
    func validationErrors(encoder: ViTConfig) -> [String]
}

extension ObjectiveOptions {
    public func isEqual(to other: any ObjectiveOptions) -> Bool { (other as? Self) == self }
    public func validationErrors(encoder: ViTConfig) -> [String] { [] }
}

/// The random choices of a step, for a batch; a shard is the plan of a contiguous range of images.
public protocol ShardablePlan: Sendable {
    func shard(_ images: Range<Int>) -> Self
}

extension MaskPlan: ShardablePlan {}

/// Where a training step is in the run: what per-epoch and per-step schedules are functions of.
public struct TrainingClock: Sendable, Equatable {
    /// Optimizer steps done before this one.
    public var step: Int
    public var stepsPerEpoch: Int
    public var epochs: Int

    public init(step: Int, stepsPerEpoch: Int, epochs: Int) {
        self.step = step; self.stepsPerEpoch = stepsPerEpoch; self.epochs = epochs
    }

    public var epoch: Int { step / stepsPerEpoch }
    public var totalSteps: Int { stepsPerEpoch * epochs }
}

/// What a training step reports: named losses, the total (what the optimizer minimises) first, the
/// schedule values it used (logged beside the losses), and named vector sums over the shard's
/// images that the objective needs after the step (iBOT's centre statistics).
public struct StepReport: Sendable {
    public var losses: [Named]
    public var schedule: [Named]
    public var sums: [NamedVector]

    public struct NamedVector: Sendable, Equatable {
        public var name: String
        public var values: [Float]
        public init(_ name: String, _ values: [Float]) { self.name = name; self.values = values }
    }

    public func sum(_ name: String) -> [Float]? { sums.first { $0.name == name }?.values }

    public struct Named: Sendable, Equatable {
        public var name: String
        public var value: Float
        public init(_ name: String, _ value: Float) { self.name = name; self.value = value }
    }

    public init(losses: [Named], schedule: [Named] = [], sums: [NamedVector] = []) {
        precondition(!losses.isEmpty, "a step reports at least its total loss")
        self.losses = losses
        self.schedule = schedule
        self.sums = sums
    }

    public var total: Float { losses[0].value }

    public func loss(_ name: String) -> Float? { losses.first { $0.name == name }?.value }

    /// The reports of a batch's shards as one: losses (already divided by the whole batch) and
    /// sums add up in shard order; the schedule is the same for every shard.
    public static func combining(_ shards: [StepReport]) -> StepReport {
        let losses = shards[0].losses.indices.map { i in
            Named(shards[0].losses[i].name, shards.map { $0.losses[i].value }.reduce(0, +))
        }
        let sums = shards[0].sums.indices.map { i in
            NamedVector(shards[0].sums[i].name, shards.dropFirst().reduce(shards[0].sums[i].values) { total, shard in
                zip(total, shard.sums[i].values).map { $0 + $1 }
            })
        }
        return StepReport(losses: losses, schedule: shards[0].schedule, sums: sums)
    }
}

/// Ranks exchange a report's loss values (the names and the schedule are the same on every rank).
/// A rank's report crosses to the others as its losses followed by its sums, flattened.
extension StepReport: ShardResult {
    public var exchangedValues: [Float] { losses.map(\.value) + sums.flatMap(\.values) }

    public func replacingValues(_ values: [Float]) -> StepReport {
        precondition(values.count == exchangedValues.count, "a step report of \(exchangedValues.count) values got \(values.count)")
        var offset = losses.count
        let newSums = sums.map { sum -> NamedVector in
            defer { offset += sum.values.count }
            return NamedVector(sum.name, Array(values[offset..<(offset + sum.values.count)]))
        }
        return StepReport(losses: zip(losses, values).map { Named($0.name, $1) }, schedule: schedule, sums: newSums)
    }
}
