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
        let loader = BatchLoader(dataset: dataset, batchSize: batchSize, shuffle: false, dropLast: false, seed: 0, epoch: 0,
                                 channels: c.inChans, imageSize: c.imgSize, mean: c.mean, std: c.std, augment: nil,
                                 cropPct: c.cropPct ?? 1)
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
