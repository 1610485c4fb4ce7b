import Tensor
import ViT

/// PeCo's stage 2, which is BEiT's masked image modeling with PeCo's codes as the vocabulary
/// (microsoft/unilm beit/modeling_pretrain.py `VisionTransformerForMaskedImageModeling`,
/// beit/engine_for_pretraining.py `train_one_epoch`): a fresh ViT sees every patch, the block-masked
/// ones replaced by `mask_token` (after the patch embedding, before cls and the positions), runs
/// all tokens through its blocks and final norm, and `lm_head` Linear(D, K) on the masked
/// positions only predicts each masked patch's code; the loss is the cross-entropy against the
/// frozen tokenizer's codes, averaged over every masked patch of the batch. `mlm_acc` is the share
/// of masked patches whose code is the arg-max.
public struct PeCo: Sendable {
    public let settings: Settings
    public let encoder: VisionTransformer
    public let maskToken: Parameter
    public let lmHead: Linear
    /// Encoder, `mask_token`, `lm_head` under BEiT's names.
    public let parameters: ParameterList

    public init(encoder c: ViTConfig, settings: Settings) {
        self.settings = settings
        var enc = c
        if enc.posEmbed == nil { enc.posEmbed = .checkpoint }
        encoder = VisionTransformer(config: enc, parts: .init(norm: true))
        var p = encoder.parameters
        maskToken = Parameter(Tensor(zeros: [1, 1, c.embedDim]))
        p.add("mask_token", maskToken)
        lmHead = Linear(c.embedDim, settings.vocabSize, name: "lm_head", into: &p)
        parameters = p
    }

    public struct Output: Sendable {
        /// Mean cross-entropy over the masked patches (this shard's share of the batch's mean).
        public let loss: Float
        /// Correct arg-max predictions over the batch's masked patches (this shard's share).
        public let accuracy: Float
        /// (M, K) logits of the masked patches, image-major then patch order.
        public let logits: Tensor
    }

    /// Forward and, with `backward`, every gradient (accumulated). `labels[b][i]`: the code of
    /// patch i of image b; `maskedInBatch`: the masked patches of the whole batch these images
    /// are a shard of (the loss's denominator; default: this shard's).
    public func step(_ images: Tensor, masks: [[Bool]], labels: [[Int]], maskedInBatch: Int? = nil, backward: Bool = true) -> Output {
        let n = encoder.config.numPatches, tokens = n + 1
        precondition(labels.count == masks.count && labels.allSatisfy { $0.count == n }, "PeCo: a code per patch of every image")
        let rows = masks.enumerated().flatMap { b, mask in mask.indices.filter { mask[$0] }.map { b * tokens + 1 + $0 } }
        let targets = masks.enumerated().flatMap { b, mask in mask.indices.filter { mask[$0] }.map { labels[b][$0] } }
        let (encoded, cache) = encoder.forwardMasked(images, mask: masks, maskEmbed: maskToken)
        let selected = TokenRows.gather(encoded.latent, rows)
        let logits = lmHead.forward(selected)
        let denominator = maskedInBatch ?? rows.count
        guard !rows.isEmpty else { return Output(loss: 0, accuracy: 0, logits: logits) }
        let (loss, dLogits) = CrossEntropy.forwardBackward(logits: logits, labels: targets, lossBatch: denominator)
        let correct = zip(CrossEntropy.argmax(logits), targets).filter { $0 == $1 }.count
        if backward {
            let dSelected = lmHead.backward(dLogits, input: selected)
            let dLatent = TokenRows.scatter(dSelected, rows, images: images.shape[0], tokens: tokens)
            _ = encoder.backwardMasked(dLatent: dLatent, cache: cache)
        }
        return Output(loss: loss, accuracy: Float(correct) / Float(denominator), logits: logits)
    }
}
