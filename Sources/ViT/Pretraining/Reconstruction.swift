import Tensor

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

    /// Which statistics map a normalized-pixel prediction back to pixels.
    public enum Statistics: String, Sendable, Codable {
        /// Each patch's true mean and std (what the MAE paper's figures show; needs the full image).
        case patch
        /// The mean of the visible patches' statistics, for every masked patch (uses no hidden pixels).
        case visible
    }
}

extension PretrainingNetwork {
    /// Masks `images` (normalized model input) with `plan` and reconstructs every patch.
    public func reconstruct(_ images: Tensor, plan: MaskPlan, statistics: Reconstruction.Statistics = .patch) -> Reconstruction {
        let c = config.encoder
        let p = c.patchSize
        let (b, n, dim) = (images.shape[0], c.numPatches, c.patchDim)
        let patches = PatchOps.patchify(images, patch: p)          // (c, py, px) order, model-normalized input
        let prediction: Tensor
        let groupSize: Int, unbiased: Bool, eps: Float
        let normalizedOutput: Bool
        switch self {
        case .mae(let m):
            let out = m.step(images, plan: plan, backward: false).prediction
            let image = PixelTargets.unpatchifyChannelsLast(out, patch: p, channels: c.inChans, height: c.imgSize, width: c.imgSize)
            prediction = PatchOps.patchify(image, patch: p)
            (groupSize, unbiased, eps, normalizedOutput) = (dim, true, 1e-6, m.config.normPixLoss ?? true)
        case .bootmae(let model):
            prediction = model.predictPixels(images, plan: plan)
            (groupSize, unbiased, eps, normalizedOutput) = (p * p, false, 1e-5, true)
        }
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
        // Model input units → [0, 1] pixels: x · std_c + mean_c, channel c = k / (p·p) in (c, py, px) order.
        func toPixels(_ t: Tensor, denormalize: Bool) -> Tensor {
            Tensor(shape: t.shape) { out in
                t.withPointer { src in
                    for row in 0..<(b * n) {
                        for k in 0..<dim {
                            var v = src[row * dim + k]
                            if denormalize {
                                let s = stats[row * groupsPerPatch + k / groupSize]
                                v = v * s.std + s.mean
                            }
                            let ch = k / (p * p)
                            out[row * dim + k] = v * c.std[ch] + c.mean[ch]
                        }
                    }
                }
            }
        }
        return Reconstruction(plan: plan, patchDim: dim, normalizedPrediction: prediction, normalizedTarget: target,
                              pixels: toPixels(prediction, denormalize: normalizedOutput), truth: toPixels(patches, denormalize: false))
    }

    /// The mask this network trains with, drawn from `rng`.
    public func maskPlan(batch: Int, rng: inout SeededRandom, masking: String) -> MaskPlan {
        let c = config.encoder
        let ratio = Double(config.maskedCount) / Double(c.numPatches)
        if masking == "block" {
            return BlockMasking.scaled(grid: c.gridSize, ratio: ratio).plan(batch: batch, grid: c.gridSize, rng: &rng)
        }
        return RandomMasking(ratio: ratio).plan(batch: batch, numPatches: c.numPatches, rng: &rng)
    }
}
