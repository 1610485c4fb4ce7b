import ArgumentParser
import Foundation
import Checkpoint
import Tensor
import Training
import Objectives
import ViT

/// `bootmae-train eval`: top-1 of a classifier, or masked-patch reconstruction error of a pretraining network.
struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a run folder or model directory on the test split (top-1, or reconstruction MSE/PSNR).",
        discussion: "Prints the result and writes it as eval.json in the run folder (or --out).")

    @Option(help: "Run folder (pretrain or finetune) or model directory.")
    var model: String

    @Option(help: "Dataset with a test split (IDX folder, ImageFolder with test/ or val/, or class folders to hold a share out of). Default: the one the model was trained on (a run's recipe.json, an export's config.json training_data); required when it names none.")
    var data: String?

    @OptionGroup var split: TestShareOption

    @Option(help: "Write the JSON result here (default: MODEL/eval.json, or MODEL/eval-PRECISION.json with --precision).")
    var out: String?

    @Option(help: "Images per forward pass.")
    var batchSize: Int = 500

    @Option(help: "Seed of the reconstruction masks.")
    var seed: UInt64 = 0

    @Option(help: "Reconstruction masks over the whole image: block or random, the same for every objective at one --seed and --mask-ratio, except that naming the objective's own masking draws its training masks, as the server does (PeCo's block: BEiT's block masks with a run's recipe.json options) (default: the objective's own task: block masks for BootMAE, random for MAE, windows for LoMaR, BEiT's block masks for PeCo).")
    var masking: MaskingSpec?

    @Option(help: "Masked share of the whole-image masks, in (0, 1) (default: the objective's own; 0.75 compares objectives on MAE's and BootMAE's masks).")
    var maskRatio: Double?

    @Option(help: "Compute threads.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Classifiers: run the encoder's Linear layers as the server does, fp32 (packed) or bf16 (where the CPU has bf16 instructions); the result goes to MODEL/eval-PRECISION.json unless --out says. Default: fp32 through BLAS.")
    var precision: InferencePrecision?

    func validate() throws {
        try ensure(batchSize >= 1, "--batch-size must be positive")
        try ensure(threads >= 1, "--threads must be positive")
        if let maskRatio { try ensure(maskRatio > 0 && maskRatio < 1, "--mask-ratio must be within (0, 1), got \(maskRatio)") }
    }

    /// --masking and --mask-ratio ask for whole-image masks; neither asks for the objective's own task.
    func reconstructionMasks(_ network: PretrainingNetwork, options: (any ObjectiveOptions)?) throws -> Evaluation.ReconstructionMasks {
        if masking == nil && maskRatio == nil { return .own }
        if masking == nil, let own = network.ownMaskReconstructor?.ownMasks(options: options) {
            // Its own masks are not whole-image masks, so a share of the image does not describe them.
            throw fail("error: --mask-ratio sets the share of a whole-image mask, and \(network.objectiveType.displayName)'s own "
                       + "masks are \(own.name) (\(own.detail)): add --masking random or block", code: 64)
        }
        return .image(masking, ratio: maskRatio)
    }

    /// A stage-2 network's reconstructions, as the server makes them: its predicted codes decoded by
    /// the tokenizer its config names (a run's path, or an export's name beside the model), which
    /// must be the one it trained on. nil for a network with a pixel decoder or no code predictions.
    func tokenizerReconstructor(_ network: PretrainingNetwork, directory: URL) throws
        -> (reconstructor: TokenDecodedReconstructor, name: String)? {
        guard network.reconstructor == nil, let predictor = network.codePredictor else { return nil }
        guard let tokenizerDir = predictor.tokenizerDirectory(besides: directory) else {
            throw fail("error: \(model) predicts a tokenizer's codes but its config.json names no tokenizer", code: 65)
        }
        let tokenizerNetwork: PretrainingNetwork
        do { tokenizerNetwork = try ModelSource.network(tokenizerDir.path) } catch {
            throw fail("error: \(model) reconstructs through the codes of the tokenizer at \(tokenizerDir.path) (config.json tokenizer: "
                       + "\(predictor.tokenizerReference ?? "")), which cannot be loaded: \(error)", code: 66)
        }
        guard let tokenizer = tokenizerNetwork.tokenizer else {
            throw fail("error: \(tokenizerDir.path) is a \(tokenizerNetwork.config.objective) model, not a tokenizer", code: 65)
        }
        // The export's weights file is what the config's hash names (a run folder has none: only older configs name one).
        let file = tokenizerDir.appendingPathComponent(ModelDirectory.weightsName)
        let exported = FileManager.default.fileExists(atPath: file.path)
        if predictor.tokenizerSHA256 != nil && !exported {
            throw fail("error: \(tokenizerDir.path) has no \(ModelDirectory.weightsName): \(model) names the tokenizer export it trained on", code: 66)
        }
        let digest = exported ? SHA256.hex(try SHA256.digest(ofFile: file.path)) : ""
        let differences = predictor.pairingDifferences(encoder: network.config.encoder, tokenizer: tokenizer,
                                                       tokenizerEncoder: tokenizerNetwork.config.encoder, weightsSHA256: digest)
        guard differences.isEmpty else {
            throw fail("error: the tokenizer at \(tokenizerDir.path) is not the one \(model) was trained against: "
                       + differences.joined(separator: "; ") + ". Give the export it trained on at that path", code: 65)
        }
        return (TokenDecodedReconstructor(predictor: predictor, tokenizer: tokenizer), tokenizerDir.lastPathComponent)
    }

    func run() throws {
        TensorRuntime.configure(threads: threads)
        let progress = ProgressReporter()
        let source = try reportingUsageErrors { try measurementData(data, model: model, progress: progress) }  // a usage error before the do: exit 64
        do {
            let dir = URL(fileURLWithPath: model)
            let test = try Datasets.open(source, split: .test, testShare: split.share(recordedBy: model, data: source))
            if let note = split.note(test, data: source) { progress.log(note) }
            let measured = MeasuredData(path: source, split: "test split", heldOut: test.heldOut)
            let json: Data
            // A config naming an objective is a pretraining network: an invalid one is an error here,
            // not a reason to evaluate it as something else.
            if (try? PretrainingDirectory.isPretraining(dir)) == true {
                let pretraining = try PretrainingDirectory.readConfig(dir)
                let weights = try ModelSource.weights(model)
                let network = try PretrainingDirectory.network(config: pretraining, weights: weights, ignoring: ["optim."])
                let decoded = try tokenizerReconstructor(network, directory: dir)
                // A run's training masks are drawn with its own options (PeCo's block sizes); an export's with the defaults.
                let options = try ModelSource.trainingOptions(model, objective: pretraining.objective)
                var result = try Evaluation.reconstruction(network, dataset: test, batchSize: batchSize, seed: seed,
                                                           masks: try reconstructionMasks(network, options: options), reconstructor: decoded?.reconstructor,
                                                           options: options, progress: progress)
                result.tokenizer = decoded?.name
                result.data = measured
                json = try encode(result)
                progress.log("reconstruction on \(result.images) test images of \(measured.summary) (\(result.maskingDetail ?? "\(result.masking) masks")"
                             + (result.tokenizer.map { ", decoded by the tokenizer \($0)" } ?? "") + "): "
                             + String(format: "masked-patch MSE %.5f, PSNR %.2f dB", result.mse, result.psnr))
            } else {
                if masking != nil || maskRatio != nil {
                    throw fail("error: --masking and --mask-ratio choose reconstruction masks; \(model) is not a pretraining network "
                               + "(a classifier is scored by top-1): leave them out", code: 64)
                }
                let encoder = try ModelSource.encoder(model)
                if let precision { InferencePacking.apply(precision, to: encoder) }
                guard encoder.head != nil, let labels = encoder.config.labels ?? Optional(test.classes) else {
                    throw ValidationError("\(model) has no classification head: evaluate a fine-tuned model, or a pretraining run for reconstruction")
                }
                let classifier = Classifier(wrapping: encoder, classes: labels)
                var result = try Evaluation.top1(classifier, dataset: test, batchSize: batchSize, progress: progress)
                result.data = measured
                json = try encode(result)
                progress.log(String(format: "top-1 on %d test images of %@: %.2f%% (%@ GEMMs)", result.images, measured.summary, 100 * result.top1,
                                    encoder.inferenceKernel.rawValue))
            }
            let dest = out.map { URL(fileURLWithPath: $0) } ?? dir.appendingPathComponent(precision.map { "eval-\($0.rawValue).json" } ?? "eval.json")
            try AtomicFile.write(json, to: dest)
            print(String(decoding: json, as: UTF8.self))
        } catch let exit as ExitCode {
            throw exit
        } catch {
            throw fail("error: \(error)", code: 1)
        }
    }

    func encode<T: Encodable>(_ value: T) throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(value)
    }
}

/// `bootmae-train export`: a run folder → a served model directory.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export a run folder as a model directory the server loads (config.json, model.safetensors, MODEL_CARD.md).")

    @Option(name: .customLong("run"), help: "Run folder (pretrain or finetune).")
    var runFolder: String

    @Option(help: "Model directory to write, e.g. models/bootmae-vit-tiny-fmnist.")
    var out: String

    @Flag(help: "Store weights as float16 (half the size; computed in float32).")
    var half = false

    @Flag(help: "Replace --out if it exists.")
    var overwrite = false

    @Option(help: "What the model is for, in words (e.g. \"Fashion-MNIST garments, light on black\"): written as intended_input in config.json (with the model's channels and size), shown by /v1/models and in the card.")
    var domain: String?

    @Option(help: "A Markdown file for the card's Limitations section (with --domain).")
    var limitations: String?

    func run() throws {
        if limitations != nil && domain == nil { throw fail("error: --limitations needs --domain (the intended input it qualifies)", code: 64) }
        let notes = try limitations.map { path in
            do { return try String(contentsOfFile: path, encoding: .utf8) } catch {
                throw fail("error: cannot read --limitations \(path): \(error.localizedDescription)", code: 66)
            }
        }
        do {
            let summary = try Exporter.export(run: runFolder, to: out, half: half, overwrite: overwrite,
                                              intended: domain.map { Exporter.Intended(domain: $0, limitations: notes) })
            if !summary.runFinished {
                FileHandle.standardError.write(Data("warning: \(runFolder) has not finished (no result.json with stoppedEarly false); exported its latest checkpoint\n".utf8))
            }
            if let warning = Exporter.halfTokenizerWarning(run: runFolder, half: half) {
                FileHandle.standardError.write(Data((warning + "\n").utf8))
            }
            if summary.kind == .classifier, let warning = Exporter.nearChanceWarning(run: runFolder) {
                FileHandle.standardError.write(Data((warning + "\n").utf8))
            }
            print("{\"kind\": \"\(summary.kind.rawValue)\", \"path\": \"\(summary.path)\", \"tensors\": \(summary.tensors), \"bytes\": \(summary.bytes), \"dtype\": \"\(summary.dtype)\"}")
        } catch {
            throw fail("error: \(error)", code: 1)
        }
    }
}
