import Tensor

/// Called with a phase's name as it ends, inside a training step: how benchmarks time the phases
/// of a step without the step knowing about clocks.
public typealias PhaseMarker = (String) -> Void

/// The two pretraining objectives behind one interface for the trainer.
public enum PretrainingNetwork: Sendable {
    case mae(MAE)
    case bootmae(BootMAE)

    public init(config: PretrainingConfig) {
        switch config.objective {
        case .mae: self = .mae(MAE(config: config))
        case .bootmae: self = .bootmae(BootMAE(config: config))
        }
    }

    public var config: PretrainingConfig {
        switch self { case .mae(let m): m.config; case .bootmae(let b): b.config }
    }

    public var encoder: VisionTransformer {
        switch self { case .mae(let m): m.encoder; case .bootmae(let b): b.encoder }
    }

    /// What the optimizer updates.
    public var parameters: ParameterList {
        switch self { case .mae(let m): m.parameters; case .bootmae(let b): b.parameters }
    }

    /// What a checkpoint holds (BootMAE adds the momentum encoder under `model_ema.`).
    public var checkpointParameters: ParameterList {
        switch self { case .mae(let m): m.parameters; case .bootmae(let b): b.checkpointParameters }
    }

    /// Tensors that never decay: the official rules (BootMAE also exempts cls_token, pos_embed).
    public var noDecayNames: Set<String> {
        switch self { case .mae: []; case .bootmae: ["cls_token", "pos_embed"] }
    }

    public func initialize(seed: UInt64) {
        var rng = SeededRandom(seed: seed, stream: 0xC0FFEE)
        PretrainingInit.initialize(parameters, objective: config.objective, rng: &rng)
        if case .bootmae(let b) = self { b.resetMomentum() }
    }

    public struct Losses: Sendable {
        public var total: Float
        public var pixel: Float
        public var feature: Float?
    }

    /// Draws the batch's masks from `rng`, runs forward and backward (gradients accumulate).
    public func trainStep(_ images: Tensor, rng: inout SeededRandom, masking: String, weightMask: Bool,
                          featureWeight: Float, phase: PhaseMarker? = nil) -> Losses {
        let plan = maskPlan(batch: images.shape[0], rng: &rng, masking: masking)
        phase?("masks")
        return step(images, plan: plan, weightMask: weightMask, featureWeight: featureWeight, phase: phase)
    }

    /// Forward and backward under a given mask plan (gradients accumulate). `lossBatch`: the batch
    /// the losses average over when `images` are one shard of it (`DataParallelStep`).
    public func step(_ images: Tensor, plan: MaskPlan, weightMask: Bool, featureWeight: Float,
                     lossBatch: Int? = nil, phase: PhaseMarker? = nil) -> Losses {
        switch self {
        case .mae(let m):
            let out = m.step(images, plan: plan, lossBatch: lossBatch)
            phase?("mae forward + backward")
            return Losses(total: out.loss, pixel: out.loss, feature: nil)
        case .bootmae(let model):
            let weights = weightMask ? plan.neighbourhoodWeights(grid: config.encoder.gridSize) : plan.lossMask
            let out = model.step(images, plan: plan, weights: weights, featureWeight: featureWeight,
                                 lossBatch: lossBatch, phase: phase)
            return Losses(total: out.loss, pixel: out.pixelLoss, feature: out.featureLoss)
        }
    }

    /// After the optimizer step: BootMAE's momentum update.
    public func afterStep(emaDecay: Float) {
        if case .bootmae(let b) = self { b.updateMomentum(decay: emaDecay) }
    }
}
