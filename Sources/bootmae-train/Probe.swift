import ArgumentParser
import Foundation
import Checkpoint
import Tensor
import Training
import ViT

/// Frozen-encoder evaluations: `linprobe` (BatchNorm + linear classifier) and `knn`.
struct FeatureOptions: ParsableArguments {
    @Option(help: "Run folder or model directory whose encoder is evaluated (frozen).")
    var model: String

    @Option(help: "Labelled dataset with train and test splits (or class folders to hold a share out of). Default: the one the model was trained on (a run's recipe.json, an export's config.json training_data); required when it names none.")
    var data: String?

    @OptionGroup var split: TestShareOption

    @Option(help: "Features: cls, mean (final-norm pooling), block:N (mean of patch tokens after N blocks, then a parameter-free LayerNorm, as BootMAE probes) or pixels (the model's normalized input itself: the baseline). Default: knn the model's pooling, linprobe block:⌈5/6 of the depth⌉.")
    var features: String?

    @Option(help: "Write the JSON result here (default: MODEL/<command>.json).")
    var out: String?

    @Option(help: "Compute threads.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Use only N images of the train split (spread evenly over it, as `--subset` of the training commands): where every forward is costly (large inputs). The test split stays whole; the result's trainCount says N.")
    var trainSubset: Int?

    func validate() throws {
        try ensure(threads >= 1, "--threads must be positive")
        try ensure(trainSubset.map { $0 >= 1 } ?? true, "--train-subset must be positive")
    }

    /// The encoder of a run folder (its checkpoint) or of a model directory.
    func encoder() throws -> VisionTransformer { try ModelSource.encoder(model) }

    func source(default fallback: FeatureSource) throws -> FeatureSource {
        guard let features else { return fallback }
        guard let s = FeatureSource(features) else { throw ValidationError("--features is cls, mean, block:N or pixels") }
        return s
    }

    /// The dataset measured: --data, else the model's own (a usage error when it names none).
    func dataset(progress: ProgressReporter) throws -> String { try measurementData(data, model: model, progress: progress) }

    /// Train- and test-split features of the frozen encoder on `data`; `fallback` picks the default source from it.
    func features(of data: String, default fallback: (VisionTransformer) -> FeatureSource, progress: ProgressReporter) throws
        -> (train: FeatureSet, test: FeatureSet, source: FeatureSource, data: MeasuredData) {
        TensorRuntime.configure(threads: threads)
        // Both splits must exist and be labelled: fail now, not after the train features.
        let splits = try [DatasetSplit.train, .test].map { split in
            let dataset = try Datasets.open(data, split: split, testShare: self.split.share(recordedBy: model, data: data))
            guard !dataset.classes.isEmpty else {
                throw ValidationError("the \(split.rawValue) split of \(data) has no labels: give class subfolders (root/<class>/<image>)")
            }
            if split == .train { try requireClasses(dataset, of: data) }
            return split == .train ? trainSubset.map { SubsetDataset(dataset, count: $0) } ?? dataset : dataset
        }
        if let note = split.note(splits[1], data: data) { progress.log(note) }
        let encoder = try encoder()
        let source = try source(default: fallback(encoder))
        let extractor = try FeatureExtractor(model: encoder, source: source)
        return (try extractor.extract(splits[0], label: "features train", progress: progress),
                try extractor.extract(splits[1], label: "features test", progress: progress), source,
                MeasuredData(path: data, split: "train and test splits", heldOut: splits[1].heldOut))
    }

    func write<T: Encodable>(_ value: T, name: String) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try e.encode(value)
        try AtomicFile.write(data, to: out.map { URL(fileURLWithPath: $0) } ?? URL(fileURLWithPath: model).appendingPathComponent(name))
        print(String(decoding: data, as: UTF8.self))
    }
}

struct LinProbe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "linprobe",
        abstract: "Linear probe of a frozen encoder: BatchNorm (no affine) + linear classifier on train-split features; top-1 on the test split.",
        discussion: "Default features: block:⌈5/6 of the depth⌉ (BootMAE probes block 10 of 12). Writes linprobe.json.")

    @OptionGroup var options: FeatureOptions

    @Option(help: "Epochs over the precomputed features.") var epochs: Int = 50
    @Option(help: "Batch size.") var batchSize: Int = 256
    @Option(help: "Base learning rate (SGD momentum 0.9); lr = blr × batch / 256.") var blr: Double = 0.1
    @Option(help: "Seed of the probe's initialisation and shuffling.") var seed: UInt64 = 0

    func validate() throws {
        try ensure(epochs >= 1 && batchSize >= 1, "--epochs and --batch-size must be positive")
        try ensure(blr > 0, "--blr must be positive")
    }

    func run() throws {
        do {
            let progress = ProgressReporter()
            let (train, test, source, data) = try options.features(of: try options.dataset(progress: progress),
                                                                   default: { .block(max(1, Int((Double($0.blocks.count) * 5 / 6).rounded()))) },
                                                                   progress: progress)
            let probe = LinearProbe(.init(epochs: epochs, batchSize: batchSize, baseLR: blr, seed: seed))
            var (_, result) = try probe.fit(train: train, test: test, progress: progress)
            result.data = data
            progress.log(String(format: "linear probe (%@): test top-1 %.2f%%", source.description, 100 * (result.top1 ?? 0)))
            try options.write(result, name: "linprobe.json")
        } catch let e as ValidationError {
            try reportingUsageErrors { throw e }   // with this subcommand's usage line
        } catch {
            throw fail("error: \(error)", code: 1)
        }
    }
}

struct KNN: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "knn",
        abstract: "k-nearest-neighbour accuracy of a frozen encoder (cosine similarity, temperature-weighted votes).",
        discussion: "Default features: the model's pooling. Writes knn.json.")

    @OptionGroup var options: FeatureOptions

    @Option(help: "Neighbours.") var k: Int = 20
    @Option(help: "Vote temperature: a neighbour votes exp(similarity / T).") var temperature: Double = 0.07
    @Flag(help: "Subtract the train split's mean feature from both splits before the cosine similarity (for raw pixels: compare how images differ from the mean image).") var center = false

    func validate() throws {
        try ensure(k >= 1, "--k must be positive")
        try ensure(temperature > 0, "--temperature must be positive")
    }

    func run() throws {
        do {
            let progress = ProgressReporter()
            var (train, test, source, data) = try options.features(of: try options.dataset(progress: progress),
                                                                   default: { .pooled($0.config.globalPool) }, progress: progress)
            if center {
                let mean = train.mean
                (train, test) = (train.centred(on: mean), test.centred(on: mean))
            }
            var result = try KNNClassifier(k: k, temperature: Float(temperature)).evaluate(train: train, test: test, progress: progress)
            result.centred = center
            result.data = data
            progress.log(String(format: "k-NN (k=%d, %@%@): test top-1 %.2f%%", result.k, source.description, center ? ", centred" : "", 100 * result.top1))
            try options.write(result, name: "knn.json")
        } catch let e as ValidationError {
            try reportingUsageErrors { throw e }   // with this subcommand's usage line
        } catch {
            throw fail("error: \(error)", code: 1)
        }
    }
}
