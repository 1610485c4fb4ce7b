import Checkpoint
import Tensor
import ViT

/// LoMaR (Chen et al., local masked reconstruction) as the official code trains it
/// (junchen14/LoMaR models_lomar.py `forward_encoder`, `generate_window_patches`, `forward_loss`):
/// the whole image is patch-embedded, K×K windows of the patch grid become the encoder's rows, a
/// share of each window's patches is replaced by `mask_token`, cls is prepended per window, the
/// encoder (no absolute positions; contextual iRPE on keys in every block) and its final norm run
/// on the window, and a linear head `encoder_pred` predicts every window patch's pixels in
/// (p, q, c) order; the loss is the normalized-pixel MSE over the masked patches. No decoder.
public struct LoMaR: Sendable {
    public let settings: Settings
    public let encoder: VisionTransformer
    public let encoderPred: Linear
    public let maskToken: Parameter
    /// The encoder, `encoder_pred`, `mask_token`, under the official names.
    public let parameters: ParameterList

    public struct Output: Sendable {
        public let loss: Float
        /// (R, K², p·p·C) predictions and the (normalized) targets, one row per window.
        public let prediction: Tensor
        public let target: Tensor
        /// (R, 1 + K², D) after the final norm.
        public let latent: Tensor
    }

    public init(encoder c: ViTConfig, settings: Settings) {
        self.settings = settings
        encoder = VisionTransformer(config: c, parts: .init(norm: true))
        var p = encoder.parameters
        encoderPred = Linear(c.embedDim, c.patchSize * c.patchSize * c.inChans, name: "encoder_pred", into: &p)
        maskToken = Parameter(Tensor(zeros: [1, 1, c.embedDim]))
        p.add("mask_token", maskToken)
        parameters = p
    }

    public var windowSize: Int { settings.windowSize(grid: encoder.config.gridSize) }

    /// Every patch's pixel target (B, N, p·p·C) in (p, q, c) order (MAE's patchify), standardized
    /// per patch with the unbiased variance and eps 1e-6 when `norm_pix_loss`; the official code
    /// gathers the window's patches first, which gives the same numbers (the norm is per patch).
    public func target(_ images: Tensor) -> Tensor {
        let patches = PixelTargets.patchifyChannelsLast(images, patch: encoder.config.patchSize)
        guard let norm = pixelNormalization else { return patches }
        return PixelTargets.normalized(patches, groupSize: norm.groupSize, unbiased: norm.unbiased, eps: norm.eps)
    }

    /// How the pixel target standardizes each patch (`norm_pix_loss`, on by default); nil: raw pixels.
    var pixelNormalization: PatchNormalization? {
        (settings.normPixLoss ?? true) ? PatchNormalization(groupSize: encoder.config.patchDim, unbiased: true, eps: 1e-6) : nil
    }

    /// What one forward keeps for backward.
    struct Forward {
        let prediction: Tensor, latent: Tensor, tokens: Tensor
        let patchCache: PatchEmbed.Cache, cache: VisionTransformer.TokenCache
    }

    /// patch_embed on the whole image → the plan's windows → masked patches ← mask_token → cls +
    /// encoder + norm per window → encoder_pred on the window tokens: (R, K², p·p·C).
    func forward(_ images: Tensor, windows: [TokenWindow], size k: Int, maskFlags flags: [Bool]) -> Forward {
        let (patches, patchCache) = encoder.patchEmbed.forward(images)
        let rows = TokenOps.windows(patches, gridWidth: encoder.config.gridSize, size: k, windows: windows)
        let (latent, cache) = encoder.forwardTokens(TokenOps.replaceMasked(rows, mask: flags, with: maskToken.value))
        let tokens = DecoderInput.dropClass(latent)
        return Forward(prediction: encoderPred.forward(tokens), latent: latent, tokens: tokens, patchCache: patchCache, cache: cache)
    }

    /// Forward, and with `backward` every trainable gradient (accumulated). `lossBatch`: the images
    /// the loss averages over when `images` are one shard of them: the loss is the mean over the
    /// masked patches of all the batch's windows (`(loss * mask).sum() / mask.sum()`).
    public func step(_ images: Tensor, plan: LoMaRPlan, backward: Bool = true, lossBatch: Int? = nil) -> Output {
        let c = encoder.config
        let (b, n, grid, k) = (images.shape[0], c.numPatches, c.gridSize, plan.size)
        precondition(plan.batch == b, "LoMaR: a plan of \(plan.batch) images for \(b)")
        let flags = plan.maskFlags
        let f = forward(images, windows: plan.windows, size: k, maskFlags: flags)
        let target = TokenOps.windows(target(images), gridWidth: grid, size: k, windows: plan.windows)

        let dim = f.prediction.lastDim
        let masked = plan.maskedPerWindow * plan.windowsPerImage * (lossBatch ?? b)
        let (loss, dPrediction) = WeightedMSE.forwardBackward(prediction: f.prediction, target: target, weight: flags.map { $0 ? 1 : 0 },
                                                              normalizer: Float(masked * dim))
        if backward {
            let dLatent = DecoderInput.dropClassBackward(encoderPred.backward(dPrediction, input: f.tokens))
            let dMasked = encoder.backwardTokens(dLatent, cache: f.cache)
            let dWindows = maskToken.withGradPointer { TokenOps.replaceMaskedBackward(dMasked, mask: flags, embeddingGrad: $0) }
            let dPatches = TokenOps.windowsBackward(dWindows, batch: b, tokens: n, gridWidth: grid, size: k, windows: plan.windows)
            _ = encoder.patchEmbed.backward(dPatches, cache: f.patchCache)
        }
        return Output(loss: loss, prediction: f.prediction, target: target, latent: f.latent)
    }
}
