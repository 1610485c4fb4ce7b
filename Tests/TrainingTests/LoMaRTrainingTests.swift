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

    /// A LoMaR run of `steps` steps (the first at lr 0: warmup), its checkpoint.
    func pretrain(_ name: String, steps: Int) throws -> (RunDirectory, SafeTensorsFile) {
        let run = try RunDirectory(scratch.appendingPathComponent(name).path, mode: .fresh)
        _ = try Pretrainer(config: config, recipe: recipe(epochs: 1, lr: 1e-3), run: run, resume: false).train(maxSteps: steps, progress: quiet())
        return (run, try SafeTensorsFile(contentsOf: run.file(RunDirectory.checkpointName)))
    }

    func tableName(_ block: Int) -> String { "blocks.\(block).attn.rpe_k.lookup_table_weight" }

    /// The `lomar` stream's fine-tune (scripts/fmnist-experiments.sh `pretrained_stream`: `finetune
    /// --init-from RUN`, then `eval` of it), in process: the classifier starts from the run's encoder
    /// bit for bit (iRPE tables included, no absolute positions), trains, and its export is an
    /// RPE-only classifier that evaluates and gives the in-process logits.
    func testFinetuneFromALoMaRRunStartsFromItsTablesAndExports() throws {
        let (pretrained, checkpoint) = try pretrain("pt", steps: 2)
        // What `finetune --init-from RUN` builds the classifier from.
        let (encoder, _) = try Classifier.pretrainedEncoder(pretrained.url.path)
        XCTAssertEqual(encoder.relativePosition, .irpeProductK)
        XCTAssertEqual(encoder.posEmbed, .absent)
        let recipe = FinetuneRecipe(data: Self.fashionMNIST, initFrom: pretrained.url.path, seed: 0, epochs: 1, batchSize: 32, lr: 1e-3,
                                    warmupEpochs: 0, layerDecay: 0.75, cropScale: 0.8...1, checkpointEvery: 1000, subset: 64, testSubset: 40)
        let run = try RunDirectory(scratch.appendingPathComponent("ft").path, mode: .fresh)
        let finetuner = try Finetuner(config: encoder, recipe: recipe, run: run, resume: false)

        // Before the first update: every encoder tensor is the run's, bit for bit; no pos_embed; a fresh head.
        let start = finetuner.classifier.parameters
        XCTAssertNil(start["pos_embed"])
        XCTAssertFalse(checkpoint.names.contains("pos_embed"))
        XCTAssertEqual(start["head.weight"]?.shape, [10, encoder.embedDim])
        var copied = 0
        for (name, p) in start.entries where !name.hasPrefix("fc_norm") && !name.hasPrefix("head") {
            XCTAssertEqual(p.value.data, try checkpoint.tensor(name).data, name)
            copied += 1
        }
        XCTAssertEqual(copied, start.count - 4, "everything but fc_norm and head comes from the run")
        let tables = try (0..<encoder.depth).map { b -> [Float] in
            let table = try XCTUnwrap(start[tableName(b)], tableName(b)).value
            XCTAssertEqual(table.shape, [1, encoder.embedDim / encoder.numHeads, RelativePositionBuckets.count])
            XCTAssertNotEqual(table.data.map(abs).max(), 0, "the run's tables trained (a zero table would compare equal to a fresh one)")
            return table.data
        }

        let summary = try finetuner.train(maxSteps: 2, progress: quiet())
        XCTAssertEqual(summary.steps, 2)
        XCTAssertEqual(summary.history.count, 1, "64 images at batch 32: one epoch, evaluated")
        XCTAssertTrue(summary.top1.map { $0.isFinite && (0...1).contains($0) } ?? false, "\(String(describing: summary.top1))")
        for b in 0..<encoder.depth { XCTAssertNotEqual(finetuner.classifier.parameters[tableName(b)]!.value.data, tables[b], "the tables fine-tune") }
        try run.writeJSON(summary, to: "result.json")

        let out = scratch.appendingPathComponent("export")
        let exported = try Exporter.export(run: run.url.path, to: out.path, half: false, overwrite: false)
        XCTAssertEqual(exported.kind, .classifier)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as? [String: Any])
        XCTAssertEqual(json["relative_position"] as? String, "irpe_product_k")
        XCTAssertEqual(json["pos_embed"] as? String, "none")
        XCTAssertEqual(json["global_pool"] as? String, "mean")
        XCTAssertEqual((json["labels"] as? [String])?.count, 10)
        let weights = try SafeTensorsFile(contentsOf: out.appendingPathComponent("model.safetensors"))
        XCTAssertFalse(weights.names.contains("pos_embed"))
        XCTAssertFalse(weights.names.contains { $0.hasPrefix("optim.") || $0.hasPrefix("decoder") || $0 == "mask_token" })
        for name in ["head.weight", "head.bias", "fc_norm.weight", "fc_norm.bias"] + (0..<encoder.depth).map(tableName) {
            XCTAssertTrue(weights.names.contains(name), name)
        }

        // The export, loaded as `eval --model` and the server load it, scores and gives the fine-tune's logits.
        let model = try ModelSource.encoder(out.path)
        XCTAssertEqual(model.config.relativePosition, .irpeProductK)
        let served = Classifier(wrapping: model, classes: model.config.labels ?? [])
        let test = SubsetDataset(try Datasets.open(Self.fashionMNIST, split: .test), count: 40)
        let top1 = try Evaluation.top1(served, dataset: test, batchSize: 500, progress: nil)  // the Finetuner's batch
        XCTAssertEqual(top1.images, 40)
        XCTAssertTrue(top1.top1.isFinite && (0...1).contains(top1.top1))
        XCTAssertEqual(top1.top1, summary.top1!, "the export scores what the run scored on the same images")
        var rng = SeededRandom(seed: 2)
        let images = Tensor(shape: [3, 1, 28, 28], data: (0..<(3 * 784)).map { _ in rng.normal() })
        XCTAssertEqual(served.logits(images), finetuner.classifier.logits(images))
    }

    /// The card's claim (scripts/cards/lomar-vit-tiny-fmnist.md): a 4×4 window (16 patches + cls) has
    /// offsets −3…3 per axis, which iRPE buckets to −2…2 (ρ(0, 1, 2, 3) = 0, 1, 2, 2), so windows reach
    /// 5 × 5 = 25 of the 49 position buckets plus the cls bucket; the 7×7 grid of a whole image (offsets
    /// −6…6, ρ = ±3 from |Δ| = 4 on) reaches all 50. Pretraining on windows alone leaves the other 24
    /// columns of every table at their zero init (no gradient; AdamW's decay keeps zero at zero), so a
    /// whole-image embedding gives every pair 4 or more rows or columns apart a bias of exactly 0.
    func testWindowsLeaveTheFarBucketsAtZero() throws {
        let window = Set(RelativePositionBuckets.table(tokens: 4 * 4 + 1))
        let image = Set(RelativePositionBuckets.table(tokens: 7 * 7 + 1))
        XCTAssertEqual(window.count, 26)
        XCTAssertEqual(image.count, RelativePositionBuckets.count)
        XCTAssertTrue(window.isSubset(of: image))
        // Bucket = (ρrow + 3)·7 + ρcol + 3: the untrained ones have |ρ| = 3 on some axis.
        let far = (0..<49).filter { [$0 / 7, $0 % 7].contains(where: { $0 == 0 || $0 == 6 }) }
        XCTAssertEqual(Set(far.map(Int32.init)), image.subtracting(window))

        let (_, checkpoint) = try pretrain("pt", steps: 3)
        for b in 0..<config.encoder.depth {
            let table = try checkpoint.tensor(tableName(b))
            let (hd, buckets) = (table.shape[1], table.shape[2])
            func column(_ k: Int) -> [Float] { (0..<hd).map { table.data[$0 * buckets + k] } }
            for k in 0..<buckets {
                if window.contains(Int32(k)) {
                    XCTAssertTrue(column(k).contains { $0 != 0 }, "block \(b) bucket \(k) is reached by windows and trains")
                } else {
                    XCTAssertEqual(column(k), [Float](repeating: 0, count: hd), "block \(b) bucket \(k) is never reached by a window")
                }
            }
        }
    }

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
