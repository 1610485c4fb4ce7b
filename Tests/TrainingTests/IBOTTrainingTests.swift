import XCTest
import Foundation
import Tensor
import ViT
import Checkpoint
import Objectives
@testable import Training
import TestSupport

/// iBOT through the trainer on a Fashion-MNIST subset: two global crops per image, resume bit for
/// bit across the epoch whose last layer is frozen (AdamW's per-tensor step counts and the
/// centres are in the checkpoint), and an export that is the teacher as a plain encoder.
final class IBOTTrainingTests: TrainingTestCase {
    let config = PretrainingConfig(IBOT.self, encoder: ViTConfig(
        imgSize: 28, patchSize: 7, inChans: 1, embedDim: 32, depth: 2, numHeads: 2, mlpRatio: 2, qkvBias: .qkv,
        layerNormEps: 1e-6, globalPool: .cls, mean: [0.5], std: [0.5], posEmbed: .checkpoint),
        settings: .init(outDim: 64, headHidden: 32, headBottleneck: 16))

    var recipe: PretrainRecipe {
        PretrainRecipe(IBOT.self, options: IBOT.Options(warmupTeacherTempEpochs: 1), data: Self.fashionMNIST, seed: 2, epochs: 2,
                       batchSize: 32, lr: 5e-4, minLR: 1e-6, warmupEpochs: 0.5, weightDecay: 0.04, beta1: 0.9, beta2: 0.999,
                       checkpointEvery: 1000, subset: 128)
    }

    func quiet() -> ProgressReporter { ProgressReporter(interactive: false, logEvery: 1e9) }

    /// With `photometric` (the default) the global crops come as main_ibot.py's
    /// `DataAugmentationiBOT` makes them: the first with `global_transfo1`, every other with
    /// `global_transfo2`; `--no-photometric` gives the plain crops of before, and a recipe written
    /// before the option existed reads as without it. The trainer's loader gets the recipes.
    func testGlobalCropsFollowTheOfficialRecipes() throws {
        let network = PretrainingNetwork(config: config)
        let size = config.encoder.imgSize
        var options = IBOT.Options(warmupTeacherTempEpochs: 1)
        XCTAssertTrue(options.photometric)
        XCTAssertEqual(network.dataViews(options: options), [
            ViewGroupSpec(views: 1, size: size, scale: 0.14...1, photometric: .ibotFirstGlobal),
            ViewGroupSpec(views: 1, size: size, scale: 0.14...1, photometric: .ibotSecondGlobal)])
        options.globalCrops = 4
        XCTAssertEqual(network.dataViews(options: options)?.map(\.views), [1, 3])
        XCTAssertEqual(network.dataViews(options: options)?.map(\.photometric), [.ibotFirstGlobal, .ibotSecondGlobal])
        options.photometric = false
        XCTAssertEqual(network.dataViews(options: options), [ViewGroupSpec(views: 4, size: size, scale: 0.14...1)])

        // Flags, recipe.json round trip, and a recipe from before the option.
        func parsed(_ tokens: [String]) throws -> IBOT.Options {
            try IBOT.options(flags: ObjectiveFlagValues(parsing: tokens, declared: IBOT.flags, objective: "ibot"), epochs: 10)
        }
        XCTAssertTrue(try parsed([]).photometric)
        XCTAssertFalse(try parsed(["--no-photometric"]).photometric)
        let encoded = try JSONEncoder().encode(try parsed([]))
        XCTAssertEqual(try JSONDecoder().decode(IBOT.Options.self, from: encoded), try parsed([]))
        var old = try XCTUnwrap(JSONSerialization.jsonObject(with: encoded) as? [String: Any])
        XCTAssertEqual(old.removeValue(forKey: "photometric") as? Bool, true)
        let before = try JSONDecoder().decode(IBOT.Options.self, from: JSONSerialization.data(withJSONObject: old))
        XCTAssertFalse(before.photometric)

        // The loader's view groups carry the recipes.
        let run = try RunDirectory(scratch.appendingPathComponent("views").path, mode: .fresh)
        let trainer = try Pretrainer(config: config, recipe: recipe, run: run, resume: false)
        let groups = try XCTUnwrap(trainer.makeLoader(epoch: 0, startBatch: 0).views).groups
        XCTAssertEqual(groups.map(\.views), [1, 1])
        XCTAssertEqual(groups.map { $0.transform.photometric?.spec }, [.ibotFirstGlobal, .ibotSecondGlobal])
        XCTAssertEqual(groups.map { $0.transform.photometric?.viewSize }, [28, 28])
    }

    /// `--local-crops N` adds a third view group after the global crops: N crops of 3/7 of the
    /// image in whole patches (14 px here, patch 7), scale 0.05–0.4 and `local_transfo`'s photometric
    /// recipe (blur σ referred to 96 pixels); the global groups are unchanged. A recipe from before
    /// the option has none; a size that is no whole number of patches is refused before training.
    /// Two steps train with them (finite losses).
    func testLocalCropsFollowTheOfficialRecipe() throws {
        func parsed(_ tokens: [String]) throws -> IBOT.Options {
            try IBOT.options(flags: ObjectiveFlagValues(parsing: tokens, declared: IBOT.flags, objective: "ibot"), epochs: 10)
        }
        let network = PretrainingNetwork(config: config)
        let withLocals = try parsed(["--local-crops", "3"])
        let globals = try XCTUnwrap(network.dataViews(options: try parsed([])))
        XCTAssertEqual(network.dataViews(options: withLocals),
                       globals + [ViewGroupSpec(views: 3, size: 14, scale: 0.05...0.4, photometric: .ibotLocal)])
        XCTAssertEqual(IBOT.Options.defaultLocalCropSize(imageSize: 28, patch: 4), 12)
        XCTAssertEqual(IBOT.Options.defaultLocalCropSize(imageSize: 224, patch: 16), 96)
        XCTAssertEqual(network.dataViews(options: try parsed(["--local-crops", "2", "--no-photometric", "--local-crop-size", "21",
                                                              "--local-crop-scale", "0.1,0.3"]))?.last,
                       ViewGroupSpec(views: 2, size: 21, scale: 0.1...0.3))
        XCTAssertEqual(try parsed([]).localCrops, 0)
        XCTAssertThrowsError(try parsed(["--local-crops", "-1"]))
        XCTAssertThrowsError(try parsed(["--local-crop-scale", "0.5,0.2"]))
        XCTAssertEqual(try parsed(["--local-crops", "2", "--local-crop-size", "10"]).validationErrors(encoder: config.encoder),
                       ["--local-crop-size 10 must be a multiple of the patch size 7 within 7...28"])
        XCTAssertEqual(withLocals.validationErrors(encoder: config.encoder), [])

        // recipe.json round trip; a recipe from before local crops reads as none.
        let encoded = try JSONEncoder().encode(withLocals)
        XCTAssertEqual(try JSONDecoder().decode(IBOT.Options.self, from: encoded), withLocals)
        var old = try XCTUnwrap(JSONSerialization.jsonObject(with: encoded) as? [String: Any])
        for key in ["local_crops_number", "local_crops_size", "local_crops_scale"] { old.removeValue(forKey: key) }
        XCTAssertEqual(try JSONDecoder().decode(IBOT.Options.self, from: JSONSerialization.data(withJSONObject: old)), try parsed([]))

        // The trainer refuses a bad size, and trains with good ones.
        var bad = recipe
        bad.objectiveOptions = try parsed(["--local-crops", "2", "--local-crop-size", "10"])
        XCTAssertThrowsError(try Pretrainer(config: config, recipe: bad, run: try RunDirectory(scratch.appendingPathComponent("bad").path,
                                                                                                   mode: .fresh), resume: false))
        var good = recipe
        good.objectiveOptions = withLocals
        let trainer = try Pretrainer(config: config, recipe: good, run: try RunDirectory(scratch.appendingPathComponent("local").path,
                                                                                          mode: .fresh), resume: false)
        let groups = try XCTUnwrap(trainer.makeLoader(epoch: 0, startBatch: 0).views).groups
        XCTAssertEqual(groups.map(\.views), [1, 1, 3])
        XCTAssertEqual(groups.map(\.transform.imageSize), [28, 28, 14])
        XCTAssertEqual(groups.last?.transform.photometric, PhotometricAugment(.ibotLocal, viewSize: 14))
        XCTAssertEqual(try trainer.train(maxSteps: 2, progress: quiet()).steps, 2)
        XCTAssertEqual(trainer.run.readMetrics().count, 2)
        for row in trainer.run.readMetrics() {
            XCTAssertTrue(((row["loss"] as? NSNumber)?.doubleValue ?? .nan).isFinite)
        }
    }

    func testResumeIsExactAndTheExportIsTheTeacher() throws {
        let straight = try RunDirectory(scratch.appendingPathComponent("straight").path, mode: .fresh)
        let trainer = try Pretrainer(config: config, recipe: recipe, run: straight, resume: false)
        let before = try XCTUnwrap(trainer.network.objective as? IBOT).studentHead.lastLayer.weightV.value
        XCTAssertEqual(try trainer.train(progress: quiet()).steps, 8)
        let ibot = try XCTUnwrap(trainer.network.objective as? IBOT)
        XCTAssertNotEqual(ibot.center.value.data, [Float](repeating: 0, count: 64), "the centres moved")
        XCTAssertNotEqual(ibot.studentHead.lastLayer.weightV.value, before, "the last layer trains after epoch 0")
        let metrics = straight.readMetrics()
        XCTAssertEqual((metrics.first?["momentum"] as? NSNumber)?.doubleValue ?? 0, 0.996, accuracy: 1e-6)
        XCTAssertNotNil(metrics.first?["patch_loss"])

        // Stopped in epoch 0 (last layer frozen: 3 of 4 steps) and resumed.
        let splitPath = scratch.appendingPathComponent("split").path
        do {
            let first = try Pretrainer(config: config, recipe: recipe, run: try RunDirectory(splitPath, mode: .fresh), resume: false)
            _ = try first.train(maxSteps: 3, progress: quiet())
            XCTAssertEqual(try XCTUnwrap(first.network.objective as? IBOT).studentHead.lastLayer.weightV.value, before,
                           "frozen during the first epoch")
        }
        let checkpoint = URL(fileURLWithPath: splitPath).appendingPathComponent(RunDirectory.checkpointName)
        XCTAssertEqual(try SafeTensorsFile(contentsOf: checkpoint).metadata["adam_skipped"], "{\"head.last_layer.weight_v\":3}")
        _ = try Pretrainer(config: config, recipe: recipe, run: try RunDirectory(splitPath, mode: .resume), resume: true).train(progress: quiet())
        let a = try SafeTensorsFile(contentsOf: straight.file(RunDirectory.checkpointName)), b = try SafeTensorsFile(contentsOf: checkpoint)
        XCTAssertTrue(a.names.contains("teacher.head.last_layer.weight_v") && a.names.contains("ibot_loss.center2"))
        for name in a.names { XCTAssertEqual(try a.tensor(name), try b.tensor(name), name) }

        // The export is the teacher, as a plain encoder directory.
        let out = scratch.appendingPathComponent("ibot-export")
        _ = try Exporter.export(run: straight.url.path, to: out.path, half: false, overwrite: false)
        let served = try ModelDirectory.loadEncoder(out)
        XCTAssertFalse(try PretrainingDirectory.isPretraining(out))
        var rng = SeededRandom(seed: 1)
        let images = Tensor(shape: [2, 1, 28, 28], data: (0..<(2 * 784)).map { _ in rng.normal() })
        XCTAssertEqual(served.embed(images, pooling: .cls), ibot.teacher.embed(images, pooling: .cls))
        // Its card says what the directory serves: embeddings, no pixel decoder.
        let card = try String(contentsOf: out.appendingPathComponent("MODEL_CARD.md"), encoding: .utf8)
        XCTAssertTrue(card.contains("pretrained with iBOT and exported alone, without a pixel decoder: serves embeddings"), card)
        XCTAssertFalse(card.contains("masked-image reconstructions"), card)
        XCTAssertFalse(card.contains("bootmae-train calibrate"), "calibration scores reconstructions, which it cannot make: \(card)")
        // Its Architecture block is the plain encoder's config.json it ships, not the run's iBOT config
        // (no intended input given, so config.json is architecture and the training data, which the
        // card shows in its recipe).
        let shipped = try String(contentsOf: out.appendingPathComponent("config.json"), encoding: .utf8)
        var config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(shipped.utf8)) as? [String: Any])
        XCTAssertNotNil(config.removeValue(forKey: "training_data"), "export records the run's data: \(shipped)")
        let block = try XCTUnwrap(card.components(separatedBy: "## Architecture\n\n```json\n").dropFirst().first?
            .components(separatedBy: "\n```").first, card)
        let shown = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(block.utf8)) as? [String: Any])
        XCTAssertEqual(shown as NSDictionary, config as NSDictionary, card)
        XCTAssertFalse(shipped.contains("\"objective\""), shipped)
    }
}
