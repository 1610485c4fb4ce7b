import Tensor

/// iBOT's masking ratio of one crop (bytedance/ibot loader.py `get_pred_ratio`): each pair
/// (mean, variation) gives `mean` or, when variation > 0, a draw uniform in mean ± variation; then
/// one of the candidates is picked uniformly. The README recipe `--pred_ratio 0 0.3
/// --pred_ratio_var 0 0.2` leaves about half the crops unmasked and masks the others at a ratio in
/// [0.1, 0.5]. Before `startEpoch` (`--pred_start_epoch`) nothing is masked.
public struct PredictionRatio: Sendable, Equatable {
    public var means: [Double]
    public var variations: [Double]
    public var startEpoch: Int

    /// `variations` may be one value for every mean, as iBOT's argument parsing allows.
    public init(means: [Double], variations: [Double] = [0], startEpoch: Int = 0) {
        precondition(!means.isEmpty, "prediction ratio: no ratio given")
        let v = variations.count == 1 ? Array(repeating: variations[0], count: means.count) : variations
        precondition(v.count == means.count, "prediction ratio: \(means.count) ratios but \(variations.count) variations")
        for (m, d) in zip(means, v) {
            precondition(d >= 0 && m >= d && m + d <= 1, "prediction ratio: \(m) ± \(d) must lie in [0, 1]")
        }
        self.means = means
        self.variations = v
        self.startEpoch = startEpoch
    }

    /// iBOT's README recipe: 0 or U(0.1, 0.5).
    public static let ibotMultiCrop = PredictionRatio(means: [0, 0.3], variations: [0, 0.2])

    /// The ratio of the next crop. Draws every candidate first, then the choice, as iBOT does.
    public func draw(epoch: Int, rng: inout SeededRandom) -> Double {
        if epoch < startEpoch { return 0 }
        let candidates = zip(means, variations).map { m, d in
            d > 0 ? (m - d) + Double(rng.next() >> 11) * 0x1p-53 * (2 * d) : m
        }
        return candidates.count == 1 ? candidates[0] : candidates[Int(rng.next() % UInt64(candidates.count))]
    }
}
