import Foundation
import Tensor
import ViT

/// A problem with the input of a frozen-feature evaluation, as a sentence for the CLI.
public struct EvalError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Where an image's feature vector comes from.
public enum FeatureSource: Sendable, Hashable, CustomStringConvertible {
    /// The model's own pooling of its final tokens (`VisionTransformer.pool`): `cls` is the normed
    /// cls token; `mean` is fc_norm(mean of the patch tokens) when the model has fc_norm, else the
    /// mean of the normed patch tokens.
    case pooled(ViTConfig.Pooling)
    /// BootMAE's linear-probe features (`main_linprobe.py --depth n --global_pool` on the ViT of
    /// `mae_util/models.py`; `scripts/linear/bash_linear_BootMAE_Base_800.sh` probes after 10 of 12
    /// blocks): the tokens after the first `n` blocks (no final norm), the mean of the patch tokens,
    /// then a parameter-free LayerNorm — `fc_norm` at its initialisation (weight 1, bias 0, the
    /// config's eps), which the official probe never trains.
    case block(Int)
    /// The model's input itself, flattened (C·H·W values after its resize, crop and normalization):
    /// the baseline a learned feature has to beat.
    case pixels

    /// "cls", "mean", "block:N" (also "blockN") or "pixels", the spelling `description` gives back.
    public init?(_ text: String) {
        let t = text.lowercased()
        if t == "pixels" { self = .pixels; return }
        if let pooling = ViTConfig.Pooling(rawValue: t) { self = .pooled(pooling); return }
        for prefix in ["block:", "block"] where t.hasPrefix(prefix) {
            if let n = Int(t.dropFirst(prefix.count)), n >= 1 { self = .block(n); return }
        }
        return nil
    }

    public var description: String {
        switch self {
        case .pooled(let pooling): pooling.rawValue
        case .block(let n): "block:\(n)"
        case .pixels: "pixels"
        }
    }

    /// Transformer blocks the features have passed through.
    public func layer(depth: Int) -> Int {
        switch self {
        case .pooled: depth
        case .block(let n): n
        case .pixels: 0
        }
    }
}

extension FeatureSource: Codable {
    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let source = FeatureSource(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "feature source must be cls, mean, block:N or pixels, got \(text)"))
        }
        self = source
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// One feature vector per image of a dataset split, in dataset order.
public struct FeatureSet: Sendable {
    /// count × dim, row-major.
    public var features: [Float]
    /// The label of each row; −1 for unlabeled samples.
    public var labels: [Int]
    public var dim: Int
    /// The dataset index of each row (0..<count unless unreadable images were skipped).
    public var indices: [Int]
    /// Class names in label order (empty when unknown).
    public var classes: [String]
    public var source: FeatureSource?
    /// Transformer blocks the features passed through.
    public var layer: Int?
    /// Images of the dataset that could not be read (they have no row).
    public var skipped: Int
    /// Wall time of the extraction.
    public var seconds: Double

    public init(features: [Float], labels: [Int], dim: Int, indices: [Int]? = nil, classes: [String] = [],
                source: FeatureSource? = nil, layer: Int? = nil, skipped: Int = 0, seconds: Double = 0) {
        precondition(dim > 0 && features.count == labels.count * dim,
                     "FeatureSet: \(features.count) floats for \(labels.count) rows of width \(dim)")
        self.features = features; self.labels = labels; self.dim = dim
        self.indices = indices ?? Array(labels.indices)
        self.classes = classes; self.source = source; self.layer = layer; self.skipped = skipped; self.seconds = seconds
    }

    public var count: Int { labels.count }

    /// Number of classes: the class names' count, or one more than the largest label.
    public var classCount: Int { max(classes.count, (labels.max() ?? -1) + 1) }

    /// Every row minus `mean` (dim values), e.g. the train split's mean feature: cosine similarity
    /// then compares how images differ from the average one rather than their shared offset.
    public func centred(on mean: [Float]) -> FeatureSet {
        precondition(mean.count == dim, "centred: \(mean.count) means for width \(dim)")
        var out = self
        for i in 0..<out.features.count { out.features[i] -= mean[i % dim] }
        return out
    }

    /// The mean feature vector (accumulated in Double).
    public var mean: [Float] {
        var sum = [Double](repeating: 0, count: dim)
        for i in 0..<features.count { sum[i % dim] += Double(features[i]) }
        return sum.map { Float($0 / Double(max(count, 1))) }
    }

    /// Throws unless every row has a label.
    public func requireLabels(_ what: String) throws {
        if let row = labels.firstIndex(where: { $0 < 0 }) {
            throw EvalError("the \(what) features need labels, but sample #\(indices[row]) has none (an unlabeled dataset?)")
        }
        if count == 0 { throw EvalError("the \(what) features are empty") }
    }
}

/// Computes frozen features of a dataset split with the evaluation transform (resize, centre crop,
/// normalize per the model config), batch by batch. Nothing of the forward pass is kept beyond the
/// batch: the encoder runs through `intermediateTokens`, which drops every block's cache.
public struct FeatureExtractor: Sendable {
    public let model: VisionTransformer
    public let source: FeatureSource
    public var batchSize: Int
    /// Decoding threads of the batch loader (nil: one per core).
    public var workers: Int?

    public init(model: VisionTransformer, source: FeatureSource, batchSize: Int = 256, workers: Int? = nil) throws {
        if case .block(let n) = source, !(1...model.blocks.count).contains(n) {
            throw EvalError("block \(n) does not exist: the encoder has blocks 1...\(model.blocks.count)")
        }
        guard batchSize > 0 else { throw EvalError("the batch size must be positive") }
        self.model = model
        self.source = source
        self.batchSize = batchSize
        self.workers = workers
    }

    /// Width of the feature vectors.
    public var dim: Int {
        let c = model.config
        return source == .pixels ? c.inChans * c.imgSize * c.imgSize : c.embedDim
    }

    /// images (B, C, H, W), normalized → features (B, D).
    public func features(_ images: Tensor) -> Tensor {
        switch source {
        case .pooled(let pooling):
            // forward(images).0 without its caches: all blocks, then the final norm.
            var tokens = model.intermediateTokens(images, blocks: model.blocks.count)
            if let norm = model.norm { tokens = norm.forward(tokens).0 }
            return model.pool(tokens, pooling)
        case .block(let n):
            let tokens = model.intermediateTokens(images, blocks: n)
            let mean = TokenOps.mean(tokens, from: 1)
            return LayerNormOp.forward(mean, weight: nil, bias: nil, eps: Float(model.config.layerNormEps)).0
        case .pixels:
            return images.reshaped([images.shape[0], images.count / images.shape[0]])
        }
    }

    /// Features of the `split` of the dataset at `path` (see `Datasets.open`).
    public func extract(datasetAt path: String, split: DatasetSplit, progress: ProgressReporter? = nil) throws -> FeatureSet {
        try extract(try Datasets.open(path, split: split), label: "features \(split.rawValue)", progress: progress)
    }

    /// Features of every readable image of `dataset`, in dataset order.
    public func extract(_ dataset: any ImageDataset, label: String = "features", progress: ProgressReporter? = nil) throws -> FeatureSet {
        let c = model.config
        let (n, d) = (dataset.count, dim)
        let started = ContinuousClock.now
        let loader = Evaluation.inferenceLoader(c, dataset: dataset, batchSize: batchSize, workers: workers)
        var rows = [Float](repeating: 0, count: n * d)
        var labels = [Int](repeating: -1, count: n)
        // A batch that had to replace an unreadable image takes the following samples, which then
        // come again in their own batch: each index is written once.
        var have = [Bool](repeating: false, count: n)
        var done = 0
        let unreadable = UnreadableImages()
        while let batch = try loader.next() {
            if let progress { unreadable.report(loader, to: progress) }
            let f = features(batch.images)
            precondition(f.shape == [batch.count, d], "features: got \(f.shape) for a batch of \(batch.count)")
            f.withPointer { fp in rows.withUnsafeMutableBufferPointer { out in
                for (slot, index) in batch.sampleIndices.enumerated() where !have[index] {
                    (out.baseAddress! + index * d).update(from: fp + slot * d, count: d)
                    labels[index] = batch.labels[slot]
                    have[index] = true
                    done += 1
                }
            } }
            if let progress {
                let elapsed = (ContinuousClock.now - started).seconds
                let rate = Double(done) / max(elapsed, 1e-9)
                progress.update(label: label, done: done, total: n, text: String(format: "%.0f img/s", rate),
                                eta: Double(n - done) / max(rate, 1e-9))
            }
        }
        var indices = Array(0..<n)
        if done < n {  // drop the rows of skipped samples
            indices = indices.filter { have[$0] }
            var compact = [Float](); compact.reserveCapacity(indices.count * d)
            for i in indices { compact += rows[(i * d)..<((i + 1) * d)] }
            rows = compact
            labels = indices.map { labels[$0] }
        }
        return FeatureSet(features: rows, labels: labels, dim: d, indices: indices, classes: dataset.classes, source: source,
                          layer: source.layer(depth: model.blocks.count), skipped: n - done,
                          seconds: (ContinuousClock.now - started).seconds)
    }
}
