import Tensor
import ViT

/// Masked-image reconstruction with a pretraining network, in display units: every patch as a
/// (c, py, px) vector of [0, 1] pixels, plus the normalized prediction and target it came from.
public struct Reconstruction: Sendable {
    public let plan: MaskPlan
    public let patchDim: Int
    /// (B, N, C·p·p): what the decoder predicts (normalized pixels) and the matching target.
    public let normalizedPrediction: Tensor
    public let normalizedTarget: Tensor
    /// (B, N, C·p·p) in [0, 1]-pixel units (not clamped): the prediction mapped back, and the input.
    public let pixels: Tensor
    public let truth: Tensor
    /// Per image, the code grid that was decoded, when the reconstruction went through a
    /// tokenizer's codes (`TokenDecodedReconstructor`: predicted at masked patches); nil otherwise.
    public var codes: [[Int]]? = nil
    /// The statistics that mapped the prediction back to pixels; nil when the decoder predicts
    /// pixels themselves (no per-patch normalization: a tokenizer's decoding, MAE without
    /// norm_pix_loss), where the choice changes nothing.
    public var statistics: Statistics? = nil

    /// Which statistics map a normalized-pixel prediction back to pixels.
    public enum Statistics: String, Sendable, Codable {
        /// Each patch's true mean and std (what the MAE paper's figures show; needs the full image).
        case patch
        /// The mean of the visible patches' statistics, for every masked patch (uses no hidden pixels).
        case visible
    }
}

/// An objective that predicts the pixels of masked patches: what the service's reconstructions,
/// `eval` and the reconstruction figures use.
public protocol PixelReconstructing: Sendable {
    /// The prediction for every patch of `images` (model-normalized input) masked by `plan`.
    func predictPixels(_ images: Tensor, plan: MaskPlan) -> PixelPrediction
    /// The masking and the masked-patch count the objective trains with: the defaults of the
    /// service's reconstructions and of `eval` (`defaultMasking` is also the name they report).
    var defaultMasking: MaskingSpec { get }
    var maskedCount: Int { get }
    /// The masks of its training for `batch` images, `masked` patches aimed for in each, drawn
    /// from `rng` with `options`, the objective options a run trained with (its recipe.json
    /// `objective_options`; nil: the objective's defaults, all an export has): what the service
    /// and `eval` use when no masking is asked for. By default one plan of `defaultMasking`, which
    /// no option changes; an objective whose training masks no `MaskingSpec` draws says its own.
    func defaultPlans(batch: Int, grid: Int, masked: Int, options: (any ObjectiveOptions)?, rng: inout SeededRandom) -> [MaskGroup]
    /// Those masks in words, for `options` as above (eval.json `maskingDetail`); nil when
    /// `defaultMasking`'s name says all (the default).
    func defaultMaskingDetail(grid: Int, options: (any ObjectiveOptions)?) -> String?
}

extension PixelReconstructing {
    public func defaultPlans(batch: Int, grid: Int, masked: Int, options: (any ObjectiveOptions)?, rng: inout SeededRandom) -> [MaskGroup] {
        [.whole(defaultMasking.plan(batch: batch, grid: grid, masked: masked, rng: &rng))]
    }

    public func defaultMaskingDetail(grid: Int, options: (any ObjectiveOptions)?) -> String? { nil }

    /// The masks a reconstruction asking for `masking` draws (the one rule of the service and
    /// `eval`): nil or the objective's own masking is its training masks with `options`
    /// (`defaultPlans`: PeCo's `block` is BEiT's generator, not `MaskingSpec.block`); another
    /// masking is that spec's plan over the whole batch, as every objective draws it.
    public func plans(masking: MaskingSpec?, batch: Int, grid: Int, masked: Int, options: (any ObjectiveOptions)?,
                      rng: inout SeededRandom) -> [MaskGroup] {
        guard let masking, !drawsTrainingMasks(masking) else {
            return defaultPlans(batch: batch, grid: grid, masked: masked, options: options, rng: &rng)
        }
        return [.whole(masking.plan(batch: batch, grid: grid, masked: masked, rng: &rng))]
    }

    /// Whether asking for `masking` draws the objective's own training masks (see `plans`).
    public func drawsTrainingMasks(_ masking: MaskingSpec?) -> Bool { masking == nil || masking == defaultMasking }
}

/// Images of a batch that share a mask plan (a `MaskPlan` hides one count of patches in every
/// image; masks whose counts differ, as BEiT's generator draws them, come in several groups).
public struct MaskGroup: Sendable, Equatable {
    /// The batch indices of the images, in the plan's order.
    public let images: [Int]
    public let plan: MaskPlan

    public init(images: [Int], plan: MaskPlan) {
        precondition(images.count == plan.batch, "a mask group of \(images.count) images with a plan of \(plan.batch)")
        self.images = images; self.plan = plan
    }

    /// One plan for every image of the batch, in batch order.
    public static func whole(_ plan: MaskPlan) -> MaskGroup { MaskGroup(images: Array(0..<plan.batch), plan: plan) }

    /// Per-image masks (true = masked) as groups of equal masked count, in order of first appearance.
    public static func grouping(_ masks: [[Bool]]) -> [MaskGroup] {
        var groups: [(count: Int, images: [Int], order: [[Int]])] = []
        for (i, mask) in masks.enumerated() {
            let hidden = mask.indices.filter { mask[$0] }
            let order = mask.indices.filter { !mask[$0] } + hidden
            if let g = groups.firstIndex(where: { $0.count == hidden.count }) {
                groups[g].images.append(i); groups[g].order.append(order)
            } else {
                groups.append((hidden.count, [i], [order]))
            }
        }
        return groups.map { MaskGroup(images: $0.images, plan: MaskPlan(order: $0.order, visible: $0.order[0].count - $0.count)) }
    }
}

/// A pixel decoder's output: (B, N, C·p·p) patches in (c, py, px) order, in the units of its
/// training target.
public struct PixelPrediction: Sendable {
    public let patches: Tensor
    /// How the target standardizes patch pixels; nil when it predicts the input itself.
    public let normalization: PatchNormalization?
    /// The code grids decoded, for a prediction made through a tokenizer's codes.
    public let codes: [[Int]]?

    public init(patches: Tensor, normalization: PatchNormalization?, codes: [[Int]]? = nil) {
        self.patches = patches
        self.normalization = normalization
        self.codes = codes
    }
}

/// Per-patch standardization of a pixel target: each run of `groupSize` values of a patch vector
/// (the whole patch, or one channel of it) to zero mean and unit std.
public struct PatchNormalization: Sendable {
    public let groupSize: Int
    public let unbiased: Bool
    public let eps: Float

    public init(groupSize: Int, unbiased: Bool, eps: Float) {
        self.groupSize = groupSize; self.unbiased = unbiased; self.eps = eps
    }
}

extension PretrainingNetwork {
    /// Whether this network can reconstruct masked images.
    public var canReconstruct: Bool { reconstructor != nil }

    /// Masks `images` (normalized model input) with `plan` and reconstructs every patch.
    public func reconstruct(_ images: Tensor, plan: MaskPlan, statistics: Reconstruction.Statistics = .patch) -> Reconstruction {
        guard let reconstructor else { preconditionFailure("\(config.objective) has no pixel decoder") }
        return reconstruct(images, plan: plan, statistics: statistics, using: reconstructor)
    }

    /// As above with a reconstructor from elsewhere that reads this network's input (a stage-2
    /// model's codes decoded by its tokenizer, `TokenDecodedReconstructor`).
    public func reconstruct(_ images: Tensor, plan: MaskPlan, statistics: Reconstruction.Statistics = .patch,
                            using reconstructor: any PixelReconstructing) -> Reconstruction {
        let c = config.encoder
        let p = c.patchSize
        let (b, n, dim) = (images.shape[0], c.numPatches, c.patchDim)
        let patches = PatchOps.patchify(images, patch: p)          // (c, py, px) order, model-normalized input
        let output = reconstructor.predictPixels(images, plan: plan)
        let prediction = output.patches
        let norm = output.normalization ?? PatchNormalization(groupSize: dim, unbiased: true, eps: 1e-6)
        let normalizedOutput = output.normalization != nil
        let (groupSize, unbiased, eps) = (norm.groupSize, norm.unbiased, norm.eps)
        let target = normalizedOutput ? PixelTargets.normalized(patches, groupSize: groupSize, unbiased: unbiased, eps: eps) : patches
        var stats = PixelTargets.statistics(patches, groupSize: groupSize, unbiased: unbiased, eps: eps)
        let groupsPerPatch = dim / groupSize
        if statistics == .visible && normalizedOutput {
            // Replace every masked patch's statistics by the average over the image's visible patches.
            for bi in 0..<b {
                for g in 0..<groupsPerPatch {
                    let visible = plan.order[bi][..<plan.visible].map { stats[(bi * n + $0) * groupsPerPatch + g] }
                    let mean = visible.map(\.mean).reduce(0, +) / Float(visible.count)
                    let std = visible.map(\.std).reduce(0, +) / Float(visible.count)
                    for patch in plan.order[bi][plan.visible...] { stats[(bi * n + patch) * groupsPerPatch + g] = (mean, std) }
                }
            }
        }
        return Reconstruction(plan: plan, patchDim: dim, normalizedPrediction: prediction, normalizedTarget: target,
                              pixels: displayPixels(prediction, statistics: normalizedOutput ? (stats, groupSize) : nil),
                              truth: displayPixels(patches, statistics: nil),
                              codes: output.codes, statistics: normalizedOutput ? statistics : nil)
    }

    /// A mask as the objective trains with (its masking and masked count), drawn from `rng`;
    /// `masking` or `masked` replaces either (`eval`'s equal masks for every objective).
    public func defaultMaskPlan(batch: Int, rng: inout SeededRandom, masking: MaskingSpec? = nil, masked: Int? = nil) -> MaskPlan {
        guard let reconstructor else { preconditionFailure("\(config.objective) has no pixel decoder") }
        return (masking ?? reconstructor.defaultMasking).plan(batch: batch, grid: config.encoder.gridSize,
                                                              masked: masked ?? reconstructor.maskedCount, rng: &rng)
    }
}
