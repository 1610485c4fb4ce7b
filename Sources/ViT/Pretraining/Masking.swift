import Foundation
import Tensor

/// Which patches each image of a batch keeps. `order[b]` is a permutation of the patch indices
/// 0..<N: the first `visible` entries are seen by the encoder (in that order), the rest are masked.
/// This is MAE's `ids_shuffle` and BootMAE's rolled `idx_shuffle`.
public struct MaskPlan: Sendable, Equatable {
    public let order: [[Int]]
    public let visible: Int

    public init(order: [[Int]], visible: Int) {
        precondition(!order.isEmpty && visible > 0 && visible <= order[0].count, "mask plan: bad visible count \(visible)")
        for row in order {
            precondition(row.count == order[0].count && Set(row).count == row.count && row.allSatisfy { $0 >= 0 && $0 < row.count },
                         "mask plan: each row must be a permutation of 0..<N")
        }
        self.order = order
        self.visible = visible
    }

    public var batch: Int { order.count }

    /// The plan of images `range` of the batch (one data-parallel shard).
    public func shard(_ range: Range<Int>) -> MaskPlan {
        MaskPlan(order: Array(order[range]), visible: visible)
    }
    public var numPatches: Int { order[0].count }
    public var masked: Int { numPatches - visible }

    /// Token rows the encoder keeps, cls (row 0) first: [0] + (visible patches + 1).
    public var keptTokens: [[Int]] { order.map { [0] + $0[..<visible].map { $0 + 1 } } }
    /// Masked patch indices in shuffled order (decoder mask tokens).
    public var maskedPatches: [[Int]] { order.map { Array($0[visible...]) } }

    /// (B·N) with 1 where the patch is masked, in original patch order (MAE's `mask`).
    public var lossMask: [Float] {
        var m = [Float](repeating: 0, count: batch * numPatches)
        for (b, row) in order.enumerated() { for n in row[visible...] { m[b * numPatches + n] = 1 } }
        return m
    }

    /// BootMAE's `--weight_mask`: masked patches weigh 1 + (masked patches in their 3×3
    /// neighbourhood, itself included)/9 (zero padding, always divided by 9); visible weigh 0.
    public func neighbourhoodWeights(grid: Int) -> [Float] {
        precondition(grid * grid == numPatches, "grid \(grid) does not match \(numPatches) patches")
        let m = lossMask
        var w = [Float](repeating: 0, count: m.count)
        for b in 0..<batch {
            let base = b * numPatches
            for i in 0..<grid { for j in 0..<grid where m[base + i * grid + j] == 1 {
                var count: Float = 0
                for di in -1...1 { for dj in -1...1 {
                    let (y, x) = (i + di, j + dj)
                    if y >= 0 && y < grid && x >= 0 && x < grid { count += m[base + y * grid + x] }
                } }
                w[base + i * grid + j] = 1 + count / 9
            } }
        }
        return w
    }
}

/// MAE masking: per image, a uniformly random subset of ⌊N·(1 − ratio)⌋ patches stays visible.
public struct RandomMasking: Sendable {
    public var ratio: Double
    public init(ratio: Double) { self.ratio = ratio }

    public func plan(batch: Int, numPatches n: Int, rng: inout SeededRandom) -> MaskPlan {
        Self.plan(batch: batch, numPatches: n, visible: n - MaskingSpec.maskedCount(ratio: ratio, patches: n), rng: &rng)
    }

    /// Per image, the patches sorted by uniform noise; the first `visible` stay visible.
    public static func plan(batch: Int, numPatches n: Int, visible: Int, rng: inout SeededRandom) -> MaskPlan {
        let order = (0..<batch).map { _ -> [Int] in
            let noise = (0..<n).map { _ in rng.uniform() }
            return (0..<n).sorted { noise[$0] < noise[$1] }
        }
        return MaskPlan(order: order, visible: visible)
    }
}

/// BootMAE masking: a BEiT block mask of `blockPatches` per image, topped up with
/// random patches to `maskCount`, then the whole batch's order rolled by one r ∈ 0...maxRoll,
/// which un-masks r block patches.
public struct BlockMasking: Sendable, Equatable {
    public var blockPatches: Int
    public var maskCount: Int
    public var minBlock: Int
    public var maxBlock: Int
    public var maxRoll: Int
    public var aspectRange: ClosedRange<Double> = 0.3...(1 / 0.3)

    /// The official 14×14 settings (120 block patches, 147 masked, blocks of 16–60, roll 0–3)
    /// scaled in proportion to a grid of `grid × grid` patches; `ratio` sets the masked share.
    public static func scaled(grid: Int, ratio: Double = 147.0 / 196.0) -> BlockMasking {
        let n = Double(grid * grid)
        let maskCount = Int((n * ratio).rounded())
        return BlockMasking(blockPatches: min(maskCount, Int((n * 120 / 196).rounded())), maskCount: maskCount,
                            minBlock: max(1, Int((n * 16 / 196).rounded())), maxBlock: max(2, Int((n * 60 / 196).rounded())),
                            maxRoll: 3)
    }

    /// The block generator with this port's settings: blocks capped at `maxBlock`, areas never
    /// drawn below `minBlock`, up to 100 failed blocks before giving up.
    public func generator(grid: Int) -> BlockMaskGenerator {
        BlockMaskGenerator(height: grid, width: grid, minBlock: minBlock, maxBlock: maxBlock, aspectRange: aspectRange,
                           allowedFailures: 100, clampsAreaToMinBlock: true)
    }

    /// One image's BEiT block mask on a grid×grid layout: exactly `blockPatches` ones unless no
    /// block fits after many attempts (then fewer; the top-up restores the total count).
    public func blockMask(grid: Int, rng: inout SeededRandom) -> [Bool] {
        generator(grid: grid).mask(count: blockPatches, rng: &rng)
    }

    public func plan(batch: Int, grid: Int, rng: inout SeededRandom) -> MaskPlan {
        let n = grid * grid
        let order = (0..<batch).map { _ -> [Int] in
            let block = blockMask(grid: grid, rng: &rng)
            // key ∈ (−1, 0] for block-visible, (0, 1] for block-masked: sorted, visible come first.
            let key = (0..<n).map { (block[$0] ? 1 : 0) - rng.uniform() }
            return (0..<n).sorted { key[$0] < key[$1] }
        }
        let r = Int(rng.next() % UInt64(maxRoll + 1))
        let rolled = order.map { row in (0..<n).map { row[($0 - r + n) % n] } }
        return MaskPlan(order: rolled, visible: n - maskCount)
    }
}
