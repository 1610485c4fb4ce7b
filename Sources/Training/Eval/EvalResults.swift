import Foundation

/// A k-NN evaluation, as written to JSON.
public struct KNNResult: Codable, Sendable, Equatable {
    public var evaluation = "knn"
    /// Top-1 accuracy on the test features, in [0, 1].
    public var top1: Double
    public var correct: Int
    public var testCount: Int
    public var trainCount: Int
    /// Neighbours that voted (k, or the train count when smaller).
    public var k: Int
    public var temperature: Double
    public var similarity = "cosine"
    /// "cls", "mean" or "block:N" (nil when the features did not come from `FeatureExtractor`).
    public var featureSource: String?
    /// True when the train split's mean feature was subtracted from both splits first (`knn --center`).
    public var centred: Bool?
    /// Transformer blocks the features passed through.
    public var layer: Int?
    public var dim: Int
    public var classes: Int
    /// Top-1 per class name (classes present in the test split).
    public var perClass: [String: Double]
    /// Time of the k-NN itself, and of extracting the train and test features.
    public var seconds: Double
    public var featureSeconds: Double
    /// The train split (the neighbours) and the test split measured.
    public var data: MeasuredData? = nil

    public init(top1: Double, correct: Int, testCount: Int, trainCount: Int, k: Int, temperature: Double,
                featureSource: String?, layer: Int?, dim: Int, classes: Int, perClass: [String: Double],
                seconds: Double, featureSeconds: Double) {
        self.top1 = top1; self.correct = correct; self.testCount = testCount; self.trainCount = trainCount; self.k = k
        self.temperature = temperature; self.featureSource = featureSource; self.layer = layer; self.dim = dim
        self.classes = classes; self.perClass = perClass; self.seconds = seconds; self.featureSeconds = featureSeconds
    }
}

/// A linear-probe run, as written to JSON.
public struct LinearProbeResult: Codable, Sendable, Equatable {
    public var evaluation = "linear_probe"
    /// Top-1 on the test split after the last epoch (nil without a test split).
    public var top1: Double?
    /// Top-1 on the train features after the last epoch (evaluation mode).
    public var trainTop1: Double
    /// Test top-1 per class name.
    public var perClass: [String: Double]
    public var featureSource: String?
    public var layer: Int?
    public var dim: Int
    public var classes: Int
    public var trainCount: Int
    public var testCount: Int
    public var head = "batchnorm1d(affine=false, eps=1e-6) + linear"
    public var optimizer = "sgd_momentum"
    public var epochs: Int
    public var batchSize: Int
    /// Peak learning rate (after warmup), and the base rate it was scaled from (× batch / 256).
    public var lr: Double
    public var baseLR: Double
    public var minLR: Double
    public var warmupEpochs: Double
    public var momentum: Double
    public var weightDecay: Double
    public var seed: UInt64
    /// Mean train loss of every epoch, and the test top-1 after it (empty without a test split).
    public var epochLosses: [Double]
    public var epochTestTop1: [Double]
    /// Time of the training, and of extracting the features.
    public var seconds: Double
    public var featureSeconds: Double
    /// The train split (fitted) and the test split measured.
    public var data: MeasuredData? = nil

    public init(top1: Double?, trainTop1: Double, perClass: [String: Double], featureSource: String?, layer: Int?, dim: Int,
                classes: Int, trainCount: Int, testCount: Int, epochs: Int, batchSize: Int, lr: Double, baseLR: Double,
                minLR: Double, warmupEpochs: Double, momentum: Double, weightDecay: Double, seed: UInt64,
                epochLosses: [Double], epochTestTop1: [Double], seconds: Double, featureSeconds: Double) {
        self.top1 = top1; self.trainTop1 = trainTop1; self.perClass = perClass; self.featureSource = featureSource
        self.layer = layer; self.dim = dim; self.classes = classes; self.trainCount = trainCount; self.testCount = testCount
        self.epochs = epochs; self.batchSize = batchSize; self.lr = lr; self.baseLR = baseLR; self.minLR = minLR
        self.warmupEpochs = warmupEpochs; self.momentum = momentum; self.weightDecay = weightDecay; self.seed = seed
        self.epochLosses = epochLosses; self.epochTestTop1 = epochTestTop1; self.seconds = seconds
        self.featureSeconds = featureSeconds
    }
}
