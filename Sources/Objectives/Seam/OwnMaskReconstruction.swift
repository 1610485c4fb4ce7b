import Tensor
import ViT

/// An objective whose own masks are not one mask over the whole image, so no `MaskPlan` can say
/// them (LoMaR: K×K windows, a share of each window masked, each window encoded alone). `eval`
/// measures such an objective on its own task through this protocol, while whole-image masks
/// (a `MaskingSpec`, the same for every objective) still go through `predictPixels`.
public protocol OwnMaskReconstructing: PixelReconstructing {
    /// What its own masks are, drawn with `options` (a run's recipe; nil: the defaults): the name
    /// results record ("windows"), the masked share and a description in words.
    func ownMasks(options: (any ObjectiveOptions)?) -> OwnMasks
    /// Draws its own masks for `images` (model-normalized input) from `rng`, as in training, and
    /// predicts every masked patch: one row per prediction (a patch masked in two windows is
    /// predicted twice, as the training loss counts it twice). `options`: the objective options
    /// the run trained with (its recipe.json), which the masks are drawn with; nil: the defaults.
    func predictOwnMasked(_ images: Tensor, options: (any ObjectiveOptions)?, rng: inout SeededRandom) -> MaskedPatchPrediction
}

/// A description of an objective's own masks, for results and people.
public struct OwnMasks: Sendable, Equatable {
    /// eval.json's `masking`, e.g. "windows".
    public let name: String
    /// The masked share of what one prediction sees (LoMaR: of a window).
    public let maskRatio: Double
    /// In words, e.g. "4 windows of 4×4 patches per image, 12 of 16 masked in each, windows distinct per image".
    public let detail: String

    public init(name: String, maskRatio: Double, detail: String) {
        self.name = name; self.maskRatio = maskRatio; self.detail = detail
    }
}

/// Predictions of single masked patches: row r is patch `patches[r]` of image `images[r]`.
public struct MaskedPatchPrediction: Sendable {
    /// (R, C·p·p) in (c, py, px) order, in the units of the training target.
    public let rows: Tensor
    /// Per row, the image of the batch and the patch (row-major on the grid) predicted.
    public let images: [Int]
    public let patches: [Int]
    /// How the target standardizes patch pixels; nil when it predicts the input itself.
    public let normalization: PatchNormalization?

    public init(rows: Tensor, images: [Int], patches: [Int], normalization: PatchNormalization?) {
        precondition(rows.shape.count == 2 && images.count == rows.shape[0] && patches.count == rows.shape[0],
                     "masked-patch prediction: \(rows.shape) rows for \(images.count) images, \(patches.count) patches")
        self.rows = rows; self.images = images; self.patches = patches; self.normalization = normalization
    }
}

/// An objective's own-mask predictions with their targets, row for row: normalized as the
/// training target, and in [0, 1]-pixel units (each patch's true statistics, as `reconstruct`).
public struct MaskedPatchReconstruction: Sendable {
    public let prediction: MaskedPatchPrediction
    /// (R, C·p·p), (c, py, px) order.
    public let normalizedTarget: Tensor
    public let pixels: Tensor
    public let truth: Tensor
    public var normalizedPrediction: Tensor { prediction.rows }
}

extension PretrainingNetwork {
    /// The objective's own masked-patch predictions, when its own masks are not whole-image masks.
    public var ownMaskReconstructor: (any OwnMaskReconstructing)? { objective as? any OwnMaskReconstructing }

    /// Draws the objective's own masks for `images` (normalized model input) and reconstructs every masked patch.
    /// `options` as `OwnMaskReconstructing.predictOwnMasked`'s.
    public func reconstructOwnMasks(_ images: Tensor, options: (any ObjectiveOptions)? = nil, rng: inout SeededRandom) -> MaskedPatchReconstruction {
        guard let reconstructor = ownMaskReconstructor else { preconditionFailure("\(config.objective) has no masks of its own beyond whole-image masks") }
        let c = config.encoder
        let (n, dim) = (c.numPatches, c.patchDim)
        let output = reconstructor.predictOwnMasked(images, options: options, rng: &rng)
        let all = PatchOps.patchify(images, patch: c.patchSize)   // (B, N, C·p·p), model-normalized input
        let truth = Tensor(shape: [output.images.count, dim]) { out in
            all.withPointer { src in
                for (r, (image, patch)) in zip(output.images, output.patches).enumerated() {
                    (out + r * dim).update(from: src + (image * n + patch) * dim, count: dim)
                }
            }
        }
        guard let norm = output.normalization else {
            return MaskedPatchReconstruction(prediction: output, normalizedTarget: truth,
                                             pixels: displayPixels(output.rows, statistics: nil), truth: displayPixels(truth, statistics: nil))
        }
        let target = PixelTargets.normalized(truth, groupSize: norm.groupSize, unbiased: norm.unbiased, eps: norm.eps)
        let stats = PixelTargets.statistics(truth, groupSize: norm.groupSize, unbiased: norm.unbiased, eps: norm.eps)
        return MaskedPatchReconstruction(prediction: output, normalizedTarget: target,
                                         pixels: displayPixels(output.rows, statistics: (stats, norm.groupSize)),
                                         truth: displayPixels(truth, statistics: nil))
    }

    /// Patch rows (c, py, px) in model-input units → [0, 1] pixels: x · std_c + mean_c, channel
    /// c = k / (p·p); with `statistics`, each group of a row is first mapped back from its
    /// standardized form (x · std + mean, one (mean, std) per group of `groupSize` values).
    func displayPixels(_ t: Tensor, statistics: (values: [(mean: Float, std: Float)], groupSize: Int)?) -> Tensor {
        let c = config.encoder
        let (dim, area) = (c.patchDim, c.patchSize * c.patchSize)
        let rows = t.count / dim
        return Tensor(shape: t.shape) { out in
            t.withPointer { src in
                for row in 0..<rows {
                    for k in 0..<dim {
                        var v = src[row * dim + k]
                        if let statistics {
                            let s = statistics.values[row * (dim / statistics.groupSize) + k / statistics.groupSize]
                            v = v * s.std + s.mean
                        }
                        let ch = k / area
                        out[row * dim + k] = v * c.std[ch] + c.mean[ch]
                    }
                }
            }
        }
    }
}
