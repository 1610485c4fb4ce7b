import Foundation
import Tensor
import ViT
import Objectives

extension Evaluation {
    /// The masked-patch reconstruction errors of the first `maxImages` images of `dataset` (a test
    /// split of the training distribution), measured as the server measures a request's image for
    /// its out-of-distribution score (`ReconstructionErrorProtocol`): `ood_calibration.json`.
    public static func errorCalibration(_ network: PretrainingNetwork, dataset: any ImageDataset, describing name: String,
                                        maxImages: Int, batchSize: Int, seeds: Int,
                                        progress: ProgressReporter?) throws -> ReconstructionErrorCalibration {
        guard let measure = network.defaultErrorProtocol(seeds: seeds) else {
            throw EvaluationError(description: "\(network.objectiveType.displayName) has no pixel decoder: it has no reconstruction error to calibrate")
        }
        let c = network.config.encoder
        let loader = inferenceLoader(c, dataset: dataset, batchSize: batchSize)
        let total = min(dataset.count, maxImages)
        var errors: [Double] = []
        let unreadable = UnreadableImages()
        while errors.count < total, let batch = try loader.next() {
            if let progress { unreadable.report(loader, to: progress) }
            errors += network.maskedPatchErrors(batch.images, protocol: measure).prefix(total - errors.count)
            progress?.update(label: "calibrate", done: errors.count, total: total, text: "", eta: nil)
        }
        guard !errors.isEmpty else { throw EvaluationError(description: "the dataset has no readable images to calibrate on") }
        return ReconstructionErrorCalibration(measure: measure, dataset: "\(name) (first \(errors.count) images)", errors: errors)
    }
}

extension Evaluation {
    /// The feature-space score's bank and calibration: the embeddings (the encoder's own pooling) of the
    /// first `bankImages` images of `bank` (the training split) make the bank, and the k-th-nearest
    /// distances of the first `heldOutImages` images of `heldOut` (the test split, never in the bank)
    /// are what the server ranks a request's distance among. Distances are measured against the bank
    /// as stored (fp16), so serving reproduces them.
    public static func featureCalibration(_ encoder: VisionTransformer, bank: any ImageDataset, describingBank bankName: String,
                                          heldOut: any ImageDataset, describing heldOutName: String,
                                          bankImages: Int, heldOutImages: Int, k: Int, batchSize: Int,
                                          progress: ProgressReporter?) throws -> (FeatureBank, FeatureDistanceCalibration) {
        let dim = encoder.config.embedDim
        let bankRows = try embeddings(encoder, of: bank, maxImages: bankImages, batchSize: batchSize, label: "feature bank", progress: progress)
        let stored = FeatureBank(embeddings: bankRows, dim: dim)
        guard stored.count > k else {
            throw EvaluationError(description: "the feature bank has \(stored.count) images: it needs more than k = \(k)")
        }
        let held = try embeddings(encoder, of: heldOut, maxImages: heldOutImages, batchSize: batchSize, label: "held-out distances", progress: progress)
        let distances = stride(from: 0, to: held.count, by: dim).map { stored.kthNearestDistance(Array(held[$0..<$0 + dim]), k: k) }
        guard !distances.isEmpty else { throw EvaluationError(description: "the held-out dataset has no readable images") }
        let calibration = FeatureDistanceCalibration(k: k, pooling: encoder.config.globalPool.rawValue, bankImages: stored.count,
                                                     bankDataset: "\(bankName) (first \(stored.count) images)",
                                                     dataset: "\(heldOutName) (first \(distances.count) images)", distances: distances)
        return (stored, calibration)
    }

    /// The first `maxImages` images of `dataset` embedded (the encoder's global pooling), row after row.
    static func embeddings(_ encoder: VisionTransformer, of dataset: any ImageDataset, maxImages: Int, batchSize: Int,
                           label: String, progress: ProgressReporter?) throws -> [Float] {
        let c = encoder.config
        let loader = inferenceLoader(c, dataset: dataset, batchSize: batchSize)
        let total = min(dataset.count, maxImages)
        var rows: [Float] = []
        let unreadable = UnreadableImages()
        while rows.count < total * c.embedDim, let batch = try loader.next() {
            if let progress { unreadable.report(loader, to: progress) }
            rows += encoder.embed(batch.images).data.prefix(total * c.embedDim - rows.count)
            progress?.update(label: label, done: rows.count / c.embedDim, total: total, text: "", eta: nil)
        }
        return rows
    }
}
