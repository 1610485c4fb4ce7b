import Foundation
import ViT

/// Architecture presets. `tiny` is sized for a 2-core CPU (Fashion-MNIST in hours, not days);
/// `small` is the benchmark's 192×12 ViT; `base` is ViT-B/16 as the official configs use it.
public enum ModelPreset: String, Codable, Sendable, CaseIterable {
    case tiny, small, base

    public func pretrainingConfig(objective: PretrainingConfig.Objective, imgSize: Int?, patchSize: Int?,
                                  channels: Int, maskRatio: Double) -> PretrainingConfig {
        let (dim, depth, heads, patch, img, decoderDim, decoderDepth): (Int, Int, Int, Int, Int, Int, Int)
        switch self {
        case .tiny: (dim, depth, heads, patch, img, decoderDim, decoderDepth) = (128, 6, 4, 4, 28, 64, 2)
        case .small: (dim, depth, heads, patch, img, decoderDim, decoderDepth) = (192, 12, 3, 4, 32, 128, 2)
        case .base: (dim, depth, heads, patch, img, decoderDim, decoderDepth) = (768, 12, 12, 16, 224, 512, objective == .mae ? 8 : 2)
        }
        let mean: [Float], std: [Float]
        if objective == .bootmae || channels == 1 {
            (mean, std) = (Array(repeating: 0.5, count: channels), Array(repeating: 0.5, count: channels))
        } else {
            (mean, std) = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
        }
        let encoder = ViTConfig(imgSize: imgSize ?? img, patchSize: patchSize ?? patch, inChans: channels, embedDim: dim,
                                depth: depth, numHeads: heads, mlpRatio: 4, qkvBias: objective == .bootmae ? .qv : .qkv,
                                layerNormEps: 1e-6, globalPool: .cls, mean: mean, std: std,
                                posEmbed: objective == .bootmae ? .sincosBootMAE : .sincosMAE)
        let n = encoder.numPatches
        switch objective {
        case .mae:
            return PretrainingConfig(objective: .mae, encoder: encoder, decoderEmbedDim: decoderDim, decoderDepth: decoderDepth,
                                     decoderNumHeads: max(1, decoderDim / 32), maskRatio: maskRatio, normPixLoss: true)
        case .bootmae:
            return PretrainingConfig(objective: .bootmae, encoder: encoder, decoderEmbedDim: decoderDim, decoderDepth: decoderDepth,
                                     featureDecoderDepth: decoderDepth, featureLayers: [0, depth - 1],
                                     numMask: Int((Double(n) * maskRatio).rounded()))
        }
    }
}

/// Everything that decides a pretraining run besides the architecture; saved in the run folder so
/// `--resume` continues with exactly the same recipe.
public struct PretrainRecipe: Codable, Sendable, Equatable {
    public var data: String
    public var seed: UInt64
    public var epochs: Int
    public var batchSize: Int
    /// Peak learning rate (already scaled by batch / 256 from the base rate when not given).
    public var lr: Double
    public var minLR: Double
    public var warmupEpochs: Double
    public var weightDecay: Double
    public var beta1: Double
    public var beta2: Double
    /// BootMAE only.
    public var ema: EMASchedule
    public var featureWeight: Double
    public var weightMask: Bool
    /// "block" (BootMAE) or "random" (MAE).
    public var masking: String
    public var checkpointEvery: Int
    public var augmentScale: ClosedRange<Double>
    /// Train on only this many images (spread over the split); nil for all.
    public var subset: Int?

    public init(data: String, seed: UInt64, epochs: Int, batchSize: Int, lr: Double, minLR: Double, warmupEpochs: Double,
                weightDecay: Double = 0.05, beta1: Double = 0.9, beta2: Double = 0.95, ema: EMASchedule,
                featureWeight: Double = 1, weightMask: Bool = true, masking: String, checkpointEvery: Int,
                augmentScale: ClosedRange<Double> = 0.2...1, subset: Int? = nil) {
        self.data = data; self.seed = seed; self.epochs = epochs; self.batchSize = batchSize; self.lr = lr
        self.minLR = minLR; self.warmupEpochs = warmupEpochs; self.weightDecay = weightDecay; self.beta1 = beta1
        self.beta2 = beta2; self.ema = ema; self.featureWeight = featureWeight; self.weightMask = weightMask
        self.masking = masking; self.checkpointEvery = checkpointEvery; self.augmentScale = augmentScale
        self.subset = subset
    }
}
