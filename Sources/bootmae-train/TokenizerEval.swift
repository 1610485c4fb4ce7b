import ArgumentParser
import Foundation
import Checkpoint
import Objectives
import Tensor
import Training

/// `tokenizer-eval`: a tokenizer's own numbers (PeCo's stage 1): reconstruction PSNR through its
/// codes, codebook perplexity and unused share on the test split, and a linear probe on
/// bag-of-codes histograms (how much the codes alone say about the class).
struct TokenizerEval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer-eval",
        abstract: "A tokenizer's reconstruction PSNR, code perplexity and bag-of-codes linear probe.",
        discussion: "MODEL is a peco-tokenizer run folder or its export. Writes tokenizer.json.")

    @Option(help: "Run folder or model directory of a tokenizer (pretrain --objective peco-tokenizer).")
    var model: String

    @Option(help: "Labelled dataset with train and test splits. Default: the one the model was trained on (a run's recipe.json, an export's config.json training_data); required when it names none.")
    var data: String?

    @Option(help: "Use the first N images of each split, spread over it (smoke tests).")
    var limit: Int?

    @Option(help: "Epochs of the bag-of-codes probe (0: no probe).") var probeEpochs: Int = 50

    @Option(help: "Write the JSON result here (default: MODEL/tokenizer.json).")
    var out: String?

    @Option(help: "Compute threads.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        try ensure(threads >= 1, "--threads must be positive")
        try ensure(probeEpochs >= 0, "--probe-epochs cannot be negative")
        try ensure((limit ?? 1) >= 1, "--limit must be positive")
    }

    func run() throws {
        do {
            TensorRuntime.configure(threads: threads)
            let progress = ProgressReporter()
            let network = try ModelSource.network(model)
            guard let tokenizer = network.tokenizer else {
                throw fail("error: \(model) is a \(network.config.objective) model, not a tokenizer (pretrain --objective peco-tokenizer)", code: 64)
            }
            let dataPath = try measurementData(data, model: model, progress: progress)
            func split(_ s: DatasetSplit) throws -> any ImageDataset {
                let dataset = try Datasets.open(dataPath, split: s)
                return limit.map { SubsetDataset(dataset, count: $0) } ?? dataset
            }
            let evaluator = TokenizerEvaluator(tokenizer: tokenizer, config: network.config.encoder)
            let testSplit = try split(.test)
            if let held = testSplit.heldOut { progress.log(held.note) }
            let test = try evaluator.measure(testSplit, decode: true, label: "codes test", progress: progress)
            var probe: LinearProbeResult?
            if probeEpochs > 0 {
                let train = try evaluator.measure(try split(.train), decode: false, label: "codes train", progress: progress)
                probe = try LinearProbe(.init(epochs: probeEpochs)).fit(train: train.histograms, test: test.histograms, progress: progress).result
            }
            var result = TokenizerEvaluationResult(codebookSize: tokenizer.codebookSize, test: test, probe: probe)
            result.data = MeasuredData(path: dataPath, split: probeEpochs > 0 ? "test split (codes), train and test splits (probe)" : "test split",
                                       heldOut: testSplit.heldOut)
            progress.log(String(format: "tokenizer: PSNR %.2f dB, perplexity %.1f of %d codes (%.1f%% unused), bag-of-codes probe %@",
                                result.psnr, result.perplexity, result.codebookSize, 100 * result.unusedShare,
                                probe?.top1.map { String(format: "%.2f%%", 100 * $0) } ?? "–"))
            let e = JSONEncoder()
            e.outputFormatting = [.prettyPrinted, .sortedKeys]
            let json = try e.encode(result)
            try AtomicFile.write(json, to: out.map { URL(fileURLWithPath: $0) } ?? URL(fileURLWithPath: model).appendingPathComponent("tokenizer.json"))
            print(String(decoding: json, as: UTF8.self))
        } catch let e as ValidationError {
            try reportingUsageErrors { throw e }   // with this subcommand's usage line
        } catch let e as ExitCode {
            throw e
        } catch {
            throw fail("error: \(error)", code: 1)
        }
    }
}
