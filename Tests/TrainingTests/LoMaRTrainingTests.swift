import XCTest
import Foundation
import Tensor
import ViT
import Checkpoint
import Training
import Objectives
import TestSupport

/// LoMaR through the trainer on a small Fashion-MNIST subset (28 px, patch 4: 7×7 grid, 4×4 windows):
/// its loss falls, a stopped and resumed run ends with the same bytes, and the export serves the
/// RPE-only encoder and reconstructions.
final class LoMaRTrainingTests: TrainingTestCase {
    let config: PretrainingConfig = {
        let shape = BackboneShape(imgSize: 28, patchSize: 4, channels: 1, embedDim: 32, depth: 2, numHeads: 2,
                                  decoderDim: 16, decoderDepth: 1, deepDecoderDepth: 1)
        let (encoder, settings) = try! LoMaR.configure(shape, maskRatio: LoMaR.defaultMaskRatio, flags: ObjectiveFlagValues())
        return PretrainingConfig(LoMaR.self, encoder: encoder, settings: settings)
    }()

    func recipe(epochs: Int, lr: Double) -> PretrainRecipe {
        PretrainRecipe(LoMaR.self, options: LoMaR.Options(), data: Self.fashionMNIST, seed: 5, epochs: epochs, batchSize: 32, lr: lr,
                       minLR: 0, warmupEpochs: 1, weightDecay: 0.05, beta1: 0.9, beta2: 0.95, checkpointEvery: 1000, subset: 128)
    }

    func quiet() -> ProgressReporter { ProgressReporter(interactive: false, logEvery: 1e9) }

    func testLossFalls() throws {
        let run = try RunDirectory(scratch.appendingPathComponent("loss").path, mode: .fresh)
        let summary = try Pretrainer(config: config, recipe: recipe(epochs: 15, lr: 4e-3), run: run, resume: false).train(progress: quiet())
        XCTAssertEqual(summary.steps, 60)
        let losses = run.readMetrics().compactMap { ($0["loss"] as? NSNumber)?.doubleValue }
        let late = losses.suffix(4).reduce(0, +) / 4
        XCTAssertLessThan(late, 0.8 * losses[0], "loss \(losses[0]) → \(late)")
    }

    func testResumeIsExactAndTheExportServes() throws {
        let straight = try RunDirectory(scratch.appendingPathComponent("a").path, mode: .fresh)
        _ = try Pretrainer(config: config, recipe: recipe(epochs: 2, lr: 1e-3), run: straight, resume: false).train(progress: quiet())
        let split = scratch.appendingPathComponent("b")
        do {
            let run = try RunDirectory(split.path, mode: .fresh)
            _ = try Pretrainer(config: config, recipe: recipe(epochs: 2, lr: 1e-3), run: run, resume: false).train(maxSteps: 3, progress: quiet())
        }
        _ = try Pretrainer(config: config, recipe: recipe(epochs: 2, lr: 1e-3), run: try RunDirectory(split.path, mode: .resume), resume: true)
            .train(progress: quiet())
        let a = try SafeTensorsFile(contentsOf: straight.file(RunDirectory.checkpointName))
        let b = try SafeTensorsFile(contentsOf: split.appendingPathComponent(RunDirectory.checkpointName))
        XCTAssertEqual(a.names, b.names)
        XCTAssertTrue(a.names.contains("blocks.1.attn.rpe_k.lookup_table_weight") && a.names.contains("optim.m.mask_token"))
        for name in a.names { XCTAssertEqual(try a.tensor(name), try b.tensor(name), name) }
        XCTAssertNotEqual(try a.tensor("blocks.0.attn.rpe_k.lookup_table_weight").data.map(abs).max(), 0, "the tables train")

        let out = scratch.appendingPathComponent("export")
        _ = try Exporter.export(run: straight.url.path, to: out.path, half: false, overwrite: false)
        let network = try PretrainingDirectory.load(out)
        XCTAssertEqual(network.capabilities, [.embed, .reconstruct])
        var rng = SeededRandom(seed: 1)
        let images = Tensor(shape: [2, 1, 28, 28], data: (0..<(2 * 784)).map { _ in rng.normal() })
        let trained = try PretrainingDirectory.network(config: try PretrainingDirectory.readConfig(straight.url),
                                                       weights: a, ignoring: ["optim."])
        XCTAssertEqual(network.encoder.embed(images), trained.encoder.embed(images))
        let plan = network.defaultMaskPlan(batch: 2, rng: &rng)
        XCTAssertTrue(network.reconstruct(images, plan: plan).pixels.data.allSatisfy(\.isFinite))
    }
}
