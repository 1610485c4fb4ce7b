import Checkpoint
import Tensor
import ViT

/// BootMAE behind the objective seam: its settings, options, training step, momentum encoder and
/// reconstructions.
extension BootMAE: PretrainingObjective, PixelReconstructing {
    public static let name = "bootmae"
    public static let displayName = "BootMAE"
    public static let summary = "BootMAE: MAE plus a feature decoder that predicts a momentum encoder's features, "
        + "both decoders cross-attending to encoder blocks"
    public static let lossNames = ["loss", "pixel_loss", "feature_loss"]

    /// config.json beside the encoder (official `modeling_pretrain.py` / `run_pretraining.py` arguments).
    public struct Settings: ObjectiveSettings {
        /// Pixel-decoder width (`decode_dim`).
        public var decoderEmbedDim: Int
        public var decoderDepth: Int
        /// Pixel-decoder heads (default: the encoder's, as the official code).
        public var decoderNumHeads: Int?
        /// Feature-decoder depth (its width is the encoder's; default: `decoder_depth`).
        public var featureDecoderDepth: Int?
        /// Encoder blocks whose outputs the pixel and the feature decoder attend to (`fea_list`;
        /// default: the first and the last).
        public var featureLayers: [Int]?
        /// `num_mask` masked patches (takes precedence), or a masked share.
        public var numMask: Int?
        public var maskRatio: Double?
        /// Whether the decoders cross-attend to encoder features (default on). Off is the ablation:
        /// plain decoder blocks that see only the latent tokens.
        public var decoderContext: Bool?

        enum CodingKeys: String, CodingKey {
            case decoderEmbedDim = "decoder_embed_dim", decoderDepth = "decoder_depth", decoderNumHeads = "decoder_num_heads"
            case featureDecoderDepth = "feature_decoder_depth", featureLayers = "feature_layers"
            case numMask = "num_mask", maskRatio = "mask_ratio", decoderContext = "decoder_context"
        }

        public init(decoderEmbedDim: Int, decoderDepth: Int, decoderNumHeads: Int? = nil, featureDecoderDepth: Int? = nil,
                    featureLayers: [Int]? = nil, numMask: Int? = nil, maskRatio: Double? = nil, decoderContext: Bool? = nil) {
            self.decoderEmbedDim = decoderEmbedDim; self.decoderDepth = decoderDepth; self.decoderNumHeads = decoderNumHeads
            self.featureDecoderDepth = featureDecoderDepth; self.featureLayers = featureLayers; self.numMask = numMask
            self.maskRatio = maskRatio; self.decoderContext = decoderContext
        }

        public func maskedCount(patches: Int) -> Int {
            numMask ?? MaskingSpec.maskedCount(ratio: maskRatio ?? 0.75, patches: patches)
        }

        public func resolvedFeatureLayers(depth: Int) -> [Int] { featureLayers ?? [0, depth - 1] }

        public var usesDecoderContext: Bool { decoderContext ?? true }

        /// The encoder blocks the decoders cross-attend to, pixel decoder's first: the feature
        /// layers, or none when the decoders have no context.
        public func decoderContextLayers(depth: Int) -> [Int] { usesDecoderContext ? resolvedFeatureLayers(depth: depth) : [] }

        public func validationErrors(encoder: ViTConfig) -> [String] {
            var errors = DecoderChecks.errors(width: decoderEmbedDim, depth: decoderDepth, heads: decoderNumHeads ?? encoder.numHeads,
                                              encoder: encoder, masked: maskedCount(patches: encoder.numPatches))
            let layers = resolvedFeatureLayers(depth: encoder.depth)
            if layers.isEmpty || layers.contains(where: { $0 < 0 || $0 >= encoder.depth }) {
                errors.append("feature_layers must name encoder blocks 0..<\(encoder.depth)")
            }
            if encoder.qkvBias != .qv { errors.append("BootMAE uses q/v attention biases: qkv_bias must be \"qv\"") }
            return errors
        }
    }

    public struct Options: ObjectiveOptions {
        public var masking: MaskingSpec
        /// The momentum encoder's EMA decay, per epoch.
        public var ema: EMASchedule
        /// λ, the feature loss's weight after its ramp.
        public var featureWeight: Double
        /// The neighbourhood-weighted loss (`--weight_mask`) instead of the plain masked MSE.
        public var weightMask: Bool

        enum CodingKeys: String, CodingKey {
            case masking, ema, featureWeight = "feature_weight", weightMask = "weight_mask"
        }

        public init(masking: MaskingSpec = .block, ema: EMASchedule, featureWeight: Double = 1, weightMask: Bool = true) {
            self.masking = masking; self.ema = ema; self.featureWeight = featureWeight; self.weightMask = weightMask
        }

        /// λ at the clock's epoch.
        public func lambda(at clock: TrainingClock) -> Float {
            Float(featureLossWeight(epoch: clock.epoch, epochs: clock.epochs, weight: featureWeight))
        }

        /// The momentum encoder's decay at the clock's epoch.
        public func emaDecay(at clock: TrainingClock) -> Float { Float(ema.decay(epoch: clock.epoch)) }
    }

    public static let flags: [ObjectiveFlag] = [
        .value("masking", "Masking: block (BootMAE's block + random top-up + roll, default) or random (MAE's)."),
        .value("ema-start", "Momentum encoder: EMA decay at the start (default 0.999)."),
        .value("ema-end", "Momentum encoder: EMA decay after the ramp (default 0.9999)."),
        .value("ema-ramp-epochs", "Epochs of the EMA ramp (default: 1/8 of the epochs, as 100 of 800 officially)."),
        .value("feature-weight", "Feature-loss weight λ, ramped in over the first 25% of epochs (default 1)."),
        .toggle("no-weight-mask", "Plain masked MSE instead of the neighbourhood-weighted loss."),
        .toggle("no-decoder-context", "Ablation: decoders without cross-attention to encoder features (plain blocks on the latent)."),
    ]

    public static func configure(_ shape: BackboneShape, maskRatio: Double, flags: ObjectiveFlagValues) throws -> (ViTConfig, Settings) {
        let half = [Float](repeating: 0.5, count: shape.channels)
        let encoder = shape.encoder(qkvBias: .qv, mean: half, std: half, posEmbed: .sincosBootMAE)
        var settings = Settings(decoderEmbedDim: shape.decoderDim, decoderDepth: shape.decoderDepth, featureDecoderDepth: shape.decoderDepth,
                                featureLayers: [0, shape.depth - 1],
                                numMask: MaskingSpec.maskedCount(ratio: maskRatio, patches: encoder.numPatches))
        if flags.isSet("no-decoder-context") { settings.decoderContext = false }
        return (encoder, settings)
    }

    public static func options(flags: ObjectiveFlagValues, epochs: Int) throws -> Options {
        let start = try flags.double("ema-start") ?? 0.999, end = try flags.double("ema-end") ?? 0.9999
        let ramp = try flags.double("ema-ramp-epochs") ?? Double(epochs) / 8
        let weight = try flags.double("feature-weight") ?? 1
        try require((0...1).contains(start) && (0...1).contains(end), "--ema-start and --ema-end are decays within 0...1")
        try require(ramp >= 0, "--ema-ramp-epochs cannot be negative")
        try require(weight >= 0, "--feature-weight cannot be negative")
        return Options(masking: try flags.choice("masking") ?? .block, ema: EMASchedule(start: start, end: end, rampEpochs: ramp),
                       featureWeight: weight, weightMask: !flags.isSet("no-weight-mask"))
    }

    /// The official final rate: 1e-4 against a 2.4e-3 peak.
    public static func defaultMinLR(peak: Double) -> Double { peak / 24 }

    /// Online parameters followed by the momentum encoder's under `model_ema.`: a full checkpoint.
    public var checkpointParameters: ParameterList {
        var all = parameters
        all.append(contentsOf: momentum.parameters, prefix: Self.momentumPrefix)
        return all
    }

    /// The online network (encoder + decoders): the momentum encoder is a training device only.
    public var exportParameters: ParameterList { parameters }

    /// The official rules also exempt the class token and the position table.
    public var noDecayNames: Set<String> { ["cls_token", "pos_embed"] }

    /// Official init (cls N(0, 1e-6²), truncated mask tokens, Xavier per q/k/v block); the momentum
    /// encoder starts as a copy of the online one.
    public func initialize(rng: inout SeededRandom) {
        ParameterInit(classTokenStd: 1e-6, truncatedMaskTokens: true, xavierPerQKVBlock: true).initialize(parameters, rng: &rng)
        resetMomentum()
    }

    /// A checkpoint without the momentum encoder (an export, an official release) starts it as a
    /// copy of the online encoder.
    public func load(_ weights: SafeTensorsFile, ignoring: [String]) throws {
        if weights.entries.keys.contains(where: { $0.hasPrefix(Self.momentumPrefix) }) {
            try ModelDirectory.load(checkpointParameters, from: weights, ignoring: ignoring)
        } else {
            try ModelDirectory.load(parameters, from: weights, ignoring: ignoring + [Self.momentumPrefix])
            resetMomentum()
        }
    }

    public var maskedCount: Int { settings.maskedCount(patches: encoder.config.numPatches) }
    public var defaultMasking: MaskingSpec { .block }

    public func plan(batch: Int, rng: inout SeededRandom, options: Options, clock: TrainingClock) -> MaskPlan {
        options.masking.plan(batch: batch, grid: encoder.config.gridSize, masked: maskedCount, rng: &rng)
    }

    public func step(_ batch: PretrainingBatch, plan: MaskPlan, options: Options, clock: TrainingClock, lossBatch: Int,
                     phase: PhaseMarker?) -> StepReport {
        let weights = options.weightMask ? plan.neighbourhoodWeights(grid: encoder.config.gridSize) : plan.lossMask
        let lambda = options.lambda(at: clock)
        let out = step(batch.images, plan: plan, weights: weights, featureWeight: lambda, lossBatch: lossBatch, phase: phase)
        return StepReport(losses: [.init("loss", out.loss), .init("pixel_loss", out.pixelLoss), .init("feature_loss", out.featureLoss)],
                          schedule: [.init("lambda", lambda), .init("ema", options.emaDecay(at: clock))])
    }

    public func afterStep(options: Options, clock: TrainingClock, report: StepReport) {
        updateMomentum(decay: options.emaDecay(at: clock))
    }

    public func predictPixels(_ images: Tensor, plan: MaskPlan) -> PixelPrediction {
        let p = encoder.config.patchSize
        return PixelPrediction(patches: pixelBranch(images, plan: plan),
                               normalization: PatchNormalization(groupSize: p * p, unbiased: false, eps: 1e-5))
    }
}
