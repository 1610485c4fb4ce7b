import Foundation
import Objectives
import ViT

/// Architecture presets. `tiny` is sized for a 2-core CPU (Fashion-MNIST in hours, not days);
/// `small` is the benchmark's 192×12 ViT; `base` is ViT-B/16 as the official configs use it.
/// An objective shapes the preset's sizes into its network (`PretrainingObjective.configure`).
public enum ModelPreset: String, Codable, Sendable, CaseIterable {
    case tiny, small, base

    public func shape(channels: Int, imgSize: Int? = nil, patchSize: Int? = nil) -> BackboneShape {
        let (dim, depth, heads, patch, img, decoderDim, decoderDepth, deepDecoderDepth): (Int, Int, Int, Int, Int, Int, Int, Int)
        switch self {
        case .tiny: (dim, depth, heads, patch, img, decoderDim, decoderDepth, deepDecoderDepth) = (128, 6, 4, 4, 28, 64, 2, 2)
        case .small: (dim, depth, heads, patch, img, decoderDim, decoderDepth, deepDecoderDepth) = (192, 12, 3, 4, 32, 128, 2, 2)
        case .base: (dim, depth, heads, patch, img, decoderDim, decoderDepth, deepDecoderDepth) = (768, 12, 12, 16, 224, 512, 2, 8)
        }
        return BackboneShape(imgSize: imgSize ?? img, patchSize: patchSize ?? patch, channels: channels, embedDim: dim, depth: depth,
                             numHeads: heads, decoderDim: decoderDim, decoderDepth: decoderDepth, deepDecoderDepth: deepDecoderDepth)
    }

    /// The network `objective` builds from this preset, with its default flags.
    public func pretrainingConfig(_ objective: any PretrainingObjective.Type, channels: Int, imgSize: Int? = nil, patchSize: Int? = nil,
                                  maskRatio: Double = 0.75, flags: ObjectiveFlagValues = ObjectiveFlagValues()) throws -> PretrainingConfig {
        func build<O: PretrainingObjective>(_ o: O.Type) throws -> PretrainingConfig {
            let (encoder, settings) = try O.configure(shape(channels: channels, imgSize: imgSize, patchSize: patchSize),
                                                      maskRatio: maskRatio, flags: flags)
            return PretrainingConfig(O.self, encoder: encoder, settings: settings)
        }
        return try build(objective)
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
    public var checkpointEvery: Int
    public var augmentScale: ClosedRange<Double>
    /// Train on only this many images (spread over the split); nil for all.
    public var subset: Int?
    /// The objective's registered name and its own training options (masking, loss weights,
    /// EMA schedules, ...).
    public let objective: String
    public var objectiveOptions: any ObjectiveOptions

    public init<O: PretrainingObjective>(_ objective: O.Type, options: O.Options, data: String, seed: UInt64, epochs: Int, batchSize: Int,
                                         lr: Double, minLR: Double, warmupEpochs: Double, weightDecay: Double = 0.05,
                                         beta1: Double = 0.9, beta2: Double = 0.95, checkpointEvery: Int,
                                         augmentScale: ClosedRange<Double> = 0.2...1, subset: Int? = nil) {
        self.objective = O.name; self.objectiveOptions = options
        self.data = data; self.seed = seed; self.epochs = epochs; self.batchSize = batchSize; self.lr = lr
        self.minLR = minLR; self.warmupEpochs = warmupEpochs; self.weightDecay = weightDecay; self.beta1 = beta1
        self.beta2 = beta2; self.checkpointEvery = checkpointEvery; self.augmentScale = augmentScale
        self.subset = subset
    }

    /// A recipe for `objective`, known only by its type at run time (the command line); what is not
    /// given comes from the objective's official recipe. The peak lr is the caller's: the command line
    /// scales the objective's base rate by the batch (bootmae-train's peakLearningRate), or a resume keeps the recorded one.
    public static func make(_ objective: any PretrainingObjective.Type, flags: ObjectiveFlagValues, data: String, seed: UInt64,
                            epochs: Int, batchSize: Int, lr peak: Double, minLR: Double?, warmupEpochs: Double?, weightDecay: Double?,
                            checkpointEvery: Int, subset: Int?) throws -> PretrainRecipe {
        func build<O: PretrainingObjective>(_ o: O.Type) throws -> PretrainRecipe {
            PretrainRecipe(O.self, options: try O.options(flags: flags, epochs: epochs), data: data, seed: seed, epochs: epochs,
                           batchSize: batchSize, lr: peak, minLR: minLR ?? O.defaultMinLR(peak: peak),
                           warmupEpochs: warmupEpochs ?? Double(epochs) * O.defaultWarmupShare,
                           weightDecay: weightDecay ?? O.defaultWeightDecay, beta1: O.defaultBetas.beta1,
                           beta2: O.defaultBetas.beta2, checkpointEvery: checkpointEvery, subset: subset)
        }
        return try build(objective)
    }

    enum CodingKeys: String, CodingKey {
        case data, seed, epochs, batchSize, lr, minLR, warmupEpochs, weightDecay, beta1, beta2, checkpointEvery
        case augmentScale, subset, objective, objectiveOptions = "objective_options"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        data = try c.decode(String.self, forKey: .data)
        seed = try c.decode(UInt64.self, forKey: .seed)
        epochs = try c.decode(Int.self, forKey: .epochs)
        batchSize = try c.decode(Int.self, forKey: .batchSize)
        lr = try c.decode(Double.self, forKey: .lr)
        minLR = try c.decode(Double.self, forKey: .minLR)
        warmupEpochs = try c.decode(Double.self, forKey: .warmupEpochs)
        weightDecay = try c.decode(Double.self, forKey: .weightDecay)
        beta1 = try c.decode(Double.self, forKey: .beta1)
        beta2 = try c.decode(Double.self, forKey: .beta2)
        checkpointEvery = try c.decode(Int.self, forKey: .checkpointEvery)
        augmentScale = try c.decode(ClosedRange<Double>.self, forKey: .augmentScale)
        subset = try c.decodeIfPresent(Int.self, forKey: .subset)
        objective = try c.decode(String.self, forKey: .objective)
        guard let type = ObjectiveRegistry.objective(named: objective) else {
            throw DecodingError.dataCorruptedError(forKey: .objective, in: c, debugDescription:
                "unknown objective '\(objective)'; known objectives: \(ObjectiveRegistry.names.joined(separator: ", "))")
        }
        objectiveOptions = try type.decodeOptions(from: try c.superDecoder(forKey: .objectiveOptions))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(data, forKey: .data)
        try c.encode(seed, forKey: .seed)
        try c.encode(epochs, forKey: .epochs)
        try c.encode(batchSize, forKey: .batchSize)
        try c.encode(lr, forKey: .lr)
        try c.encode(minLR, forKey: .minLR)
        try c.encode(warmupEpochs, forKey: .warmupEpochs)
        try c.encode(weightDecay, forKey: .weightDecay)
        try c.encode(beta1, forKey: .beta1)
        try c.encode(beta2, forKey: .beta2)
        try c.encode(checkpointEvery, forKey: .checkpointEvery)
        try c.encode(augmentScale, forKey: .augmentScale)
        try c.encodeIfPresent(subset, forKey: .subset)
        try c.encode(objective, forKey: .objective)
        try objectiveOptions.encode(to: c.superEncoder(forKey: .objectiveOptions))
    }

    public static func == (a: PretrainRecipe, b: PretrainRecipe) -> Bool {
        a.data == b.data && a.seed == b.seed && a.epochs == b.epochs && a.batchSize == b.batchSize && a.lr == b.lr
            && a.minLR == b.minLR && a.warmupEpochs == b.warmupEpochs && a.weightDecay == b.weightDecay && a.beta1 == b.beta1
            && a.beta2 == b.beta2 && a.checkpointEvery == b.checkpointEvery && a.augmentScale == b.augmentScale
            && a.subset == b.subset && a.objective == b.objective && a.objectiveOptions.isEqual(to: b.objectiveOptions)
    }
}
