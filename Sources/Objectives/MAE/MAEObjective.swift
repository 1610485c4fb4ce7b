import Tensor
import ViT

/// MAE behind the objective seam: its settings, options, training step and reconstructions.
extension MAE: PretrainingObjective, PixelReconstructing {
    public static let name = "mae"
    public static let displayName = "MAE"
    public static let summary = "MAE: visible patches through the encoder, a light decoder predicts the masked pixels"
    public static let lossNames = ["loss"]

    /// config.json beside the encoder (official `models_mae.py` constructor arguments).
    public struct Settings: ObjectiveSettings {
        public var decoderEmbedDim: Int
        public var decoderDepth: Int
        /// Decoder heads (official default 16).
        public var decoderNumHeads: Int?
        /// Masked share (default 0.75); ⌊N·(1 − ratio)⌋ patches stay visible.
        public var maskRatio: Double?
        /// Standardized per-patch pixel target (default on).
        public var normPixLoss: Bool?

        enum CodingKeys: String, CodingKey {
            case decoderEmbedDim = "decoder_embed_dim", decoderDepth = "decoder_depth", decoderNumHeads = "decoder_num_heads"
            case maskRatio = "mask_ratio", normPixLoss = "norm_pix_loss"
        }

        public init(decoderEmbedDim: Int, decoderDepth: Int, decoderNumHeads: Int? = nil, maskRatio: Double? = nil, normPixLoss: Bool? = nil) {
            self.decoderEmbedDim = decoderEmbedDim; self.decoderDepth = decoderDepth; self.decoderNumHeads = decoderNumHeads
            self.maskRatio = maskRatio; self.normPixLoss = normPixLoss
        }

        public func maskedCount(patches: Int) -> Int { MaskingSpec.maskedCount(ratio: maskRatio ?? 0.75, patches: patches) }

        public func validationErrors(encoder: ViTConfig) -> [String] {
            DecoderChecks.errors(width: decoderEmbedDim, depth: decoderDepth, heads: decoderNumHeads ?? 16, encoder: encoder,
                                 masked: maskedCount(patches: encoder.numPatches))
        }
    }

    public struct Options: ObjectiveOptions {
        public var masking: MaskingSpec
        public init(masking: MaskingSpec = .random) { self.masking = masking }
    }

    public static let flags: [ObjectiveFlag] = [
        .value("masking", "Masking: random (MAE's, default) or block (BootMAE's block + random top-up + roll)."),
    ]

    public static func configure(_ shape: BackboneShape, maskRatio: Double, flags: ObjectiveFlagValues) throws -> (ViTConfig, Settings) {
        let (mean, std) = shape.imageNetNormalization
        let encoder = shape.encoder(qkvBias: .qkv, mean: mean, std: std, posEmbed: .sincosMAE)
        return (encoder, Settings(decoderEmbedDim: shape.decoderDim, decoderDepth: shape.deepDecoderDepth,
                                  decoderNumHeads: max(1, shape.decoderDim / 32), maskRatio: maskRatio, normPixLoss: true))
    }

    public static func options(flags: ObjectiveFlagValues, epochs: Int) throws -> Options {
        Options(masking: try flags.choice("masking") ?? .random)
    }

    /// Official init: cls and mask tokens N(0, 0.02²), Xavier over whole qkv matrices.
    public func initialize(rng: inout SeededRandom) {
        ParameterInit(classTokenStd: 0.02, truncatedMaskTokens: false, xavierPerQKVBlock: false).initialize(parameters, rng: &rng)
    }

    public var maskedCount: Int { settings.maskedCount(patches: encoder.config.numPatches) }
    public var defaultMasking: MaskingSpec { .random }

    public func plan(batch: Int, rng: inout SeededRandom, options: Options, clock: TrainingClock) -> MaskPlan {
        options.masking.plan(batch: batch, grid: encoder.config.gridSize, masked: maskedCount, rng: &rng)
    }

    public func step(_ batch: PretrainingBatch, plan: MaskPlan, options: Options, clock: TrainingClock, lossBatch: Int,
                     phase: PhaseMarker?) -> StepReport {
        let out = step(batch.images, plan: plan, lossBatch: lossBatch)
        phase?("mae forward + backward")
        // The pixel loss is the whole loss; it is reported under both names so that runs of every
        // objective plot their pixel losses on one chart.
        return StepReport(losses: [.init("loss", out.loss), .init("pixel_loss", out.loss)])
    }

    public func predictPixels(_ images: Tensor, plan: MaskPlan) -> PixelPrediction {
        let c = encoder.config
        let p = c.patchSize
        let out = step(images, plan: plan, backward: false).prediction
        let image = PixelTargets.unpatchifyChannelsLast(out, patch: p, channels: c.inChans, height: c.imgSize, width: c.imgSize)
        let normalized = settings.normPixLoss ?? true
        return PixelPrediction(patches: PatchOps.patchify(image, patch: p),
                               normalization: normalized ? PatchNormalization(groupSize: c.patchDim, unbiased: true, eps: 1e-6) : nil)
    }
}
