import Tensor
import ViT

/// BootMAE (Dong et al. 2022) as the official code builds it (LightDXY/BootMAE
/// models/modeling_pretrain_bootmae.py: VisionTransformerForMaskedImageModeling, Decode_Block,
/// Cross_Attention, PatchDeEmbed; targets, losses and the momentum update in run_pretraining.py
/// train_one_epoch and utils.py adjust_ema_momentum):
/// an online encoder on visible tokens; a pixel decoder and a feature decoder, each cross-attending
/// to an online-encoder block's output (the "target-aware" decoders); a momentum encoder that sees
/// the whole image and provides the feature targets.
public struct BootMAE: Sendable {
    public let settings: Settings
    public let encoder: VisionTransformer
    /// EMA copy of the encoder; saved under `model_ema.`; never receives gradients.
    public let momentum: VisionTransformer

    // Pixel branch.
    public let down: Linear
    public let maskToken: Parameter
    public let decoderPosEmbed: Parameter
    public let pixelBlocks: [DecoderBlock]
    public let pixelNorm: LayerNorm
    public let pixelHead: PatchDeEmbed
    // Feature branch.
    public let featureDown: Linear
    public let featureMaskToken: Parameter
    public let featureBlocks: [DecoderBlock]
    public let featureNorm: LayerNorm
    public let featureHead: Linear

    /// The online network under its official names (frozen tables included).
    public let parameters: ParameterList
    public static let momentumPrefix = "model_ema."

    public struct Output: Sendable {
        public let loss: Float
        public let pixelLoss: Float
        public let featureLoss: Float
        /// (B, N, C·p·p) pixel predictions in (c, py, px) order, and their per-channel-normalized targets.
        public let pixelPrediction: Tensor
        public let pixelTarget: Tensor
        /// (B, N, D) feature predictions and momentum targets, before the parameter-free LayerNorm.
        public let featurePrediction: Tensor
        public let featureTarget: Tensor
        public let latent: Tensor
    }

    public init(encoder c: ViTConfig, settings: Settings) {
        self.settings = settings
        let dp = settings.decoderEmbedDim, dim = c.embedDim, eps = Float(c.layerNormEps)
        var enc = c
        if enc.posEmbed == nil || enc.posEmbed == .checkpoint { enc.posEmbed = .sincosBootMAE }
        encoder = VisionTransformer(config: enc, parts: .init(norm: true))
        momentum = VisionTransformer(config: enc, parts: .init(norm: true))
        var p = encoder.parameters
        let heads = settings.decoderNumHeads ?? c.numHeads
        let usesContext = settings.usesDecoderContext
        down = Linear(dim, dp, name: "down", into: &p)
        maskToken = Parameter(Tensor(zeros: [1, 1, dp]))
        p.add("mask_token", maskToken)
        decoderPosEmbed = Parameter(SinCosPositionalEmbedding.table(grid: c.gridSize, dim: dp, order: .rowFirst), trainable: false)
        p.add("de_pos_embed", decoderPosEmbed)
        pixelBlocks = (0..<settings.decoderDepth).map {
            DecoderBlock(dim: dp, contextDim: dim, heads: heads, mlpHidden: Int(Double(dp) * c.mlpRatio), eps: eps,
                         name: "decode_blocks.\($0)", usesContext: usesContext, into: &p)
        }
        pixelNorm = LayerNorm(dp, eps: eps, name: "decode_norm", into: &p)
        pixelHead = PatchDeEmbed(dim: dp, channels: c.inChans, patch: c.patchSize, name: "lm_head.proj", into: &p)
        featureDown = Linear(dim, dim, name: "down_1", into: &p)
        featureMaskToken = Parameter(Tensor(zeros: [1, 1, dim]))
        p.add("mask_token_1", featureMaskToken)
        featureBlocks = (0..<(settings.featureDecoderDepth ?? settings.decoderDepth)).map {
            DecoderBlock(dim: dim, contextDim: dim, heads: c.numHeads, mlpHidden: c.mlpHidden, eps: eps,
                         name: "decode_blocks_1.\($0)", usesContext: usesContext, into: &p)
        }
        featureNorm = LayerNorm(dim, eps: eps, name: "decode_norm_1", into: &p)
        featureHead = Linear(dim, dim, name: "lm_head_1", into: &p)
        parameters = p
    }

    /// Sets the momentum encoder to a copy of the online encoder (the start of training).
    public func resetMomentum() {
        for ((_, online), (_, ema)) in zip(encoder.parameters.entries, momentum.parameters.entries) { ema.value = online.value }
    }

    /// ema ← m·ema + (1 − m)·online, for every encoder tensor (timm `ModelEma`).
    public func updateMomentum(decay m: Float) {
        do { try momentum.parameters.updateEMA(from: encoder.parameters, decay: m) } catch {
            preconditionFailure("the momentum encoder is built like the online one: \(error)")
        }
    }

    /// Per-(patch, channel) standardized pixels in (c, py, px) patch order: the pixel target.
    public func pixelTarget(_ images: Tensor) -> Tensor {
        let p = encoder.config.patchSize
        return PixelTargets.normalized(PatchOps.patchify(images, patch: p), groupSize: p * p, unbiased: false, eps: 1e-5)
    }

    /// Forward pass; with `backward`, gradients of every trainable online parameter (accumulated).
    /// `weights` (B·N, original order) are the per-patch loss weights: the neighbourhood weights of
    /// `MaskPlan.neighbourhoodWeights` or the plain mask. `featureWeight` is λ of the total loss.
    /// `lossBatch`: the batch the losses average over, when `images` are one shard of it (data
    /// parallelism); shards' losses and gradients then add up to the whole batch's.
    /// `phase`, when given, is called with each phase's name as it ends (bench breakdowns).
    public func step(_ images: Tensor, plan: MaskPlan, weights: [Float], featureWeight lambda: Float,
                     backward: Bool = true, lossBatch: Int? = nil, phase: PhaseMarker? = nil) -> Output {
        let layers = settings.decoderContextLayers(depth: encoder.config.depth)
        let (pixelLayer, featureLayer) = (layers.first, layers.last)
        let (enc, encCache) = encoder.forwardVisible(images, plan: plan, featureLayers: Array(Set(layers)))
        phase?("encoder forward")
        let masked = Float((lossBatch ?? plan.batch) * plan.masked)

        // Pixel branch: mask tokens carry decoder positions; visible tokens carry none.
        let pixelRun = runDecoder(enc.latent, down: down, maskToken: maskToken.value, positions: decoderPosEmbed.value,
                                  blocks: pixelBlocks, norm: pixelNorm, context: pixelLayer.map { enc.features[$0]! }, plan: plan)
        let pixelPrediction = pixelHead.forward(pixelRun.tokens)
        let pixelTarget = pixelTarget(images)
        let (pixelLoss, dPixel) = WeightedMSE.forwardBackward(prediction: pixelPrediction, target: pixelTarget, weight: weights,
                                                              normalizer: masked * Float(pixelPrediction.lastDim))
        phase?("pixel decoder forward + loss")

        // Feature branch: predicts the momentum encoder's last-block features, both sides
        // standardized by a parameter-free LayerNorm.
        let featureRun = runDecoder(enc.latent, down: featureDown, maskToken: featureMaskToken.value, positions: encoder.posEmbed.value,
                                    blocks: featureBlocks, norm: featureNorm, context: featureLayer.map { enc.features[$0]! }, plan: plan)
        let featurePrediction = featureHead.forward(featureRun.tokens)
        phase?("feature decoder forward")
        let featureTarget = DecoderInput.dropClass(momentum.lastBlockOutput(images))
        phase?("momentum encoder forward")
        let (predNormed, predStats) = LayerNormOp.forward(featurePrediction, weight: nil, bias: nil, eps: 1e-6)
        let targetNormed = LayerNormOp.forward(featureTarget, weight: nil, bias: nil, eps: 1e-6).0
        var (featureLoss, dFeatureNormed) = WeightedMSE.forwardBackward(prediction: predNormed, target: targetNormed, weight: weights,
                                                                        normalizer: masked * Float(featurePrediction.lastDim))
        phase?("feature loss")

        if backward {
            let dPixelTokens = pixelHead.backward(dPixel, input: pixelRun.tokens)
            let (dzPixel, dContextPixel) = backDecoder(dPixelTokens, run: pixelRun, down: down, maskToken: maskToken,
                                                       blocks: pixelBlocks, norm: pixelNorm, plan: plan)
            phase?("pixel decoder backward")
            dFeatureNormed.scale(by: lambda)
            let dFeaturePrediction = LayerNormOp.backward(dFeatureNormed, input: featurePrediction, saved: predStats,
                                                          weight: nil, weightGrad: nil, biasGrad: nil)
            let dFeatureTokens = featureHead.backward(dFeaturePrediction, input: featureRun.tokens)
            let (dzFeature, dContextFeature) = backDecoder(dFeatureTokens, run: featureRun, down: featureDown,
                                                           maskToken: featureMaskToken, blocks: featureBlocks, norm: featureNorm, plan: plan)
            phase?("feature decoder backward")
            var dLatent = dzPixel
            dLatent.add(dzFeature)
            var dFeatures: [Int: Tensor] = [:]
            for (layer, d) in [(pixelLayer, dContextPixel), (featureLayer, dContextFeature)] {
                guard let layer, let d else { continue }
                if var existing = dFeatures[layer] { existing.add(d); dFeatures[layer] = existing } else { dFeatures[layer] = d }
            }
            _ = encoder.backwardVisible(dLatent: dLatent, dFeatures: dFeatures, cache: encCache)
            phase?("encoder backward")
        }
        return Output(loss: pixelLoss + lambda * featureLoss, pixelLoss: pixelLoss, featureLoss: featureLoss,
                      pixelPrediction: pixelPrediction, pixelTarget: pixelTarget,
                      featurePrediction: featurePrediction, featureTarget: featureTarget, latent: enc.latent)
    }

    /// The pixel branch alone (no momentum encoder, no feature branch): normalized-pixel
    /// predictions (B, N, C·p·p) in (c, py, px) order, for reconstructions.
    public func pixelBranch(_ images: Tensor, plan: MaskPlan) -> Tensor {
        let layer = settings.decoderContextLayers(depth: encoder.config.depth).first
        let (enc, _) = encoder.forwardVisible(images, plan: plan, featureLayers: layer.map { [$0] } ?? [])
        let run = runDecoder(enc.latent, down: down, maskToken: maskToken.value, positions: decoderPosEmbed.value,
                             blocks: pixelBlocks, norm: pixelNorm, context: layer.map { enc.features[$0]! }, plan: plan)
        return pixelHead.forward(run.tokens)
    }

    /// What a decoder branch keeps for its backward pass.
    struct DecoderRun {
        let latent: Tensor
        let blocks: [DecoderBlock.Cache]
        let norm: LayerNorm.Cache
        /// (B, N, width): normed decoder tokens without cls, the head's input.
        let tokens: Tensor
    }

    func runDecoder(_ latent: Tensor, down: Linear, maskToken: Tensor, positions: Tensor, blocks: [DecoderBlock],
                    norm: LayerNorm, context: Tensor?, plan: MaskPlan) -> DecoderRun {
        var x = DecoderInput.assemble(down.forward(latent), plan: plan, maskToken: maskToken, maskPositions: positions)
        var caches: [DecoderBlock.Cache] = []
        for block in blocks {
            let (y, cache) = block.forward(x, context: context)
            x = y
            caches.append(cache)
        }
        let (normed, nc) = norm.forward(x)
        return DecoderRun(latent: latent, blocks: caches, norm: nc, tokens: DecoderInput.dropClass(normed))
    }

    /// Returns (d latent, d context); d context is nil for decoders without context.
    func backDecoder(_ dTokens: Tensor, run: DecoderRun, down: Linear, maskToken: Parameter, blocks: [DecoderBlock],
                     norm: LayerNorm, plan: MaskPlan) -> (Tensor, Tensor?) {
        var g = norm.backward(DecoderInput.dropClassBackward(dTokens), cache: run.norm)
        var dContext: Tensor?
        for (block, cache) in zip(blocks, run.blocks).reversed() {
            let (dx, dc) = block.backward(g, cache: cache)
            g = dx
            if let dc { if dContext == nil { dContext = dc } else { dContext!.add(dc) } }
        }
        let dy = maskToken.withGradPointer { DecoderInput.backward(g, plan: plan, maskTokenGrad: $0) }
        return (down.backward(dy, input: run.latent), dContext)
    }
}
