import Foundation
import Tensor
import ViT
import Checkpoint

/// A ViT classifier as BootMAE and MAE fine-tune it: encoder without the final norm, mean of the
/// patch tokens, a fresh `fc_norm`, and a linear `head` (timm `global_pool='avg'` layout).
public struct Classifier: Sendable {
    public let model: VisionTransformer

    public struct Cache: Sendable {
        let encoder: VisionTransformer.Cache
        let fcNorm: LayerNorm.Cache
        let pooled: Tensor
        let normed: Tensor
        let tokens: Int
    }

    public init(config: ViTConfig, classes: [String]) {
        var c = config
        c.globalPool = .mean
        c.labels = classes
        model = VisionTransformer(config: c, parts: .init(norm: false, fcNorm: true, headClasses: classes.count))
    }

    /// A loaded fine-tuned model (fc_norm + head present).
    public init(wrapping model: VisionTransformer, classes: [String]) {
        precondition(model.fcNorm != nil && model.head != nil, "a classifier needs fc_norm and head")
        self.model = model
    }

    public var parameters: ParameterList { model.parameters }
    /// The class names, in the head's output order.
    public var classes: [String] { model.config.labels ?? [] }

    /// A classifier of the same layout whose weights are still to be set (a data-parallel copy).
    public func sameLayout() -> Classifier {
        Classifier(wrapping: VisionTransformer(config: model.config, parts: model.parts), classes: model.config.labels ?? [])
    }

    /// Fresh head and fc_norm, encoder from `weights` by name where present (official init of the
    /// head: trunc_normal(std 0.02) × 0.001; fc_norm 1/0). Without weights the whole model is drawn anew.
    public func initialize(from pretrained: ParameterList?, seed: UInt64) throws {
        var rng = SeededRandom(seed: seed, stream: 0xF1E7)
        WeightInit.initialize(model, style: model.config.qkvBias == .qv ? .bootmae : .mae, rng: &rng)
        if let head = model.head {
            head.weight.fill { rng.truncatedNormal(std: 0.02, lo: -0.04, hi: 0.04) * 0.001 }
        }
        guard let pretrained else { return }
        var copied = 0
        for (name, p) in model.parameters.entries where !name.hasPrefix("fc_norm") && !name.hasPrefix("head") {
            guard let source = pretrained[name] else {
                if p.trainable { throw CheckpointError.missingTensor(name, expected: p.shape) }
                continue
            }
            guard source.value.count == p.value.count else {
                throw CheckpointError.shapeMismatch(name, expected: p.shape, found: source.shape)
            }
            p.value = source.value.reshaped(p.shape)
            copied += 1
        }
        precondition(copied > 0)
    }

    /// images → logits (B, K).
    public func forward(_ images: Tensor) -> (Tensor, Cache) {
        let (tokens, ec) = model.forward(images)
        // Mean of the patch tokens (the encoder has no final norm here), then fc_norm.
        let pooled = TokenOps.mean(tokens, from: 1)
        let (normed, nc) = model.fcNorm!.forward(pooled)
        return (model.head!.forward(normed), Cache(encoder: ec, fcNorm: nc, pooled: pooled, normed: normed, tokens: tokens.shape[1]))
    }

    public func backward(_ dLogits: Tensor, cache: Cache) {
        let dNormed = model.head!.backward(dLogits, input: cache.normed)
        let dPooled = model.fcNorm!.backward(dNormed, cache: cache.fcNorm)
        _ = model.backward(TokenOps.meanBackward(dPooled, tokens: cache.tokens, from: 1), cache: cache.encoder)
    }

    /// One training step's forward, label-smoothed cross-entropy and backward (gradients
    /// accumulate); returns the loss. `lossBatch`: the batch the loss averages over when `images`
    /// are one shard of it (`FinetuneStep`).
    public func trainStep(_ images: Tensor, labels: [Int], smoothing: Float, lossBatch: Int? = nil) -> Float {
        let (logits, cache) = forward(images)
        let (loss, dLogits) = CrossEntropy.forwardBackward(logits: logits, labels: labels, smoothing: smoothing,
                                                           lossBatch: lossBatch)
        backward(dLogits, cache: cache)
        return loss
    }

    /// Inference: logits without caches (the same numbers as `forward`), through the encoder's
    /// own mean pooling (fc_norm of the patch-token mean) and head.
    public func logits(_ images: Tensor) -> Tensor {
        model.classify(model.embed(images, pooling: .mean))!
    }

    /// Encoder weights from a pretraining run folder (its checkpoint) or any model directory.
    public static func pretrainedEncoder(_ path: String) throws -> (ViTConfig, ParameterList) {
        let encoder = try ModelSource.encoder(path)
        return (encoder.config, encoder.parameters)
    }
}
