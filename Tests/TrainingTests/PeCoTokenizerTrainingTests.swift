import XCTest
import Foundation
import Tensor
import ViT
import Checkpoint
import Training
import Objectives
import TestSupport

/// PeCo's tokenizer through the trainer on a small Fashion-MNIST subset: the perceptual network
/// is loaded from a model directory and stays bit for bit what that directory holds, codebook
/// health is logged, a stopped and resumed run ends with the same bytes, and the export is a
/// tokenizer without the perceptual network that gives the trained run's codes, on which stage 2
/// (`peco`) trains and exports.
final class PeCoTokenizerTrainingTests: TrainingTestCase {
    /// A small random encoder saved as a model directory: the stand-in for a self-supervised one.
    func perceptualModel() throws -> URL {
        let config = ViTConfig(imgSize: 28, patchSize: 7, inChans: 1, embedDim: 16, depth: 2, numHeads: 2, mlpRatio: 2, qkvBias: .qkv,
                               layerNormEps: 1e-6, globalPool: .cls, mean: [0.5], std: [0.5], posEmbed: .sincosBootMAE)
        let net = VisionTransformer(config: config, parts: .init(norm: true))
        var rng = SeededRandom(seed: 21)
        for (name, p) in net.parameters.entries where p.trainable {
            let gain: Float = p.value.rank == 1 && name.hasSuffix(".weight") ? 1 : 0
            p.fill { gain + rng.normal() * 0.2 }
        }
        let dir = scratch.appendingPathComponent("perceptual")
        try ModelDirectory.save(config: config, parameters: net.parameters, to: dir)
        return dir
    }

    func config(perceptual: URL) throws -> PretrainingConfig {
        let flags = try ObjectiveFlagValues(parsing: ["--perceptual-model", perceptual.path, "--tokenizer-depth", "1", "--codebook-size", "64",
                                                      "--code-dim", "8"], declared: PeCoTokenizer.flags, objective: PeCoTokenizer.name)
        let (encoder, settings) = try PeCoTokenizer.configure(shape, maskRatio: 0, flags: flags)
        return PretrainingConfig(PeCoTokenizer.self, encoder: encoder, settings: settings)
    }

    func recipe(epochs: Int) -> PretrainRecipe {
        PretrainRecipe(PeCoTokenizer.self, options: PeCoTokenizer.Options(), data: Self.fashionMNIST, seed: 5, epochs: epochs, batchSize: 32,
                       lr: 1e-3, minLR: 0, warmupEpochs: 0, weightDecay: 0.05, beta1: 0.9, beta2: 0.95, checkpointEvery: 1000, subset: 64)
    }

    func quiet() -> ProgressReporter { ProgressReporter(interactive: false, logEvery: 1e9) }

    func testTrainsResumesAndExports() throws {
        let model = try perceptualModel()
        let config = try config(perceptual: model)
        XCTAssertEqual(config.settings(of: PeCoTokenizer.self)?.perceptualLayers ?? PerceptualLoss.defaultLayers(depth: 2), [0, 1])

        let straight = try RunDirectory(scratch.appendingPathComponent("a").path, mode: .fresh)
        _ = try Pretrainer(config: config, recipe: recipe(epochs: 3), run: straight, resume: false).train(progress: quiet())
        let split = scratch.appendingPathComponent("b")
        do {
            let run = try RunDirectory(split.path, mode: .fresh)
            _ = try Pretrainer(config: config, recipe: recipe(epochs: 3), run: run, resume: false).train(maxSteps: 2, progress: quiet())
        }
        _ = try Pretrainer(config: config, recipe: recipe(epochs: 3), run: try RunDirectory(split.path, mode: .resume), resume: true)
            .train(progress: quiet())
        let a = try SafeTensorsFile(contentsOf: straight.file(RunDirectory.checkpointName))
        let b = try SafeTensorsFile(contentsOf: split.appendingPathComponent(RunDirectory.checkpointName))
        XCTAssertEqual(a.names, b.names)
        for name in a.names { XCTAssertEqual(try a.tensor(name), try b.tensor(name), name) }

        // The perceptual network after 6 steps is exactly the model directory's, and no optimizer
        // state exists for it; the codebook moved (EMA and restarts) without optimizer state either.
        let saved = try SafeTensorsFile(contentsOf: model.appendingPathComponent(ModelDirectory.weightsName))
        let perceptualNames = a.names.filter { $0.hasPrefix("perceptual.") }
        XCTAssertFalse(perceptualNames.isEmpty)
        for name in perceptualNames where name != "perceptual.pos_embed" {
            XCTAssertEqual(try a.tensor(name), try saved.tensor(String(name.dropFirst("perceptual.".count))), name)
        }
        XCTAssertFalse(a.names.contains { $0.hasPrefix("optim.") && ($0.contains("perceptual") || $0.contains("quantizer")) })
        XCTAssertTrue(a.names.contains("optim.m.decoder_pred.weight"))
        let codebook = try a.tensor("quantizer.codebook")
        XCTAssertNotEqual(codebook.data.map(abs).max(), 0, "the codebook left its zero start")

        // Codebook health every logged step (the first step reports the untouched codebook's zeros).
        let metrics = straight.readMetrics()
        let perplexities = metrics.compactMap { ($0["perplexity"] as? NSNumber)?.doubleValue }
        XCTAssertEqual(perplexities.count, metrics.count)
        XCTAssertGreaterThan(perplexities.last!, 1)
        XCTAssertTrue(metrics.allSatisfy { ($0["dead_share"] as? NSNumber).map { (0...1).contains($0.doubleValue) } ?? false })

        // The tokenizer's own numbers as `tokenizer-eval` writes them (on 32 test images; the probe's
        // top-1 set by hand, since fitting one here would only slow the test).
        let trainedTokenizer = try PretrainingDirectory.network(config: try PretrainingDirectory.readConfig(straight.url), weights: a,
                                                                ignoring: ["optim."])
        let measured = try TokenizerEvaluator(tokenizer: try XCTUnwrap(trainedTokenizer.tokenizer), config: config.encoder)
            .measure(SubsetDataset(try Datasets.open(Self.fashionMNIST, split: .test), count: 32), decode: true, label: "codes")
        let evaluation = TokenizerEvaluationResult(codebookSize: 64, test: measured, probe: nil)
        var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: try JSONEncoder().encode(evaluation)) as? [String: Any])
        json["bagOfCodesProbe"] = ["top1": 0.4321]
        try JSONSerialization.data(withJSONObject: json).write(to: straight.file("tokenizer.json"))

        // The export: the tokenizer alone, loadable, with the run's codes; its card says what it
        // serves and shows its numbers.
        let out = scratch.appendingPathComponent("export")
        _ = try Exporter.export(run: straight.url.path, to: out.path, half: false, overwrite: false)
        let tokenizerCard = try String(contentsOf: out.appendingPathComponent("MODEL_CARD.md"), encoding: .utf8)
        for phrase in ["An image tokenizer (PeCo tokenizer): a ViT encoder and a codebook of 64 codes give an image a 7×7 grid",
                       "`POST /v1/tokens`", "`POST /v1/tokens?decode=true`",
                       String(format: "| PSNR through the codes | %.2f dB |", evaluation.psnr),
                       String(format: "| code perplexity | %.1f of 64 codes |", evaluation.perplexity),
                       String(format: "| unused codes | %.1f%% |", 100 * evaluation.unusedShare),
                       "| bag-of-codes linear probe top-1 | 43.21% |", "`tokenizer.json`:"] {
            XCTAssertTrue(tokenizerCard.contains(phrase), "\(phrase) in\n\(tokenizerCard)")
        }
        XCTAssertFalse(tokenizerCard.contains("without a pixel decoder"), tokenizerCard)
        // Its config names the perceptual network by its directory's name, not this machine's path.
        let exportedConfig = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as? [String: Any])
        XCTAssertEqual(exportedConfig["perceptual_model"] as? String, "perceptual")
        XCTAssertFalse(tokenizerCard.contains(scratch.path), "the card shows no path of the training machine")
        let exported = try SafeTensorsFile(contentsOf: out.appendingPathComponent(ModelDirectory.weightsName))
        XCTAssertFalse(exported.names.contains { $0.hasPrefix("perceptual.") })
        XCTAssertTrue(exported.names.contains("quantizer.codebook"))
        let tokenizer = try PeCoTokenizer.loadFrozen(out)
        let trained = try PretrainingDirectory.network(config: try PretrainingDirectory.readConfig(straight.url), weights: a, ignoring: ["optim."])
        var rng = SeededRandom(seed: 1)
        let images = Tensor(shape: [2, 1, 28, 28], data: (0..<(2 * 784)).map { _ in rng.normal() })
        let codes = tokenizer.codes(images)
        XCTAssertEqual(codes, (trained.objective as! PeCoTokenizer).codes(images))
        XCTAssertNil(tokenizer.perceptual)

        // An fp32 export is the same bytes each time (what the hash a stage 2 records relies on);
        // `--half` of a tokenizer is warned about.
        let again = scratch.appendingPathComponent("export-again")
        _ = try Exporter.export(run: straight.url.path, to: again.path, half: false, overwrite: false)
        XCTAssertEqual(try Data(contentsOf: again.appendingPathComponent(ModelDirectory.weightsName)),
                       try Data(contentsOf: out.appendingPathComponent(ModelDirectory.weightsName)))
        XCTAssertNil(Exporter.halfTokenizerWarning(run: straight.url.path, half: false))
        XCTAssertTrue(try XCTUnwrap(Exporter.halfTokenizerWarning(run: straight.url.path, half: true)).contains("different codes"))

        try checkStageTwo(tokenizer: out, tokenizerRun: straight.url)
    }

    /// Stage 2 on the exported tokenizer through the trainer: K and the grid come from the
    /// tokenizer, the first loss is near ln K, mlm_acc is logged, and the export is a plain encoder.
    /// The config records the hash of the tokenizer's weights file; the export names the
    /// tokenizer by its directory name and refuses when that tokenizer was re-exported since.
    func checkStageTwo(tokenizer: URL, tokenizerRun: URL) throws {
        let (bare, bareSettings) = try PeCo.configure(shape, maskRatio: 0.4, flags: ObjectiveFlagValues())
        XCTAssertEqual(PretrainingConfig(PeCo.self, encoder: bare, settings: bareSettings).validationErrors(),
                       ["peco needs --tokenizer DIR: a tokenizer trained with --objective peco-tokenizer (then exported)"])
        // A run folder is not an export: its checkpoint is never what the server loads.
        let runFlags = try ObjectiveFlagValues(parsing: ["--tokenizer", tokenizerRun.path], declared: PeCo.flags, objective: PeCo.name)
        XCTAssertThrowsError(try PeCo.configure(shape, maskRatio: PeCo.defaultMaskRatio, flags: runFlags)) {
            XCTAssertTrue("\($0)".contains("is not a tokenizer export"), "\($0)")
        }
        let flags = try ObjectiveFlagValues(parsing: ["--tokenizer", tokenizer.path], declared: PeCo.flags, objective: PeCo.name)
        let (encoder, settings) = try PeCo.configure(shape, maskRatio: PeCo.defaultMaskRatio, flags: flags)
        let weights = tokenizer.appendingPathComponent(ModelDirectory.weightsName).path
        let digest = SHA256.hex(try SHA256.digest(ofFile: weights))
        XCTAssertEqual(settings, PeCo.Settings(vocabSize: 64, numMaskPatches: 20, tokenizer: tokenizer.standardizedFileURL.path,
                                               tokenizerSHA256: digest))
        XCTAssertEqual(encoder.layerScaleInit, 0.1)
        let options = try PeCo.options(flags: flags, epochs: 1)
        XCTAssertEqual(options, PeCo.Options())
        XCTAssertEqual(options.minBlock(patches: 49), 4)
        let recipe = PretrainRecipe(PeCo.self, options: options, data: Self.fashionMNIST, seed: 5, epochs: 1, batchSize: 32, lr: 1e-3,
                                    minLR: 0, warmupEpochs: 0, weightDecay: 0.05, beta1: 0.9, beta2: 0.98, checkpointEvery: 1000, subset: 64)
        let run = try RunDirectory(scratch.appendingPathComponent("peco").path, mode: .fresh)
        let summary = try Pretrainer(config: PretrainingConfig(PeCo.self, encoder: encoder, settings: settings), recipe: recipe, run: run,
                                     resume: false).train(progress: quiet())
        XCTAssertEqual(summary.steps, 2)
        let first = try XCTUnwrap(run.readMetrics().first)
        XCTAssertEqual(try XCTUnwrap((first["loss"] as? NSNumber)?.doubleValue), log(64), accuracy: 0.1)
        XCTAssertNotNil(first["mlm_acc"])
        let out = scratch.appendingPathComponent("peco-export")
        _ = try Exporter.export(run: run.url.path, to: out.path, half: false, overwrite: false)
        let network = try PretrainingDirectory.load(out)
        XCTAssertEqual(network.config.objective, PeCo.name)
        // Shipped: the tokenizer by its directory name, with the hash; no training machine's path
        // in config.json or the card.
        XCTAssertEqual(network.config.settings(of: PeCo.self),
                       PeCo.Settings(vocabSize: 64, numMaskPatches: 20, tokenizer: "export", tokenizerSHA256: digest))
        let card = try String(contentsOf: out.appendingPathComponent("MODEL_CARD.md"), encoding: .utf8)
        let shippedConfig = try String(contentsOf: out.appendingPathComponent(ModelDirectory.configName), encoding: .utf8)
        for text in [card, shippedConfig] {
            XCTAssertFalse(text.contains(tokenizer.path), text)
            XCTAssertTrue(text.contains(digest), text)
        }
        XCTAssertTrue(card.contains("(PeCo), without a pixel decoder of its own: it predicts the codes of the tokenizer `export` "
                                    + "(weights SHA-256 \(digest.prefix(12))…)"), card)
        XCTAssertTrue(card.contains("served beside it as the model directory `export`"), card)

        // `eval`'s number on the card, with the tokenizer that decoded it.
        var measured = try checkReconstructionThroughTheTokenizer(network: network, tokenizer: tokenizer)
        measured.tokenizer = "export"
        try JSONEncoder().encode(measured).write(to: run.file("eval.json"))
        let measuredOut = scratch.appendingPathComponent("peco-export-measured")
        _ = try Exporter.export(run: run.url.path, to: measuredOut.path, half: false, overwrite: false)
        let measuredCard = try String(contentsOf: measuredOut.appendingPathComponent("MODEL_CARD.md"), encoding: .utf8)
        XCTAssertTrue(measuredCard.contains(String(format: "| masked-patch PSNR, block masks, decoded by the tokenizer `export` | %.2f dB |",
                                                   measured.psnr)), measuredCard)

        // A config from before the hash was recorded exports with it.
        let legacy = try RunDirectory(scratch.appendingPathComponent("peco-legacy").path, mode: .fresh)
        for name in [RunDirectory.checkpointName, "recipe.json"] {
            try FileManager.default.copyItem(at: run.file(name), to: legacy.file(name))
        }
        var old = try PretrainingDirectory.readConfig(run.url)
        old.settings = PeCo.Settings(vocabSize: 64, numMaskPatches: 20, tokenizer: tokenizer.standardizedFileURL.path)
        try JSONEncoder().encode(old).write(to: legacy.file(ModelDirectory.configName))
        XCTAssertNil(try PretrainingDirectory.readConfig(legacy.url).settings(of: PeCo.self)?.tokenizerSHA256)
        let legacyOut = scratch.appendingPathComponent("peco-legacy-export")
        _ = try Exporter.export(run: legacy.url.path, to: legacyOut.path, half: false, overwrite: false)
        XCTAssertEqual(try PretrainingDirectory.readConfig(legacyOut).settings(of: PeCo.self)?.tokenizerSHA256, digest)

        // The tokenizer re-exported in fp16 where stage 2 trained on it: the export refuses, naming both hashes.
        _ = try Exporter.export(run: tokenizerRun.path, to: tokenizer.path, half: true, overwrite: true)
        let halfDigest = SHA256.hex(try SHA256.digest(ofFile: weights))
        XCTAssertNotEqual(halfDigest, digest)
        XCTAssertThrowsError(try Exporter.export(run: run.url.path, to: out.path, half: false, overwrite: true)) {
            let message = "\($0)"
            XCTAssertTrue(message.contains("not the one this stage-2 run trained against") && message.contains(String(digest.prefix(12)))
                          && message.contains(String(halfDigest.prefix(12))), message)
        }
        var rng = SeededRandom(seed: 2)
        let images = Tensor(shape: [2, 1, 28, 28], data: (0..<(2 * 784)).map { _ in rng.normal() })
        XCTAssertEqual(network.encoder.embed(images).shape, [2, 32])
    }

    /// `eval`'s measure of a stage-2 model, as the server reconstructs: masked-patch PSNR of its
    /// predicted codes decoded by the tokenizer, on PeCo's training masks. The reference is written
    /// out here: BEiT's generator per image from the batch's seed stream, the training step's
    /// logits (arg-max) at the masked patches, the tokenizer's own codes elsewhere, its decoding.
    /// At 80% BEiT's generator stops short in some images, so a batch goes in groups of equal count.
    /// Asking for `block` by name is asking for those same masks (its own masking), as the server does.
    @discardableResult
    func checkReconstructionThroughTheTokenizer(network: PretrainingNetwork, tokenizer: URL) throws -> Evaluation.ReconstructionResult {
        let frozen = try PeCoTokenizer.loadFrozen(tokenizer)
        let peco = try XCTUnwrap(network.objective as? PeCo)
        let test = SubsetDataset(try Datasets.open(Self.fashionMNIST, split: .test), count: 32)
        let (seed, batchSize) = (UInt64(3), 16)
        let c = network.config.encoder
        var own: Evaluation.ReconstructionResult?
        for (masking, ratio) in [(nil, nil), (.block, nil), (nil, 0.8), (.block, 0.8)] as [(MaskingSpec?, Double?)] {
            let target = ratio.map { MaskingSpec.maskedCount(ratio: $0, patches: c.numPatches) } ?? peco.settings.numMaskPatches
            let result = try Evaluation.reconstruction(network, dataset: test, batchSize: batchSize, seed: seed, masks: .image(masking, ratio: ratio),
                                                       reconstructor: TokenDecodedReconstructor(predictor: peco, tokenizer: frozen), progress: nil)
            let label = "masking \(masking?.rawValue ?? "none"), ratio \(String(describing: ratio))"
            XCTAssertEqual(result.images, 32)
            XCTAssertEqual(result.masking, "block")
            XCTAssertEqual(result.maskingDetail, "BEiT block masks with the default options: blocks of at least 4 patches, aspect 0.3 to 3.33", label)

            let loader = BatchLoader(dataset: test, batchSize: batchSize, shuffle: false, dropLast: false, seed: seed, epoch: 0,
                                     channels: c.inChans, imageSize: c.imgSize, mean: c.mean, std: c.std, augment: nil)
            let generator = BlockMaskGenerator.beit(height: c.gridSize, width: c.gridSize, minBlock: PeCo.Options.defaultMinBlock(patches: c.numPatches))
            var (se, values, masked, stream) = (0.0, 0, 0, UInt64(0))
            while let batch = try loader.next() {
                var rng = SeededRandom(seed: seed, stream: stream)
                stream += 1
                let masks = (0..<batch.count).map { _ in generator.mask(count: target, rng: &rng) }
                let own = frozen.codes(batch.images)
                let predicted = CrossEntropy.argmax(peco.step(batch.images, masks: masks, labels: own, backward: false).logits)
                var next = predicted.makeIterator()
                let grids = zip(own, masks).map { codes, mask in mask.indices.map { mask[$0] ? next.next()! : codes[$0] } }
                let decoded = frozen.decode(grids)
                let (p, s) = (c.patchSize, c.imgSize)
                for (b, mask) in masks.enumerated() {
                    for patch in mask.indices where mask[patch] {
                        masked += 1
                        for y in 0..<p { for x in 0..<p {
                            let i = b * s * s + ((patch / c.gridSize) * p + y) * s + (patch % c.gridSize) * p + x
                            let d = Double((decoded.data[i] - batch.images.data[i]) * c.std[0])
                            se += d * d
                            values += 1
                        } }
                    }
                }
            }
            XCTAssertEqual(result.psnr, 10 * log10(1 / (se / Double(values))), accuracy: 1e-3, label)
            XCTAssertEqual(result.maskRatio, Double(masked) / Double(32 * c.numPatches), accuracy: 1e-12, label)
            if ratio != nil { XCTAssertLessThan(masked, 32 * target, "some masks stop short: the batches went in several groups") }
            if ratio == nil && masking == nil { own = result }
        }
        return try XCTUnwrap(own)
    }

    let shape = BackboneShape(imgSize: 28, patchSize: 4, channels: 1, embedDim: 32, depth: 2, numHeads: 2,
                              decoderDim: 16, decoderDepth: 1, deepDecoderDepth: 1)
}
