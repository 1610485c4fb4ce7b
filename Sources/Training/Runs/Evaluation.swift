import Foundation
import Tensor
import ViT
import Objectives

/// Test-split metrics: classifier top-1 and masked-patch reconstruction error of pretraining networks.
public enum Evaluation {
    public struct EvaluationError: Error, CustomStringConvertible { public let description: String }

    public struct ClassificationResult: Codable, Sendable {
        public var top1: Double
        public var images: Int
        public var perClass: [String: Double]
        /// The images measured (set by the caller, which knows the dataset's path).
        public var data: MeasuredData? = nil
    }

    /// Every image of `dataset` in order, as the model's own preprocessing gives it to inference
    /// (its size, channels, normalization and centre-crop share; no augmentation).
    /// `workers`: the loader's decoding threads (nil: `BatchLoader`'s choice).
    static func inferenceLoader(_ c: ViTConfig, dataset: any ImageDataset, batchSize: Int, workers: Int? = nil) -> BatchLoader {
        BatchLoader(dataset: dataset, batchSize: batchSize, shuffle: false, dropLast: false, seed: 0, epoch: 0,
                    channels: c.inChans, imageSize: c.imgSize, mean: c.mean, std: c.std, augment: nil, cropPct: c.cropPct ?? 1,
                    workers: workers)
    }

    public static func top1(_ classifier: Classifier, dataset: any ImageDataset, batchSize: Int,
                            progress: ProgressReporter?) throws -> ClassificationResult {
        let loader = inferenceLoader(classifier.model.config, dataset: dataset, batchSize: batchSize)
        let classes = dataset.classes
        // The dataset's labels index its own class list and the head's outputs the model's: match
        // them by name, so a test split with fewer classes (or another order) is still scored right.
        // A model without label names (a timm checkpoint), or a dataset whose classes are only
        // numbered (IDX files without class names), is taken to share the other's order.
        let named = !classifier.classes.isEmpty && classes != classes.indices.map(String.init)
        let present = Set((0..<dataset.count).compactMap { dataset.label(at: $0) }).sorted()
        let unknown = named ? present.map { classes[$0] }.filter { !classifier.classes.contains($0) } : []
        guard unknown.isEmpty else {
            throw EvaluationError(description: "the dataset has classes the model does not know: \(abbreviated(unknown)) "
                                  + "(the model's: \(abbreviated(classifier.classes, limit: 10)))")
        }
        let output = named ? classes.map { classifier.classes.firstIndex(of: $0) ?? -1 } : Array(classes.indices)
        var correct = [Int](repeating: 0, count: classes.count), seen = [Int](repeating: 0, count: classes.count)
        let unreadable = UnreadableImages()
        while let batch = try loader.next() {
            if let progress { unreadable.report(loader, to: progress) }
            let predictions = CrossEntropy.argmax(classifier.logits(batch.images))
            for (p, label) in zip(predictions, batch.labels) where label >= 0 {
                seen[label] += 1
                if p == output[label] { correct[label] += 1 }
            }
            progress?.update(label: "eval", done: seen.reduce(0, +), total: dataset.count, text: "", eta: nil)
        }
        let total = seen.reduce(0, +)
        var perClass: [String: Double] = [:]
        for (i, name) in classes.enumerated() where seen[i] > 0 { perClass[name] = Double(correct[i]) / Double(seen[i]) }
        return ClassificationResult(top1: Double(correct.reduce(0, +)) / Double(max(total, 1)), images: total, perClass: perClass)
    }

    /// Images `indices` of a (B, C, H, W) batch, in that order.
    static func images(_ indices: [Int], of x: Tensor) -> Tensor {
        let size = x.count / x.shape[0]
        return Tensor(shape: [indices.count] + x.shape.dropFirst()) { out in
            x.withPointer { src in for (i, b) in indices.enumerated() { (out + i * size).update(from: src + b * size, count: size) } }
        }
    }

    public struct ReconstructionResult: Codable, Sendable {
        /// Mean squared error on masked patches in [0, 1] pixel units, and the PSNR it implies.
        public var mse: Double
        public var psnr: Double
        /// Mean squared error of the normalized-pixel prediction against its target (the training loss, unweighted).
        public var normalizedMSE: Double
        public var images: Int
        /// The masked share of what each prediction sees: the image, or for "windows" a window.
        public var maskRatio: Double
        /// "random" or "block" (one mask over the whole image), or the objective's own (LoMaR: "windows").
        public var masking: String
        /// What the masks are in words: the objective's own (LoMaR's windows), or the training
        /// masks it draws with options (PeCo: BEiT's block options, the run's or the defaults).
        public var maskingDetail: String? = nil
        /// Own masks only: how many patch predictions were scored.
        public var predictedPatches: Int? = nil
        /// For a network without a pixel decoder of its own: the tokenizer (directory name) whose
        /// decoding of the predicted codes was scored.
        public var tokenizer: String? = nil
        /// The images measured (set by the caller, which knows the dataset's path).
        public var data: MeasuredData? = nil
    }

    /// Which masks a reconstruction is measured on.
    public enum ReconstructionMasks: Sendable, Equatable {
        /// The objective's own task: its own masks where they are not whole-image masks (LoMaR's
        /// windows, `OwnMaskReconstructing`), else its whole-image masking and masked count.
        case own
        /// One mask over the whole image, the same for every objective at one seed: `masking`
        /// (default the objective's own) hiding `ratio` of the patches (default its own count).
        case image(MaskingSpec?, ratio: Double?)
    }

    /// Masked-patch reconstruction quality on a dataset with masks drawn from a fixed seed.
    /// Predictions of normalized pixels are mapped back with each patch's true statistics (as the
    /// MAE paper's figures do), then to [0, 1] pixels with the model's mean/std. Pass one masking
    /// and one ratio (`.image(.random, ratio: 0.75)`) to compare objectives on equal masks.
    /// `reconstructor`: what predicts the pixels when the network has no pixel decoder of its own
    /// (a stage-2 model's codes decoded by its tokenizer, `TokenDecodedReconstructor`).
    /// `options`: the objective options the network trained with (a run's recipe.json), which its
    /// training masks are drawn with when no masking is asked for; nil: the objective's defaults.
    public static func reconstruction(_ network: PretrainingNetwork, dataset: any ImageDataset, batchSize: Int, seed: UInt64,
                                      masks: ReconstructionMasks = .own, maxImages: Int? = nil,
                                      reconstructor given: (any PixelReconstructing)? = nil,
                                      options: (any ObjectiveOptions)? = nil,
                                      progress: ProgressReporter?) throws -> ReconstructionResult {
        guard let reconstructor = network.reconstructor ?? given else {
            throw EvaluationError(description: "\(network.objectiveType.displayName) has no pixel decoder: it cannot reconstruct masked images")
        }
        let c = network.config.encoder
        let loader = BatchLoader(dataset: dataset, batchSize: batchSize, shuffle: false, dropLast: false, seed: seed, epoch: 0,
                                     channels: c.inChans, imageSize: c.imgSize, mean: c.mean, std: c.std, augment: nil)
        let own = masks == .own ? network.ownMaskReconstructor : nil
        var (masking, ratio): (MaskingSpec?, Double?) = (nil, nil)
        if case .image(let m, let r) = masks { (masking, ratio) = (m, r) }
        let maskedCount = ratio.map { MaskingSpec.maskedCount(ratio: $0, patches: c.numPatches) } ?? reconstructor.maskedCount
        var pixelSE = 0.0, normSE = 0.0, count = 0, patches = 0
        var batchIndex = 0
        let unreadable = UnreadableImages()
        while let batch = try loader.next() {
            if let progress { unreadable.report(loader, to: progress) }
            var rng = SeededRandom(seed: seed, stream: UInt64(batchIndex))
            batchIndex += 1
            if own != nil {
                // Every predicted row is a masked patch.
                let r = network.reconstructOwnMasks(batch.images, options: options, rng: &rng)
                let (pixels, truth, prediction, target) = (r.pixels.data, r.truth.data, r.normalizedPrediction.data, r.normalizedTarget.data)
                for k in pixels.indices {
                    let d = Double(pixels[k] - truth[k])
                    pixelSE += d * d
                    let e = Double(prediction[k] - target[k])
                    normSE += e * e
                }
                patches += r.prediction.images.count
            } else {
                // Without a masking asked for, or asking for its own, the objective's training masks
                // (which may group the batch by masked count); another masking over the whole batch.
                let all = Array(0..<batch.count)
                let groups = reconstructor.plans(masking: masking, batch: batch.count, grid: c.gridSize, masked: maskedCount,
                                                 options: options, rng: &rng)
                for group in groups {
                    let images = group.images == all ? batch.images : Self.images(group.images, of: batch.images)
                    let r = network.reconstruct(images, plan: group.plan, using: reconstructor)
                    for b in 0..<r.plan.batch {
                        for n in r.plan.order[b][r.plan.visible...] {
                            let off = (b * r.plan.numPatches + n) * r.patchDim
                            for k in 0..<r.patchDim {
                                let d = Double(r.pixels.data[off + k] - r.truth.data[off + k])
                                pixelSE += d * d
                                let e = Double(r.normalizedPrediction.data[off + k] - r.normalizedTarget.data[off + k])
                                normSE += e * e
                            }
                            patches += 1
                        }
                    }
                }
            }
            count += batch.count
            progress?.update(label: "eval", done: count, total: min(dataset.count, maxImages ?? .max), text: "", eta: nil)
            if let maxImages, count >= maxImages { break }
        }
        let values = Double(patches * c.patchDim)
        let mse = pixelSE / values
        var result = ReconstructionResult(mse: mse, psnr: 10 * log10(1 / max(mse, 1e-12)), normalizedMSE: normSE / values, images: count,
                                          maskRatio: Double(maskedCount) / Double(c.numPatches),
                                          masking: (masking ?? reconstructor.defaultMasking).rawValue)
        if own == nil && reconstructor.drawsTrainingMasks(masking) { result.maskingDetail = reconstructor.defaultMaskingDetail(grid: c.gridSize, options: options) }
        if own == nil && patches != count * maskedCount {
            // Training masks that may stop short of their count (BEiT's generator): the share they hid.
            result.maskRatio = Double(patches) / Double(max(count * c.numPatches, 1))
        }
        if let own {
            let masks = own.ownMasks(options: options)
            (result.masking, result.maskRatio) = (masks.name, masks.maskRatio)
            (result.maskingDetail, result.predictedPatches) = (masks.detail, patches)
        }
        return result
    }
}
