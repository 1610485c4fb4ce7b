import XCTest
import Tensor
import ViT

final class MaskingTests: XCTestCase {
    func assertValid(_ plan: MaskPlan, masked: Int, file: StaticString = #filePath, line: UInt = #line) {
        for row in plan.order {
            XCTAssertEqual(Set(row), Set(0..<plan.numPatches), "a permutation", file: file, line: line)
            let visible = Set(row[..<plan.visible]), hidden = Set(row[plan.visible...])
            XCTAssertTrue(visible.isDisjoint(with: hidden), file: file, line: line)
            XCTAssertEqual(hidden.count, masked, file: file, line: line)
        }
        XCTAssertEqual(plan.lossMask.reduce(0, +), Float(masked * plan.batch), file: file, line: line)
    }

    func testRandomMaskingCountsAndSeeds() {
        var rng = SeededRandom(seed: 7)
        let plan = RandomMasking(ratio: 0.75).plan(batch: 5, numPatches: 64, rng: &rng)
        XCTAssertEqual(plan.visible, 16)
        assertValid(plan, masked: 48)
        var again = SeededRandom(seed: 7)
        XCTAssertEqual(RandomMasking(ratio: 0.75).plan(batch: 5, numPatches: 64, rng: &again), plan)
        var other = SeededRandom(seed: 8)
        XCTAssertNotEqual(RandomMasking(ratio: 0.75).plan(batch: 5, numPatches: 64, rng: &other), plan)
    }

    func testOfficialBlockMaskingScale() {
        let m = BlockMasking.scaled(grid: 14)
        XCTAssertEqual([m.blockPatches, m.maskCount, m.minBlock, m.maxBlock, m.maxRoll], [120, 147, 16, 60, 3])
        let small = BlockMasking.scaled(grid: 8)
        XCTAssertEqual([small.blockPatches, small.maskCount], [39, 48])
    }

    func testBlockMaskHasTheRequestedCount() {
        var rng = SeededRandom(seed: 1)
        let m = BlockMasking.scaled(grid: 14)
        for _ in 0..<50 { XCTAssertEqual(m.blockMask(grid: 14, rng: &rng).filter { $0 }.count, 120) }
    }

    /// After the roll, exactly r block-masked patches are visible, r ∈ 0...3 shared by the batch,
    /// and the masked set is the rest of the block plus random top-up patches (BootMAE `utils.py`
    /// `mask_to_index`: argsort of block mask minus noise, then `roll(random.randint(0, 3))`).
    func testRollUnmasksTheSameNumberOfBlockPatchesInEveryImage() {
        let m = BlockMasking.scaled(grid: 14)
        var seen = Set<Int>()
        for seed in 0..<40 {
            var rng = SeededRandom(seed: UInt64(seed))
            var replay = SeededRandom(seed: UInt64(seed))
            let plan = m.plan(batch: 4, grid: 14, rng: &rng)
            assertValid(plan, masked: 147)
            // Replay the generator to recover each image's block mask.
            let blocks = (0..<4).map { _ -> [Bool] in
                let b = m.blockMask(grid: 14, rng: &replay)
                for _ in 0..<196 { _ = replay.uniform() }
                return b
            }
            let visibleInBlock = (0..<4).map { i in plan.order[i][..<plan.visible].filter { blocks[i][$0] }.count }
            XCTAssertEqual(Set(visibleInBlock).count, 1, "one roll for the whole batch")
            XCTAssertTrue((0...3).contains(visibleInBlock[0]))
            seen.insert(visibleInBlock[0])
        }
        XCTAssertEqual(seen, Set(0...3), "every roll value occurs")
    }

    /// weight = mask · (1 + avgpool3×3(mask)) with zero padding, always divided by 9.
    func testNeighbourhoodWeightsClosedForm() {
        // 3×3 grid, everything masked except the centre (order lists the centre first).
        let plan = MaskPlan(order: [[4, 0, 1, 2, 3, 5, 6, 7, 8]], visible: 1)
        let w = plan.neighbourhoodWeights(grid: 3)
        XCTAssertEqual(w[4], 0)
        XCTAssertEqual(w[0], 1 + 3.0 / 9, accuracy: 1e-6)   // corner: itself + 2 edges (centre visible)
        XCTAssertEqual(w[1], 1 + 5.0 / 9, accuracy: 1e-6)   // edge: itself + 2 corners + 2 edges (centre visible)
    }
}
