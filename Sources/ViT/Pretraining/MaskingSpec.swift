import Tensor

/// How a mask is drawn, by name: what `pretrain --masking`, `eval --masking` and the service's
/// `masking` option mean. Every mask of the trainer, the evaluations and the service is made by
/// `plan`, from a whole count of masked patches (`maskedCount(ratio:patches:)` turns a share into one).
public enum MaskingSpec: String, Codable, Sendable, CaseIterable {
    /// MAE: a uniformly random subset per image.
    case random
    /// BootMAE: a BEiT block mask topped up with random patches, the batch's order rolled once.
    case block

    /// The plan of `batch` images on a `grid`×`grid` patch grid with `masked` patches hidden each.
    public func plan(batch: Int, grid: Int, masked: Int, rng: inout SeededRandom) -> MaskPlan {
        let n = grid * grid
        precondition(masked >= 1 && masked < n, "a mask hides between 1 and \(n - 1) patches, got \(masked)")
        switch self {
        case .random:
            return RandomMasking.plan(batch: batch, numPatches: n, visible: n - masked, rng: &rng)
        case .block:
            return BlockMasking.scaled(grid: grid, ratio: Double(masked) / Double(n)).plan(batch: batch, grid: grid, rng: &rng)
        }
    }

    /// Masked patches for a masked share: MAE's rule, which keeps ⌊N·(1 − ratio)⌋ patches visible
    /// (`len_keep` in facebookresearch/mae models_mae.py), at least one.
    public static func maskedCount(ratio: Double, patches n: Int) -> Int {
        n - max(1, Int(Double(n) * (1 - ratio)))
    }
}
