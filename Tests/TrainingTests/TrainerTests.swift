import XCTest
import Foundation
import Tensor
import ViT
import Checkpoint
import Training
import Objectives
import TestSupport

/// The trainer end to end on a small Fashion-MNIST subset at a tiny size (debug build, seconds).
final class TrainerTests: TrainingTestCase {
    static let encoder = ViTConfig(imgSize: 28, patchSize: 7, inChans: 1, embedDim: 32, depth: 2, numHeads: 2, mlpRatio: 2,
                                   qkvBias: .qv, layerNormEps: 1e-6, globalPool: .cls, mean: [0.5], std: [0.5], posEmbed: .sincosBootMAE)
    static let bootmaeSettings = BootMAE.Settings(decoderEmbedDim: 16, decoderDepth: 1, featureDecoderDepth: 1, featureLayers: [0, 1], numMask: 11)
    static let bootmae = PretrainingConfig(BootMAE.self, encoder: encoder, settings: bootmaeSettings)

    func recipe(epochs: Int, batch: Int = 32, subset: Int = 256, lr: Double = 2e-3) -> PretrainRecipe {
        PretrainRecipe(BootMAE.self, options: .init(masking: .block, ema: EMASchedule(start: 0.99, end: 0.999, rampEpochs: Double(epochs) / 8)),
                       data: Self.fashionMNIST, seed: 3, epochs: epochs, batchSize: batch, lr: lr, minLR: lr / 24, warmupEpochs: 1,
                       checkpointEvery: 1000, subset: subset)
    }

    func quiet() -> ProgressReporter { ProgressReporter(interactive: false, logEvery: 1e9) }

    func testPretrainingLossFalls() throws {
        let run = try RunDirectory(scratch.appendingPathComponent("loss").path, mode: .fresh)
        let trainer = try Pretrainer(config: Self.bootmae, recipe: recipe(epochs: 25, batch: 16, subset: 128, lr: 4e-3), run: run, resume: false)
        XCTAssertEqual(trainer.totalSteps, 200)
        let summary = try trainer.train(progress: quiet())
        XCTAssertEqual(summary.steps, 200)
        let pixel = run.readMetrics().compactMap { ($0["pixel_loss"] as? NSNumber)?.doubleValue }
        let features = run.readMetrics().compactMap { ($0["feature_loss"] as? NSNumber)?.doubleValue }
        let late = pixel.suffix(4).reduce(0, +) / 4, lateFeature = features.suffix(4).reduce(0, +) / 4
        XCTAssertEqual(run.readMetrics().first?["step"] as? Int, 1)
        // From the first step to the end of 200 steps; both branches must learn. (A weighted
        // normalized-pixel loss starts near the mean weight, ≈ 1.6, and falls slowly for a model this small.)
        XCTAssertLessThan(late, 0.9 * pixel[0], "pixel loss \(pixel[0]) → \(late)")
        XCTAssertLessThan(lateFeature, 0.5 * features[0], "feature loss \(features[0]) → \(lateFeature)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.file("loss.png").path))
    }

    /// Stopped after 7 steps and resumed, a run ends with the same bytes as an uninterrupted one.
    func testResumeIsExact() throws {
        let straight = try RunDirectory(scratch.appendingPathComponent("a").path, mode: .fresh)
        _ = try Pretrainer(config: Self.bootmae, recipe: recipe(epochs: 3, subset: 160), run: straight, resume: false).train(progress: quiet())
        let split = scratch.appendingPathComponent("b")
        do {  // the first invocation, which lets go of the folder (and its lock) when it ends
            let run = try RunDirectory(split.path, mode: .fresh)
            _ = try Pretrainer(config: Self.bootmae, recipe: recipe(epochs: 3, subset: 160), run: run, resume: false).train(maxSteps: 7, progress: quiet())
        }
        let resumed = try Pretrainer(config: Self.bootmae, recipe: recipe(epochs: 3, subset: 160), run: try RunDirectory(split.path, mode: .resume), resume: true)
        XCTAssertEqual(resumed.step, 7)
        _ = try resumed.train(progress: quiet())
        let a = try SafeTensorsFile(contentsOf: straight.file(RunDirectory.checkpointName))
        let b = try SafeTensorsFile(contentsOf: split.appendingPathComponent(RunDirectory.checkpointName))
        XCTAssertEqual(a.names, b.names)
        XCTAssertTrue(a.names.contains("model_ema.blocks.0.attn.qkv.weight") && a.names.contains("optim.m.mask_token"))
        for name in a.names { XCTAssertEqual(try a.tensor(name), try b.tensor(name), name) }
    }

    /// The run's CPU time adds up over invocations: the checkpoint carries the first invocation's,
    /// and the resumed run's total is that plus at most what this process spent since (so neither
    /// reset to zero nor counted twice).
    func testCPUTimeAccumulatesOverInvocations() throws {
        let path = scratch.appendingPathComponent("cpu").path
        let first: Pretrainer.Summary
        do {
            first = try Pretrainer(config: Self.bootmae, recipe: recipe(epochs: 2, subset: 96), run: try RunDirectory(path, mode: .fresh),
                                   resume: false).train(maxSteps: 2, progress: quiet())
        }
        let saved = try XCTUnwrap(Double(try SafeTensorsFile(contentsOf: URL(fileURLWithPath: path).appendingPathComponent(RunDirectory.checkpointName))
            .metadata["train_cpu_seconds"] ?? ""), "the checkpoint records the CPU seconds")
        XCTAssertGreaterThan(saved, 0)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(first.totalCPUSeconds), saved)
        let before = ProcessCPUTime.seconds()
        let resumed = try Pretrainer(config: Self.bootmae, recipe: recipe(epochs: 2, subset: 96), run: try RunDirectory(path, mode: .resume), resume: true)
        let trainStart = ProcessCPUTime.seconds()
        let summary = try resumed.train(progress: quiet())
        let end = ProcessCPUTime.seconds()
        let total = try XCTUnwrap(summary.totalCPUSeconds)
        XCTAssertFalse(summary.stoppedEarly)
        XCTAssertGreaterThanOrEqual(total, saved + (end - trainStart) - 1e-6, "the earlier invocations' time is kept and this one's added")
        XCTAssertLessThanOrEqual(total, saved + (end - before) + 1e-6, "nothing is counted twice")
    }
    /// ema ← m·ema + (1 − m)·online, tensor by tensor.
    func testMomentumUpdateFormula() {
        let model = BootMAE(encoder: Self.encoder, settings: Self.bootmaeSettings)
        var rng = SeededRandom(seed: 1)
        model.initialize(rng: &rng)
        for (_, p) in model.momentum.parameters.entries where p.trainable { for i in 0..<p.value.count { p.value.data[i] = rng.normal() } }
        let before = model.momentum.parameters.entries.map { $0.parameter.value }
        model.updateMomentum(decay: 0.9)
        for ((name, online), ((_, ema), old)) in zip(model.encoder.parameters.entries, zip(model.momentum.parameters.entries, before)) {
            for i in 0..<old.count {
                XCTAssertEqual(ema.value.data[i], 0.9 * old.data[i] + (1 - 0.9) * online.value.data[i], accuracy: 1e-6, name)
            }
        }
    }

    /// The exported model directory loads in the serving loader and gives the trainer's embeddings.
    func testExportLoadsInTheServingLoader() throws {
        let run = try RunDirectory(scratch.appendingPathComponent("export").path, mode: .fresh)
        let trainer = try Pretrainer(config: Self.bootmae, recipe: recipe(epochs: 1, subset: 64), run: run, resume: false)
        _ = try trainer.train(progress: quiet())
        // Results written beside the run become the card's headline table.
        try Data(#"{"top1": 0.8361, "k": 20}"#.utf8).write(to: run.file("knn.json"))
        try Data(#"{"psnr": 17.703, "masking": "block", "data": {"path": "/usr/share/datasets/fashion-mnist", "split": "test split"}}"#.utf8)
            .write(to: run.file("eval.json"))
        let out = scratch.appendingPathComponent("models/tiny")
        let summary = try Exporter.export(run: run.url.path, to: out.path, half: false, overwrite: false)
        XCTAssertEqual(summary.kind, .pretraining)
        XCTAssertThrowsError(try Exporter.export(run: run.url.path, to: out.path, half: false, overwrite: false), "refuses to overwrite")
        let served = try ModelDirectory.loadEncoder(out)
        var rng = SeededRandom(seed: 9)
        let images = Tensor(shape: [3, 1, 28, 28], data: (0..<(3 * 784)).map { _ in rng.normal() })
        XCTAssertEqual(served.embed(images, pooling: .cls), trainer.network.encoder.embed(images, pooling: .cls))
        XCTAssertEqual(served.embed(images, pooling: .mean), trainer.network.encoder.embed(images, pooling: .mean))
        // The pixel decoder comes along, so the server can reconstruct.
        XCTAssertNoThrow(try PretrainingDirectory.load(out))
        let card = try String(contentsOf: out.appendingPathComponent("MODEL_CARD.md"), encoding: .utf8)
        XCTAssertTrue(card.contains("## Data and recipe"))
        XCTAssertTrue(card.contains("(BootMAE: encoder + pixel decoder): serves embeddings and masked-image reconstructions."), card)
        XCTAssertTrue(card.contains("bootmae-train calibrate --model DIR"), card)
        // Beside each number, the data it was measured on (a file from before `data` says it is not recorded).
        XCTAssertTrue(card.contains("| k-NN top-1 (frozen) | 83.61% | not recorded |"), card)
        XCTAssertTrue(card.contains("| masked-patch PSNR, block masks | 17.70 dB | fashion-mnist, test split |"), card)
        // What a measurement of the export reads without --data.
        let exported = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as? [String: Any])
        XCTAssertEqual(exported["training_data"] as? String, Self.fashionMNIST)

        // With the intended input: config.json carries it (the model's channels and size, the words given)
        // and the card's Limitations section states it, followed by the notes.
        let described = scratch.appendingPathComponent("models/described")
        _ = try Exporter.export(run: run.url.path, to: described.path, half: false, overwrite: false,
                                intended: .init(domain: "garments on black", limitations: "- Not for photographs.\n"))
        let config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: described.appendingPathComponent("config.json"))) as? [String: Any])
        let intended = try XCTUnwrap(config["intended_input"] as? [String: Any])
        XCTAssertEqual(intended["channels"] as? Int, 1)
        XCTAssertEqual(intended["size"] as? Int, 28)
        XCTAssertEqual(intended["domain"] as? String, "garments on black")
        XCTAssertNoThrow(try PretrainingDirectory.load(described), "the extra key does not stop the model loading")
        let describedCard = try String(contentsOf: described.appendingPathComponent("MODEL_CARD.md"), encoding: .utf8)
        XCTAssertTrue(describedCard.hasSuffix("## Limitations\n\nIntended input (also `intended_input` in `config.json` and in `/v1/models`): "
                                              + "**1 channel (grayscale), 28×28 px, garments on black**.\n\n- Not for photographs.\n"), describedCard)
    }

    /// Fine-tuning with data-parallel shards (2 workers) stopped after 5 steps and resumed from
    /// its checkpoint ends with the same bytes as an uninterrupted run: the step does not depend
    /// on timing, and the checkpoint holds all it needs.
    func testFineTuneResumeIsExact() throws {
        let recipe = FinetuneRecipe(data: Self.fashionMNIST, initFrom: nil, seed: 1, epochs: 2, batchSize: 32, lr: 2e-3,
                                    warmupEpochs: 0.5, layerDecay: 0.75, cropScale: 0.5...1, checkpointEvery: 1000, subset: 192,
                                    testSubset: 64)
        var config = Self.encoder
        config.globalPool = .mean
        let straight = try RunDirectory(scratch.appendingPathComponent("ft-a").path, mode: .fresh)
        _ = try Finetuner(config: config, recipe: recipe, run: straight, resume: false).train(progress: quiet())
        let split = scratch.appendingPathComponent("ft-b")
        do {  // the first invocation, which lets go of the folder (and its lock) when it ends
            let run = try RunDirectory(split.path, mode: .fresh)
            _ = try Finetuner(config: config, recipe: recipe, run: run, resume: false).train(maxSteps: 5, progress: quiet())
        }
        let resumed = try Finetuner(config: config, recipe: recipe, run: try RunDirectory(split.path, mode: .resume), resume: true)
        XCTAssertEqual(resumed.step, 5)
        _ = try resumed.train(progress: quiet())
        let a = try SafeTensorsFile(contentsOf: straight.file(RunDirectory.checkpointName))
        let b = try SafeTensorsFile(contentsOf: split.appendingPathComponent(RunDirectory.checkpointName))
        XCTAssertEqual(a.names, b.names)
        for name in a.names { XCTAssertEqual(try a.tensor(name), try b.tensor(name), name) }
    }

    func testFineTuningLearnsAndExportsAClassifier() throws {
        let run = try RunDirectory(scratch.appendingPathComponent("ft").path, mode: .fresh)
        let recipe = FinetuneRecipe(data: Self.fashionMNIST, initFrom: nil, seed: 1, epochs: 3, batchSize: 64, lr: 2e-3,
                                    warmupEpochs: 0.5, layerDecay: 0.75, cropScale: 0.5...1, checkpointEvery: 1000, subset: 1024,
                                    testSubset: 500)
        var config = Self.encoder
        config.globalPool = .mean
        let trainer = try Finetuner(config: config, recipe: recipe, run: run, resume: false)
        let summary = try trainer.train(progress: quiet())
        XCTAssertEqual(summary.history.count, 3)
        XCTAssertGreaterThan(try XCTUnwrap(summary.top1), 0.2, "48 steps on 1024 images; 10 classes, chance is 0.1")
        let out = scratch.appendingPathComponent("models/cls")
        XCTAssertEqual(try Exporter.export(run: run.url.path, to: out.path, half: true, overwrite: false).kind, .classifier)
        let served = try ModelDirectory.loadEncoder(out)
        XCTAssertEqual(served.config.labels?.count, 10)
        XCTAssertEqual(served.config.labels?.first, "T-shirt/top")
        var rng = SeededRandom(seed: 2)
        let images = Tensor(shape: [2, 1, 28, 28], data: (0..<(2 * 784)).map { _ in rng.normal() })
        let ours = trainer.classifier.logits(images), theirs = try XCTUnwrap(served.classify(served.pool(served.forward(images).0)))
        XCTAssertLessThan(relativeError(theirs, ours), 1e-2, "float16 export")
    }

    func testRunFolderRefusesToOverwriteAndResumeNeedsACheckpoint() throws {
        let path = scratch.appendingPathComponent("r").path
        _ = try Pretrainer(config: Self.bootmae, recipe: recipe(epochs: 1, subset: 32), run: try RunDirectory(path, mode: .fresh), resume: false)
        // Config and recipe without a checkpoint are the leftovers of a start that failed: not a
        // run yet, so a fresh start takes the folder over (clearing them) instead of refusing it.
        _ = try RunDirectory(path, mode: .fresh)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + "/recipe.json"))
        let trainer = try Pretrainer(config: Self.bootmae, recipe: recipe(epochs: 1, subset: 32), run: try RunDirectory(path, mode: .fresh), resume: false)
        try trainer.saveCheckpoint()
        XCTAssertThrowsError(try RunDirectory(path, mode: .fresh)) { XCTAssertTrue("\($0)".contains("--resume")) }
        XCTAssertThrowsError(try RunDirectory(scratch.appendingPathComponent("none").path, mode: .resume)) {
            XCTAssertTrue("\($0)".contains("no checkpoint"))
        }
    }

    /// One trainer per folder: a second one started on it stops instead of mixing two runs, and
    /// --overwrite clears the old run's measurements with its files.
    func testRunFolderIsLockedAndOverwriteClearsMeasurements() throws {
        let path = scratch.appendingPathComponent("locked").path
        let evalFile = path + "/eval.json"
        do {
            let first = try RunDirectory(path, mode: .fresh)
            try Data("{}".utf8).write(to: first.file("eval.json"))
            XCTAssertThrowsError(try RunDirectory(path, mode: .overwrite)) {
                XCTAssertTrue("\($0)".contains("another bootmae-train process"), "\($0)")
            }
            XCTAssertTrue(FileManager.default.fileExists(atPath: evalFile), "a refused open changes nothing")
            withExtendedLifetime(first) {}  // the lock lives as long as the open folder
        }
        // Let go with the folder: --overwrite opens it now, and the old measurement goes with the run.
        _ = try RunDirectory(path, mode: .overwrite)
        XCTAssertFalse(FileManager.default.fileExists(atPath: evalFile))
    }

    func testMissingDatasetIsAClearError() {
        var r = recipe(epochs: 1)
        r.data = "/nonexistent/data"
        XCTAssertThrowsError(try Pretrainer(config: Self.bootmae, recipe: r, run: try RunDirectory(scratch.appendingPathComponent("m").path, mode: .fresh), resume: false)) {
            XCTAssertTrue("\($0)".contains("/nonexistent/data"), "\($0)")
        }
    }

    /// The evaluation's masked-patch MSE is the mean over masked pixels of (prediction − truth)² in
    /// [0, 1] units, with the masks it says it used; PSNR follows from it in closed form.
    func testReconstructionEvaluationAccountsOnlyMaskedPatches() throws {
        var rng = SeededRandom(seed: 5)
        let network = PretrainingNetwork(config: Self.bootmae)
        network.objective.initialize(rng: &rng)
        let test = SubsetDataset(try Datasets.open(Self.fashionMNIST, split: .test), count: 40)
        for masking in MaskingSpec.allCases {
            let result = try Evaluation.reconstruction(network, dataset: test, batchSize: 40, seed: 9, masks: .image(masking, ratio: nil), progress: nil)
            XCTAssertEqual(result.masking, masking.rawValue)
            XCTAssertEqual(result.images, 40)
            XCTAssertEqual(result.psnr, 10 * log10(1 / result.mse), accuracy: 1e-9)
            // Recompute by hand from the same batch and the same mask draw (seed 9, stream 0).
            let c = Self.encoder
            let loader = BatchLoader(dataset: test, batchSize: 40, shuffle: false, dropLast: false, seed: 9, epoch: 0,
                                         channels: 1, imageSize: c.imgSize, mean: c.mean, std: c.std, augment: nil)
            let batch = try XCTUnwrap(try loader.next())
            var maskRNG = SeededRandom(seed: 9, stream: 0)
            let r = network.reconstruct(batch.images, plan: network.defaultMaskPlan(batch: 40, rng: &maskRNG, masking: masking))
            var se = 0.0, n = 0
            for b in 0..<40 {
                let hidden = Set(r.plan.order[b][r.plan.visible...])
                XCTAssertEqual(hidden.count, Self.bootmaeSettings.numMask)
                for patch in hidden {
                    for k in 0..<r.patchDim {
                        let d = Double(r.pixels.data[(b * r.plan.numPatches + patch) * r.patchDim + k] - r.truth.data[(b * r.plan.numPatches + patch) * r.patchDim + k])
                        se += d * d; n += 1
                    }
                }
            }
            XCTAssertEqual(result.mse, se / Double(n), accuracy: 1e-12, masking.rawValue)
        }
    }
}
