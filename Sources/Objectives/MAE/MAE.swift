import Tensor
import ViT

/// MAE (He et al. 2022) as the official code builds it (facebookresearch/mae models_mae.py: forward_encoder,
/// random_masking, forward_decoder, forward_loss; util/pos_embed.py for the sin-cos tables):
/// the encoder on visible patches, a light decoder that appends mask tokens, unshuffles, adds
/// fixed sin-cos positions to every token, and predicts each patch's pixels in (py, px, c) order.
public struct MAE: Sendable {
    public let settings: Settings
    public let encoder: VisionTransformer
    public let decoderEmbed: Linear
    public let maskToken: Parameter
    public let decoderPosEmbed: Parameter
    public let decoderBlocks: [Block]
    public let decoderNorm: LayerNorm
    public let decoderPred: Linear
    /// Every tensor of the network under its official name (frozen tables included).
    public let parameters: ParameterList

    public struct Output: Sendable {
        public let loss: Float
        /// (B, N, p·p·C) predictions and the (normalized) targets they were scored against.
        public let prediction: Tensor
        public let target: Tensor
        public let latent: Tensor
    }

    public init(encoder c: ViTConfig, settings: Settings) {
        self.settings = settings
        let d = settings.decoderEmbedDim, eps = Float(c.layerNormEps)
        var enc = c
        if enc.posEmbed == nil || enc.posEmbed == .checkpoint { enc.posEmbed = .sincosMAE }
        encoder = VisionTransformer(config: enc, parts: .init(norm: true))
        var p = encoder.parameters
        decoderEmbed = Linear(c.embedDim, d, name: "decoder_embed", into: &p)
        maskToken = Parameter(Tensor(zeros: [1, 1, d]))
        p.add("mask_token", maskToken)
        decoderPosEmbed = Parameter(SinCosPositionalEmbedding.table(grid: c.gridSize, dim: d, order: .columnFirst), trainable: false)
        p.add("decoder_pos_embed", decoderPosEmbed)
        let heads = settings.decoderNumHeads ?? 16
        decoderBlocks = (0..<settings.decoderDepth).map {
            Block(dim: d, heads: heads, mlpHidden: Int(Double(d) * c.mlpRatio), bias: .qkv, eps: eps,
                  name: "decoder_blocks.\($0)", into: &p)
        }
        decoderNorm = LayerNorm(d, eps: eps, name: "decoder_norm", into: &p)
        decoderPred = Linear(d, c.patchSize * c.patchSize * c.inChans, name: "decoder_pred", into: &p)
        parameters = p
    }

    /// The pixel target: patches in (py, px, c) order, standardized per patch when `norm_pix_loss`.
    public func target(_ images: Tensor) -> Tensor {
        let patches = PixelTargets.patchifyChannelsLast(images, patch: encoder.config.patchSize)
        guard settings.normPixLoss ?? true else { return patches }
        return PixelTargets.normalized(patches, groupSize: patches.lastDim, unbiased: true, eps: 1e-6)
    }

    /// Forward pass, and with `backward` the gradients of every trainable parameter (accumulated).
    /// `lossBatch`: the batch the loss averages over when `images` are one shard of it (see `BootMAE.step`).
    public func step(_ images: Tensor, plan: MaskPlan, backward: Bool = true, lossBatch: Int? = nil) -> Output {
        let (enc, encCache) = encoder.forwardVisible(images, plan: plan)
        let y = decoderEmbed.forward(enc.latent)
        var x = DecoderInput.assemble(y, plan: plan, maskToken: maskToken.value)
        x = addPositions(x)
        var blockCaches: [Block.Cache] = []
        for block in decoderBlocks {
            let (out, cache) = block.forward(x)
            x = out
            blockCaches.append(cache)
        }
        let (normed, normCache) = decoderNorm.forward(x)
        let tokens = DecoderInput.dropClass(normed)
        let prediction = decoderPred.forward(tokens)
        let target = target(images)

        let mask = plan.lossMask
        let k = prediction.lastDim
        let (loss, dPrediction) = WeightedMSE.forwardBackward(prediction: prediction, target: target, weight: mask,
                                                              normalizer: Float(plan.masked * (lossBatch ?? plan.batch) * k))
        if backward {
            var g = DecoderInput.dropClassBackward(decoderPred.backward(dPrediction, input: tokens))
            g = decoderNorm.backward(g, cache: normCache)
            for (block, cache) in zip(decoderBlocks, blockCaches).reversed() { g = block.backward(g, cache: cache) }
            let dy = maskToken.withGradPointer { DecoderInput.backward(g, plan: plan, maskTokenGrad: $0) }
            let dLatent = decoderEmbed.backward(dy, input: enc.latent)
            _ = encoder.backwardVisible(dLatent: dLatent, dFeatures: [:], cache: encCache)
        }
        return Output(loss: loss, prediction: prediction, target: target, latent: enc.latent)
    }

    /// x + decoder_pos_embed on every token (the table is fixed: no gradient).
    func addPositions(_ x: Tensor) -> Tensor {
        let (b, t, d) = (x.shape[0], x.shape[1], x.shape[2])
        var out = x
        out.withMutablePointer { o in decoderPosEmbed.value.withPointer { pos in
            for bi in 0..<b { Vector.add(pos, into: o + bi * t * d, t * d) }
        } }
        return out
    }
}
