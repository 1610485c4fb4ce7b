import Foundation
import Tensor
import ViT

/// How an image's reconstruction error is measured for an out-of-distribution score: the same
/// masks for every image (one per seed, drawn with the objective's masking and masked count), the
/// masked-patch pixel MSE of each ([0, 1] pixel units, each patch's own statistics), averaged over
/// the seeds. Calibration and serving measure with the same protocol, stored beside the errors.
public struct ReconstructionErrorProtocol: Codable, Sendable, Equatable {
    public var masking: MaskingSpec
    public var maskedPatches: Int
    public var seeds: [UInt64]

    public init(masking: MaskingSpec, maskedPatches: Int, seeds: [UInt64]) {
        self.masking = masking; self.maskedPatches = maskedPatches; self.seeds = seeds
    }

    enum CodingKeys: String, CodingKey { case masking, maskedPatches = "masked_patches", seeds }
}

/// The masked-patch errors of held-out images of a model's training distribution, sorted, and the
/// protocol that measured them: `ood_calibration.json` in a model directory.
public struct ReconstructionErrorCalibration: Codable, Sendable {
    public static let fileName = "ood_calibration.json"

    public var metric = "masked_patch_mse"
    public var measure: ReconstructionErrorProtocol
    /// Where the images came from (dataset and split), for people.
    public var dataset: String
    /// Ascending.
    public var errors: [Double]
    /// The feature-space score's calibration (its bank in `FeatureBank.fileName`), when `calibrate` wrote one.
    public var featureSpace: FeatureDistanceCalibration?

    public init(measure: ReconstructionErrorProtocol, dataset: String, errors: [Double], featureSpace: FeatureDistanceCalibration? = nil) {
        self.measure = measure; self.dataset = dataset; self.errors = errors.sorted(); self.featureSpace = featureSpace
    }

    enum CodingKeys: String, CodingKey { case metric, measure = "protocol", dataset, errors, featureSpace = "feature_space" }

    /// The share of calibration images (in percent, 0...100) whose error is below `error`, ties
    /// counted half.
    public func percentile(of error: Double) -> Double { SortedRank.percentile(of: error, in: errors) }

    /// Reads a directory's calibration; nil when it has none. A file that does not parse throws.
    public static func read(_ directory: URL) throws -> ReconstructionErrorCalibration? {
        let url = directory.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        return try JSONDecoder().decode(ReconstructionErrorCalibration.self, from: Data(contentsOf: url))
    }
}

extension PretrainingNetwork {
    /// The protocol this network's calibration uses by default: its own masking and masked count, 4 masks.
    public func defaultErrorProtocol(seeds: Int = 4) -> ReconstructionErrorProtocol? {
        guard let reconstructor else { return nil }
        return ReconstructionErrorProtocol(masking: reconstructor.defaultMasking, maskedPatches: reconstructor.maskedCount,
                                           seeds: (0..<UInt64(seeds)).map { $0 })
    }

    /// Per image of `images` (B, C, H, W; model-normalized), the masked-patch pixel MSE averaged
    /// over the protocol's masks. Every image gets the same masks whatever else is in the batch.
    public func maskedPatchErrors(_ images: Tensor, protocol measure: ReconstructionErrorProtocol) -> [Double] {
        let c = config.encoder
        let n = c.numPatches
        let b = images.shape[0]
        precondition(measure.maskedPatches > 0 && measure.maskedPatches < n, "masked patches must be in 1..<\(n)")
        var totals = [Double](repeating: 0, count: b)
        for seed in measure.seeds {
            var rng = SeededRandom(seed: seed)
            let one = measure.masking.plan(batch: 1, grid: c.gridSize, masked: measure.maskedPatches, rng: &rng)
            let plan = MaskPlan(order: Array(repeating: one.order[0], count: b), visible: one.visible)
            let r = reconstruct(images, plan: plan, statistics: .patch)
            let hidden = one.order[0][one.visible...]
            for i in 0..<b {
                var se = 0.0
                for patch in hidden {
                    let off = (i * n + patch) * r.patchDim
                    for k in 0..<r.patchDim {
                        let d = Double(r.pixels.data[off + k] - r.truth.data[off + k])
                        se += d * d
                    }
                }
                totals[i] += se / Double(hidden.count * r.patchDim)
            }
        }
        return totals.map { $0 / Double(measure.seeds.count) }
    }
}
