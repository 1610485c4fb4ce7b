import XCTest
import Foundation
import Tensor
import ViT
import Training
import Objectives
import TestSupport

/// Which masks `eval` scores a reconstruction on (28 px Fashion-MNIST, patch 4: a 7×7 grid).
/// By default each objective's own task: LoMaR's is windows (4×4, 12 of 16 patches masked in
/// each, each window encoded alone), not a mask over the whole image. On request, one whole-image
/// masking at one ratio for every objective, so their PSNRs compare.
final class ReconstructionMasksTests: TrainingTestCase {
    static let shape = BackboneShape(imgSize: 28, patchSize: 4, channels: 1, embedDim: 32, depth: 2, numHeads: 2,
                                     decoderDim: 16, decoderDepth: 1, deepDecoderDepth: 1)

    func network<O: PretrainingObjective>(_ objective: O.Type) throws -> PretrainingNetwork {
        let (encoder, settings) = try O.configure(Self.shape, maskRatio: O.defaultMaskRatio, flags: ObjectiveFlagValues())
        let network = PretrainingNetwork(config: PretrainingConfig(O.self, encoder: encoder, settings: settings))
        network.initialize(seed: 5)
        return network
    }

    func testImages(_ count: Int) throws -> (any ImageDataset, Tensor) {
        let test = SubsetDataset(try Datasets.open(Self.fashionMNIST, split: .test), count: count)
        let c = try network(MAE.self).config.encoder
        let loader = BatchLoader(dataset: test, batchSize: count, shuffle: false, dropLast: false, seed: 9, epoch: 0,
                                 channels: 1, imageSize: c.imgSize, mean: c.mean, std: c.std, augment: nil)
        return (test, try XCTUnwrap(try loader.next()).images)
    }

    /// LoMaR's own task is its training step's: the same windows and masks (seed 9, stream 0 of the
    /// one batch), scored on every window's masked patches. So the evaluation's normalized MSE is
    /// the training loss of that step (computed apart: `step` without backward, `WeightedMSE`), and
    /// its pixel MSE is the step's prediction mapped back by hand with each patch's statistics.
    /// Whole-image masks (the served tiles, 40 of 49 masked) would give other numbers and another name.
    func testLoMaREvaluatesItsOwnWindows() throws {
        let network = try network(LoMaR.self)
        let lomar = try XCTUnwrap(network.objective as? LoMaR)
        let (test, images) = try testImages(24)
        let result = try Evaluation.reconstruction(network, dataset: test, batchSize: 24, seed: 9, progress: nil)
        XCTAssertEqual(result.masking, "windows")
        XCTAssertEqual(result.maskRatio, 12.0 / 16.0, "⌊16 · 0.8⌋ of a 4×4 window")
        XCTAssertEqual(result.predictedPatches, 24 * 4 * 12)
        XCTAssertEqual(result.maskingDetail, "4 windows of 4×4 patches per image, 12 of 16 masked in each, windows distinct per image")

        var rng = SeededRandom(seed: 9, stream: 0)
        let plan = LoMaRPlan.draw(batch: 24, grid: 7, size: 4, count: 4, masked: 12, pairing: .distinct, rng: &rng)
        let step = lomar.step(images, plan: plan, backward: false)
        XCTAssertEqual(result.normalizedMSE, Double(step.loss), accuracy: 1e-5 * Double(step.loss))

        // Pixels: x · std + mean per patch (unbiased std, eps 1e-6), then the model's mean/std.
        let c = network.config.encoder
        let raw = PixelTargets.patchifyChannelsLast(images, patch: 4)   // (24, 49, 16); one channel: any order
        var se = 0.0, values = 0
        for (r, w) in plan.windows.enumerated() {
            for i in 0..<16 where plan.masks[r][i] {
                let patch = (w.top + i / 4) * 7 + w.left + i % 4
                let x = (0..<16).map { Double(raw.data[(w.image * 49 + patch) * 16 + $0]) }
                let mean = x.reduce(0, +) / 16
                let std = ((x.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 15) + 1e-6).squareRoot()
                for k in 0..<16 {
                    let predicted = Double(step.prediction.data[(r * 16 + i) * 16 + k]) * std + mean
                    let d = (predicted - x[k]) * Double(c.std[0])
                    se += d * d; values += 1
                }
            }
        }
        XCTAssertEqual(values, try XCTUnwrap(result.predictedPatches) * 16)
        XCTAssertEqual(result.mse, se / Double(values), accuracy: 1e-5 * result.mse)
        XCTAssertEqual(result.psnr, 10 * log10(1 / result.mse), accuracy: 1e-9)
    }

    /// A run trained with the official pairing of window rows is evaluated with it: the normalized
    /// MSE is that step's loss with `.official` (seed 9, stream 0), not the distinct pairing's, and
    /// eval.json's `maskingDetail` names the pairing.
    func testLoMaROwnWindowsFollowTheRunsPairing() throws {
        let network = try network(LoMaR.self)
        let lomar = try XCTUnwrap(network.objective as? LoMaR)
        let (test, images) = try testImages(24)
        let result = try Evaluation.reconstruction(network, dataset: test, batchSize: 24, seed: 9,
                                                   options: LoMaR.Options(windowPairing: .official), progress: nil)
        func loss(_ pairing: WindowPairing) -> Double {
            var rng = SeededRandom(seed: 9, stream: 0)
            let plan = LoMaRPlan.draw(batch: 24, grid: 7, size: 4, count: 4, masked: 12, pairing: pairing, rng: &rng)
            return Double(lomar.step(images, plan: plan, backward: false).loss)
        }
        let (official, distinct) = (loss(.official), loss(.distinct))
        XCTAssertNotEqual(official, distinct, accuracy: 1e-3 * distinct, "else the pairings could not be told apart")
        XCTAssertEqual(result.normalizedMSE, official, accuracy: 1e-5 * official)
        XCTAssertEqual(result.maskingDetail, "4 windows of 4×4 patches per image, 12 of 16 masked in each, "
                       + "rows paired as the official code (row r: image r mod N, window r mod M)")
    }

    /// Equal masks: `.image(.random, ratio: 0.75)` hides 37 of 49 patches for LoMaR too (its own
    /// whole-image count is 40), drawn as MAE draws them, and the result is the by-hand MSE on
    /// exactly those masks. For MAE, whose own masks these are, the result is its default one.
    func testEqualMasksUseTheGivenRatioForEveryObjective() throws {
        let (test, images) = try testImages(16)
        let lomar = try network(LoMaR.self), mae = try network(MAE.self)
        XCTAssertEqual(lomar.reconstructor?.maskedCount, 40, "the ratio must matter: LoMaR's own count differs")
        let equal = Evaluation.ReconstructionMasks.image(.random, ratio: 0.75)
        let result = try Evaluation.reconstruction(lomar, dataset: test, batchSize: 16, seed: 9, masks: equal, progress: nil)
        XCTAssertEqual(result.masking, "random")
        XCTAssertEqual(result.maskRatio, 37.0 / 49.0)
        XCTAssertNil(result.maskingDetail)

        var rng = SeededRandom(seed: 9, stream: 0)
        let plan = RandomMasking.plan(batch: 16, numPatches: 49, visible: 12, rng: &rng)
        let r = lomar.reconstruct(images, plan: plan)
        var se = 0.0, values = 0
        for (b, row) in plan.order.enumerated() {
            for patch in row[12...] {
                for k in 0..<16 {
                    let d = Double(r.pixels.data[(b * 49 + patch) * 16 + k] - r.truth.data[(b * 49 + patch) * 16 + k])
                    se += d * d; values += 1
                }
            }
        }
        XCTAssertEqual(result.mse, se / Double(values), accuracy: 1e-12)

        let maeEqual = try Evaluation.reconstruction(mae, dataset: test, batchSize: 16, seed: 9, masks: equal, progress: nil)
        let maeOwn = try Evaluation.reconstruction(mae, dataset: test, batchSize: 16, seed: 9, progress: nil)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        XCTAssertEqual(try encoder.encode(maeEqual), try encoder.encode(maeOwn))
        XCTAssertEqual(maeOwn.maskRatio, 37.0 / 49.0)
    }
}
