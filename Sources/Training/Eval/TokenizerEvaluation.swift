import Foundation
import Objectives
import Tensor
import ViT

/// A tokenizer's own numbers on a dataset split (`bootmae-train tokenizer-eval`): how well its
/// codes reconstruct the images, how much of the codebook they use, and the bag-of-codes
/// histograms a linear probe measures how class-informative the codes are with.
public struct TokenizerMeasurement: Sendable {
    /// Σ over images of the image's pixel MSE in [0, 1] units (decoded codes against the input).
    public var squaredErrorSum = 0.0
    public var images = 0
    /// How often each code occurs over every patch of the split.
    public var usage: [Int]
    /// Per image: each code's share of its patches (K values), in dataset order.
    public var histograms: FeatureSet

    /// PSNR of the split's mean per-image MSE (as `eval` reports reconstructions).
    public var psnr: Double { 10 * log10(1 / max(squaredErrorSum / Double(max(images, 1)), 1e-12)) }
    /// exp(entropy) of the code usage: K when every code is used equally, 1 when one code is.
    public var perplexity: Double {
        let total = Double(usage.reduce(0, +))
        guard total > 0 else { return 0 }
        let entropy = usage.reduce(0.0) { h, n in n == 0 ? h : h - Double(n) / total * log(Double(n) / total) }
        return exp(entropy)
    }
    /// Codes never used on the split.
    public var unusedShare: Double { Double(usage.filter { $0 == 0 }.count) / Double(usage.count) }
}

public struct TokenizerEvaluator: Sendable {
    public let tokenizer: any ImageTokenizing
    /// The tokenizer's input: size, channels, normalization.
    public let config: ViTConfig
    public var batchSize = 256

    public init(tokenizer: any ImageTokenizing, config: ViTConfig) { self.tokenizer = tokenizer; self.config = config }

    /// Codes, decodings and histograms of every readable image of `dataset` (evaluation transform).
    /// `decode: false` skips the decoder (the train split only needs histograms).
    public func measure(_ dataset: any ImageDataset, decode: Bool, label: String, progress: ProgressReporter? = nil) throws -> TokenizerMeasurement {
        let c = config, k = tokenizer.codebookSize
        let loader = Evaluation.inferenceLoader(c, dataset: dataset, batchSize: batchSize)
        let n = dataset.count
        var rows = [Float](repeating: 0, count: n * k), labels = [Int](repeating: -1, count: n)
        var have = [Bool](repeating: false, count: n)
        var m = TokenizerMeasurement(usage: [Int](repeating: 0, count: k),
                                     histograms: FeatureSet(features: [0], labels: [0], dim: 1))
        let started = ContinuousClock.now
        while let batch = try loader.next() {
            let grids = tokenizer.codes(batch.images)
            let decoded = decode ? tokenizer.decode(grids) : nil
            let perImage = batch.images.count / batch.count
            // A batch that replaced an unreadable image repeats later samples: each index counts once.
            for (slot, index) in batch.sampleIndices.enumerated() where !have[index] {
                have[index] = true
                labels[index] = batch.labels[slot]
                for code in grids[slot] { m.usage[code] += 1; rows[index * k + code] += 1 / Float(grids[slot].count) }
                if let decoded {
                    var se = 0.0
                    let plane = c.imgSize * c.imgSize
                    for i in 0..<perImage {
                        let std = Double(c.std[i / plane])   // normalized units → [0, 1] pixels: the mean cancels
                        let d = Double(decoded.data[slot * perImage + i] - batch.images.data[slot * perImage + i]) * std
                        se += d * d
                    }
                    m.squaredErrorSum += se / Double(perImage)
                }
                m.images += 1
            }
            if let progress {
                let rate = Double(m.images) / max((ContinuousClock.now - started).seconds, 1e-9)
                progress.update(label: label, done: m.images, total: n, text: String(format: "%.0f img/s", rate),
                                eta: Double(n - m.images) / max(rate, 1e-9))
            }
        }
        let kept = (0..<n).filter { have[$0] }
        m.histograms = FeatureSet(features: kept.flatMap { rows[($0 * k)..<(($0 + 1) * k)] }, labels: kept.map { labels[$0] }, dim: k,
                                  indices: kept, classes: dataset.classes, skipped: n - kept.count,
                                  seconds: (ContinuousClock.now - started).seconds)
        return m
    }
}

/// tokenizer.json: what `tokenizer-eval` measured.
public struct TokenizerEvaluationResult: Codable, Sendable {
    public var evaluation = "tokenizer"
    public var codebookSize: Int
    public var testImages: Int
    /// Decoded codes against the input, test split, mean per-image MSE → PSNR.
    public var psnr: Double
    public var mse: Double
    /// exp(entropy) of the test split's code usage, and the share of codes it never uses.
    public var perplexity: Double
    public var unusedShare: Double
    /// A linear probe on per-image bag-of-codes histograms (train split → test top-1).
    public var bagOfCodesProbe: LinearProbeResult?
    /// The images measured.
    public var data: MeasuredData? = nil

    public init(codebookSize: Int, test: TokenizerMeasurement, probe: LinearProbeResult?) {
        self.codebookSize = codebookSize
        testImages = test.images
        psnr = test.psnr
        mse = test.squaredErrorSum / Double(max(test.images, 1))
        perplexity = test.perplexity
        unusedShare = test.unusedShare
        bagOfCodesProbe = probe
    }
}
