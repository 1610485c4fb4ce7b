import Foundation
import Tensor

/// BEiT's block-wise masking on an H×W patch grid (microsoft/unilm beit/masking_generator.py),
/// with the knobs in which its users differ:
/// - BEiT / PeCo: an integer target (75 of 14×14), blocks of at least 16 patches, no upper bound
///   beyond what remains (`beit(...)`);
/// - iBOT: a fractional target ratio·H·W and blocks of at least (min(H, W) / 3)² patches
///   (bytedance/ibot loader.py `ImageFolderMask`; `ibot(...)`);
/// - BootMAE's port (`BlockMasking`): blocks capped at `maxBlock`, the area never drawn below the
///   minimum, and up to 100 blocks allowed to fail before giving up.
///
/// The loop: while fewer than `target` patches are masked, place one block in up to 10 attempts —
/// area uniform in [minBlock, min(remaining, maxBlock)], aspect log-uniform in `aspectRange`,
/// h = round(√(area·aspect)), w = round(√(area/aspect)), h < H and w < W, a uniform position — and
/// accept it only if it masks 0 < new ≤ remaining patches. Python's `round` ties to even and ours
/// away from zero; with areas drawn from a continuous distribution a tie never happens.
public struct BlockMaskGenerator: Sendable, Equatable {
    public var height: Int
    public var width: Int
    /// Smallest block area drawn (`min_num_patches`).
    public var minBlock: Int
    /// Largest block area drawn (`max_num_patches`); nil: whatever remains of the target.
    public var maxBlock: Int?
    /// Block aspect ratios (h / w), drawn log-uniformly.
    public var aspectRange: ClosedRange<Double>
    /// Blocks that may fail (no attempt placed them) before the mask is returned short of its
    /// target: 1 in BEiT and iBOT, which stop at the first; 100 in BootMAE's port.
    public var allowedFailures: Int
    /// Attempts per block (10 in every official version).
    public var attemptsPerBlock: Int
    /// Draw the area from [minBlock, max(remaining, minBlock)] (BootMAE's port) instead of
    /// Python's `random.uniform(minBlock, remaining)`, which goes below minBlock when fewer remain.
    public var clampsAreaToMinBlock: Bool

    public init(height: Int, width: Int, minBlock: Int, maxBlock: Int? = nil,
                aspectRange: ClosedRange<Double> = 0.3...(1 / 0.3), allowedFailures: Int = 1,
                attemptsPerBlock: Int = 10, clampsAreaToMinBlock: Bool = false) {
        precondition(height > 0 && width > 0, "block mask: grid \(height)×\(width)")
        precondition(minBlock >= 0, "block mask: minimum block \(minBlock)")
        precondition(aspectRange.lowerBound > 0, "block mask: aspect ratios must be positive")
        precondition(allowedFailures >= 1 && attemptsPerBlock >= 1, "block mask: needs at least one attempt")
        self.height = height
        self.width = width
        self.minBlock = minBlock
        self.maxBlock = maxBlock
        self.aspectRange = aspectRange
        self.allowedFailures = allowedFailures
        self.attemptsPerBlock = attemptsPerBlock
        self.clampsAreaToMinBlock = clampsAreaToMinBlock
    }

    /// BEiT's `MaskingGenerator(input_size, num_masking_patches, min_num_patches=16,
    /// max_num_patches=None, min_aspect=0.3)` (PeCo's settings too); use with `mask(count:)`.
    public static func beit(height: Int = 14, width: Int = 14, minBlock: Int = 16, maxBlock: Int? = nil,
                            minAspect: Double = 0.3) -> BlockMaskGenerator {
        BlockMaskGenerator(height: height, width: width, minBlock: minBlock, maxBlock: maxBlock,
                           aspectRange: minAspect...(1 / minAspect))
    }

    /// iBOT's block masking of one crop of `height`×`width` patches; use with `mask(ratio:)`.
    /// `aspectRange`: `--pred_aspect_ratio` (0.3, 1/0.3).
    public static func ibot(height: Int, width: Int, aspectRange: ClosedRange<Double> = 0.3...(1 / 0.3)) -> BlockMaskGenerator {
        let side = min(height, width) / 3
        return BlockMaskGenerator(height: height, width: width, minBlock: side * side, aspectRange: aspectRange)
    }

    public var numPatches: Int { height * width }

    /// iBOT's target for a crop: `ratio · H · W` masked patches, a fraction allowed.
    public func mask(ratio: Double, rng: inout SeededRandom) -> [Bool] {
        mask(target: ratio * Double(height) * Double(width), rng: &rng)
    }

    public func mask(count: Int, rng: inout SeededRandom) -> [Bool] {
        mask(target: Double(count), rng: &rng)
    }

    /// One mask, row-major H×W (true = masked), with at most ⌊target⌋ masked patches: exactly that
    /// many unless blocks stopped fitting first.
    public func mask(target: Double, rng: inout SeededRandom) -> [Bool] {
        var mask = [Bool](repeating: false, count: numPatches)
        var count = 0
        var failures = 0
        let logAspect = log(aspectRange.lowerBound)...log(aspectRange.upperBound)
        let low = Double(minBlock)
        while Double(count) < target && failures < allowedFailures {
            let remaining = maxBlock.map { min(target - Double(count), Double($0)) } ?? target - Double(count)
            let span = clampsAreaToMinBlock ? max(remaining - low, 0) : remaining - low
            var added = 0
            for _ in 0..<attemptsPerBlock {
                let area = low + Double(rng.uniform()) * span
                let aspect = exp(logAspect.lowerBound + Double(rng.uniform()) * (logAspect.upperBound - logAspect.lowerBound))
                let h = Int((area * aspect).squareRoot().rounded()), w = Int((area / aspect).squareRoot().rounded())
                // An empty block could not add anything; skip drawing its position.
                guard h >= 1, w >= 1, h < height, w < width else { continue }
                let top = Int(rng.next() % UInt64(height - h + 1)), left = Int(rng.next() % UInt64(width - w + 1))
                var already = 0
                for i in top..<(top + h) { for j in left..<(left + w) where mask[i * width + j] { already += 1 } }
                let fresh = h * w - already
                if fresh > 0 && Double(fresh) <= remaining {
                    for i in top..<(top + h) { for j in left..<(left + w) where !mask[i * width + j] {
                        mask[i * width + j] = true
                        added += 1
                    } }
                }
                if added > 0 { break }
            }
            if added == 0 { failures += 1 } else { count += added }
        }
        return mask
    }
}
