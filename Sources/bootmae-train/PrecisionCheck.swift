import ArgumentParser
import Checkpoint
import Foundation
import Tensor
import Training
import ViT

/// `bootmae-train precision-check --model DIR`: how far bf16 serving moves a model's embeddings and
/// predictions from fp32, measured on a dataset (the test split), before choosing `NAME=bf16` in bootmae-serve.
struct PrecisionCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "precision-check",
        abstract: "Compare a model's bf16 inference with fp32 on a dataset: embedding cosine and top-1 agreement.",
        discussion: """
            Runs the model twice over the test split, once as fp32 (the training arithmetic) and once packed \
            for --precision as bootmae-serve runs it, and reports the cosine between the two embeddings of \
            each image (minimum, 0.1th percentile, mean; the worst image's index) and, for classifiers, how \
            often both pick the same class. --min-cosine turns it into a gate: exit 3 when the minimum is lower.
            """)

    @Option(help: "Model directory or run folder.")
    var model: String

    @Option(help: "Images to compare on: a dataset's test split (IDX folder, or ImageFolder with test/ or val/), or every image of a folder without one (e.g. your own photos). Default: the one the model was trained on (a run's recipe.json, an export's config.json training_data); required when it names none.")
    var data: String?

    @Option(help: "Compare at most this many images (the first ones of the split).")
    var limit: Int?

    @Option(help: "The precision to check against fp32.")
    var precision: InferencePrecision = .bf16

    @Option(help: "Exit with status 3 when the minimum cosine is below this (e.g. 0.9999).")
    var minCosine: Double?

    @Option(help: "Images per forward pass.")
    var batchSize: Int = 250

    @Option(help: "Compute threads.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Also write the JSON result to this file (atomically).")
    var out: String?

    func validate() throws {
        try ensure(batchSize >= 1, "--batch-size must be positive")
        try ensure(threads >= 1, "--threads must be positive")
        try ensure(limit.map { $0 >= 1 } ?? true, "--limit must be at least 1")
        try ensure(minCosine.map { $0 > -1 && $0 <= 1 } ?? true, "--min-cosine must be in (-1, 1]")
    }

    func run() throws {
        TensorRuntime.configure(threads: threads)
        let kernel = InferenceKernel.best(for: precision)
        guard kernel.precision == precision else {
            throw fail("error: this CPU has no \(precision.rawValue) instructions (it would serve \(kernel.rawValue)): "
                       + "nothing differs from fp32 to check here; run it on the machine that will serve the model", code: 2)
        }
        var result: PrecisionAgreement.Result
        let progress = ProgressReporter()
        let source = try reportingUsageErrors { try measurementData(data, model: model, progress: progress) }  // a usage error: exit 64
        do {
            let reference = try ModelSource.encoder(model)
            let candidate = try ModelSource.encoder(model)
            InferencePacking.apply(precision, to: candidate)
            let (test, split) = try comparisonImages(source)
            result = try PrecisionAgreement.measure(reference: reference, candidate: candidate, dataset: test,
                                                    batchSize: batchSize, limit: limit, progress: progress)
            result.data = MeasuredData(path: source, split: split)
        } catch {
            throw fail("error: \(error)", code: 1)
        }
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        let json = try e.encode(result)
        if let out {
            do { try AtomicFile.write(json, to: URL(fileURLWithPath: out)) } catch { throw fail("error: \(error)", code: 1) }
        }
        print(String(decoding: json, as: UTF8.self))
        var summary = String(format: "%@ vs %@ on %d images: embedding cosine min %.6f (image %d), 0.1th percentile %.6f, mean %.7f",
                             result.kernel, result.referenceKernel, result.images, result.cosineMin, result.worstImage,
                             result.cosineP001, result.cosineMean)
        if let agreement = result.top1Agreement { summary += String(format: "; same top-1 on %.2f%%", 100 * agreement) }
        if let a = result.referenceTop1, let b = result.candidateTop1 { summary += String(format: " (top-1 %.2f%% fp32, %.2f%% %@)", 100 * a, 100 * b, precision.rawValue) }
        FileHandle.standardError.write(Data((summary + "\n").utf8))
        if let minCosine, result.cosineMin < minCosine {
            throw fail(String(format: "error: minimum cosine %.6f is below --min-cosine %.6f", result.cosineMin, minCosine), code: 3)
        }
    }

    /// The test split when the dataset has one; otherwise every image of the folder (no training
    /// happens here, so a plain folder of the user's own photos is a fine comparison set).
    func comparisonImages(_ path: String) throws -> (images: any ImageDataset, split: String) {
        // A test/ or val/ folder, not a share held out of class folders: nothing here trains on the rest.
        do { return (try Datasets.open(path, split: .test, testShare: 0), "test split") } catch DatasetError.splitNotFound(_, .test, _) {
            let all = try Datasets.open(path, split: .train, testShare: 0)
            FileHandle.standardError.write(Data("note: \(path) has no test split: comparing on all of its \(all.count) images\n".utf8))
            return (all, "all images (no test split)")
        }
    }
}
