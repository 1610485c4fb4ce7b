import XCTest
import Tensor
import ViT
import Objectives

/// What a reconstruction without a masking asked for draws on a PeCo stage-2 model (`eval`, the
/// service) is its training masks: with a run's objective options, the masks a training step with
/// those options plans (`PretrainingNetwork.plan`, BEiT's generator), grouped by masked count;
/// without options, those of the default options (an export keeps no recipe.json).
final class PeCoTrainingMasksTests: XCTestCase {
    /// 28 px at patch 4: a 7×7 grid, 20 of 49 patches aimed for (0.4).
    func network() throws -> PretrainingNetwork {
        let shape = BackboneShape(imgSize: 28, patchSize: 4, channels: 1, embedDim: 16, depth: 1, numHeads: 2, decoderDim: 16,
                                  decoderDepth: 1, deepDecoderDepth: 1)
        let (encoder, settings) = try PeCo.configure(shape, maskRatio: 0.4, flags: ObjectiveFlagValues())
        return PretrainingNetwork(config: PretrainingConfig(PeCo.self, encoder: encoder, settings: settings))
    }

    func testDefaultPlansAreTheTrainingStepsMasksOfTheOptions() throws {
        let network = try network()
        let peco = try XCTUnwrap(network.codePredictor)
        XCTAssertEqual(peco.maskedCount, 20)
        let clock = TrainingClock(step: 0, stepsPerEpoch: 1, epochs: 1)
        func trainingMasks(_ options: PeCo.Options, seed: UInt64) throws -> [MaskGroup] {
            var rng = SeededRandom(seed: seed, stream: 3)
            let plan = try XCTUnwrap(network.plan(batch: 8, rng: &rng, options: options, clock: clock) as? PeCoPlan)
            return MaskGroup.grouping(plan.masks)
        }
        func drawn(_ options: (any ObjectiveOptions)?, seed: UInt64) -> [MaskGroup] {
            var rng = SeededRandom(seed: seed, stream: 3)
            return peco.defaultPlans(batch: 8, grid: 7, masked: 20, options: options, rng: &rng)
        }
        let runs = [PeCo.Options(), PeCo.Options(minMaskPatchesPerBlock: 12),
                    PeCo.Options(minMaskPatchesPerBlock: 2, maxMaskPatchesPerBlock: 3, minAspect: 0.5)]
        for seed: UInt64 in 0..<4 {
            for options in runs {
                XCTAssertEqual(drawn(options, seed: seed), try trainingMasks(options, seed: seed), "seed \(seed), \(options)")
            }
            XCTAssertEqual(drawn(nil, seed: seed), try trainingMasks(PeCo.Options(), seed: seed), "seed \(seed): no options are the defaults")
            // Else the comparisons above could not tell the options apart.
            XCTAssertNotEqual(drawn(runs[1], seed: seed), drawn(nil, seed: seed), "seed \(seed)")
            XCTAssertNotEqual(drawn(runs[2], seed: seed), drawn(nil, seed: seed), "seed \(seed)")
        }
    }

    /// eval.json's `maskingDetail`: the block options the masks were drawn with, and whose they were.
    func testMaskingDetailNamesTheOptions() throws {
        let peco = try XCTUnwrap(try network().codePredictor)
        XCTAssertEqual(peco.defaultMaskingDetail(grid: 7, options: nil),
                       "BEiT block masks with the default options: blocks of at least 4 patches, aspect 0.3 to 3.33")
        XCTAssertEqual(peco.defaultMaskingDetail(grid: 7, options: PeCo.Options(minMaskPatchesPerBlock: 1)),
                       "BEiT block masks with the run's options: blocks of at least 1 patch, aspect 0.3 to 3.33")
        XCTAssertEqual(peco.defaultMaskingDetail(grid: 7, options: PeCo.Options(minMaskPatchesPerBlock: 2, maxMaskPatchesPerBlock: 3, minAspect: 0.5)),
                       "BEiT block masks with the run's options: blocks of 2 to 3 patches, aspect 0.5 to 2")
    }
}
