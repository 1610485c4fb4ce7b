import XCTest
import Foundation
import Tensor
import ViT

final class BlockMaskGeneratorTests: XCTestCase {
    /// `BlockMasking.blockMask` as it was before it moved onto `BlockMaskGenerator`, kept verbatim
    /// so the two can be compared draw for draw.
    func legacyBlockMask(_ m: BlockMasking, grid: Int, rng: inout SeededRandom) -> [Bool] {
        var mask = [Bool](repeating: false, count: grid * grid)
        var count = 0
        var failures = 0
        let logAspect = log(m.aspectRange.lowerBound)...log(m.aspectRange.upperBound)
        while count < m.blockPatches && failures < 100 {
            let budget = min(m.blockPatches - count, m.maxBlock)
            var added = 0
            for _ in 0..<10 {
                let area = Double(m.minBlock) + Double(rng.uniform()) * Double(max(budget - m.minBlock, 0))
                let aspect = exp(logAspect.lowerBound + Double(rng.uniform()) * (logAspect.upperBound - logAspect.lowerBound))
                let h = Int((area * aspect).squareRoot().rounded()), w = Int((area / aspect).squareRoot().rounded())
                guard h >= 1, w >= 1, h < grid, w < grid else { continue }
                let top = Int(rng.next() % UInt64(grid - h + 1)), left = Int(rng.next() % UInt64(grid - w + 1))
                var already = 0
                for i in top..<(top + h) { for j in left..<(left + w) where mask[i * grid + j] { already += 1 } }
                let fresh = h * w - already
                if fresh > 0 && fresh <= budget {
                    for i in top..<(top + h) { for j in left..<(left + w) where !mask[i * grid + j] {
                        mask[i * grid + j] = true
                        added += 1
                    } }
                }
                if added > 0 { break }
            }
            if added == 0 { failures += 1 } else { count += added }
        }
        return mask
    }

    /// BootMAE's masks are unchanged by the move: same masks and the generator left in the same
    /// state, over many seeds and settings (including remainders below the minimum block and
    /// grids so small that blocks fail).
    func testBlockMaskingDrawsAreUnchanged() {
        var settings = [14, 8, 7, 4, 3].map { BlockMasking.scaled(grid: $0) }
        var custom = BlockMasking.scaled(grid: 10)
        (custom.blockPatches, custom.minBlock, custom.maxBlock) = (50, 9, 13)
        settings.append(custom)
        (custom.blockPatches, custom.minBlock, custom.maxBlock, custom.aspectRange) = (30, 1, 40, 0.5...2)
        settings.append(custom)
        let grids = [14, 8, 7, 4, 3, 10, 9]
        var differing = 0
        for (m, grid) in zip(settings, grids) {
            var mismatches: [Int] = []
            for seed in 0..<300 {
                var old = SeededRandom(seed: UInt64(seed)), new = old
                let expected = legacyBlockMask(m, grid: grid, rng: &old)
                if m.blockMask(grid: grid, rng: &new) != expected || new != old { mismatches.append(seed) }
                if expected != legacyBlockMask(m, grid: grid, rng: &old) { differing += 1 }
            }
            XCTAssertEqual(mismatches, [], "grid \(grid): seeds whose mask or final generator state changed")
        }
        XCTAssertGreaterThan(differing, 1000, "the draws vary with the seed")
    }

    /// iBOT's block masks (float target ratio·H·W, min block (min(H, W) / 3)², stop at the first
    /// failed block): mean / min / max masked counts over 4000 draws against the official Python
    /// generator's (about 57.3 / 48 / 58 on 14×14, 18.9 / 18 / 19 on 8×8, 13.9 / 12 / 14 on 7×7 at
    /// 0.3). Our random stream is not Python's, so the rare minimum is allowed a few patches of
    /// slack (measured: 57.27 / 48 / 58, 18.93 / 16 / 19, 13.93 / 11 / 14).
    func testIBOTStatisticsMatchTheOfficialGenerator() {
        let cases: [(grid: Int, mean: Double, min: Int, max: Int)] = [(14, 57.3, 48, 58), (8, 18.9, 18, 19), (7, 13.9, 12, 14)]
        for c in cases {
            let generator = BlockMaskGenerator.ibot(height: c.grid, width: c.grid)
            XCTAssertEqual(generator.minBlock, (c.grid / 3) * (c.grid / 3))
            var rng = SeededRandom(seed: 2024)
            let counts = (0..<4000).map { _ in generator.mask(ratio: 0.3, rng: &rng).filter { $0 }.count }
            let mean = Double(counts.reduce(0, +)) / Double(counts.count)
            XCTAssertEqual(mean, c.mean, accuracy: 0.15, "mean on \(c.grid)×\(c.grid)")
            XCTAssertEqual(counts.max(), c.max, "max on \(c.grid)×\(c.grid): never above ⌊0.3·H·W⌋")
            XCTAssertLessThanOrEqual(abs(counts.min()! - c.min), 3, "min on \(c.grid)×\(c.grid): \(counts.min()!)")
        }
    }

    /// BEiT / PeCo (75 of 14×14, blocks ≥ 16, no cap): never above the target, which is usually hit.
    func testBEiTIntegerTarget() {
        let generator = BlockMaskGenerator.beit()
        XCTAssertEqual([generator.height, generator.width, generator.minBlock], [14, 14, 16])
        XCTAssertNil(generator.maxBlock)
        var rng = SeededRandom(seed: 5)
        let counts = (0..<1000).map { _ in generator.mask(count: 75, rng: &rng).filter { $0 }.count }
        XCTAssertEqual(counts.max(), 75)
        XCTAssertGreaterThan(counts.filter { $0 == 75 }.count, 500, "most masks reach the target")
        XCTAssertGreaterThanOrEqual(counts.min()!, 16, "at least one block of the minimum area")
    }

    /// A rectangular grid: masks are H×W row-major, blocks stay inside, and the result depends
    /// only on the seed.
    func testRectangularGridAndDeterminism() {
        let generator = BlockMaskGenerator.ibot(height: 6, width: 12)
        XCTAssertEqual(generator.minBlock, 4)
        var a = SeededRandom(seed: 11), b = SeededRandom(seed: 11)
        for _ in 0..<200 {
            let mask = generator.mask(ratio: 0.4, rng: &a)
            XCTAssertEqual(mask.count, 72)
            XCTAssertLessThanOrEqual(mask.filter { $0 }.count, 28)
            XCTAssertEqual(generator.mask(ratio: 0.4, rng: &b), mask)
        }
        var rng = SeededRandom(seed: 1)
        let untouched = rng
        XCTAssertEqual(generator.mask(ratio: 0, rng: &rng), [Bool](repeating: false, count: 72))
        XCTAssertEqual(rng, untouched, "a zero ratio draws nothing")
    }

    /// iBOT's README recipe: about half the crops unmasked, the others at a ratio in [0.1, 0.5].
    func testPredictionRatioRecipe() {
        let recipe = PredictionRatio.ibotMultiCrop
        var rng = SeededRandom(seed: 9)
        let draws = (0..<4000).map { _ in recipe.draw(epoch: 0, rng: &rng) }
        let zero = draws.filter { $0 == 0 }.count
        XCTAssertEqual(Double(zero) / 4000, 0.5, accuracy: 0.03)
        let masked = draws.filter { $0 != 0 }
        XCTAssertTrue(masked.allSatisfy { (0.1...0.5).contains($0) })
        XCTAssertEqual(masked.reduce(0, +) / Double(masked.count), 0.3, accuracy: 0.01)
        XCTAssertEqual(PredictionRatio(means: [0.3], variations: [0.1], startEpoch: 5).draw(epoch: 4, rng: &rng), 0)
        XCTAssertEqual(PredictionRatio(means: [0.25]).draw(epoch: 0, rng: &rng), 0.25)
    }
}
