import ArgumentParser
import Foundation
import Checkpoint
import Tensor
import Training
import Objectives

/// `bootmae-train calibrate`: the reconstruction errors of held-out images, which the server ranks
/// a request's image among for its out-of-distribution score.
struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write ood_calibration.json into a model directory: the masked-patch reconstruction errors of test images, and a feature bank.",
        discussion: """
            The server scores every image it serves with a model that has (or shares its encoder with) a pixel decoder:
            the percentile of the image's masked-patch error among these test images. A model directory without
            ood_calibration.json gets no score. Run this after `export`, on the test split of the training data.
            With --bank-images N (default 1000; 0: none) it also writes ood_feature_bank.safetensors, the L2-normalised
            embeddings (fp16) of the first N training images, and the distances from the test images' embeddings to
            their k-th nearest bank entry: the feature-space score, which then raises the out_of_distribution warning.
            """)

    @Option(help: "Model directory with a pixel decoder (an export of a pretraining run).")
    var model: String

    @Option(help: "Dataset with a test split (IDX folder, ImageFolder with test/ or val/, or class folders to hold a share out of). Default: the one the model was trained on (an export's config.json training_data); required when it names none.")
    var data: String?

    @OptionGroup var split: TestShareOption

    @Option(help: "Test images to measure (the first ones of the split).")
    var images: Int = 2000

    @Option(help: "Masks per image (seeds 0..<N), averaged.")
    var masks: Int = 4

    @Option(help: "Training images whose embeddings form the feature bank (0: no feature-space score).")
    var bankImages: Int = 1000

    @Option(help: "The feature-space score's neighbour: the distance to the k-th nearest bank embedding.")
    var k: Int = 5

    @Option(help: "Images per forward pass.")
    var batchSize: Int = 250

    @Option(help: "Compute threads.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        try ensure(images >= 10, "--images must be at least 10")
        try ensure(masks >= 1, "--masks must be positive")
        try ensure(batchSize >= 1, "--batch-size must be positive")
        try ensure(bankImages == 0 || bankImages > k, "--bank-images must be 0 (no feature bank) or more than --k")
        try ensure(k >= 1, "--k must be positive")
        try ensure(threads >= 1, "--threads must be positive")
    }

    func run() throws {
        TensorRuntime.configure(threads: threads)
        let progress = ProgressReporter()
        // A classifier or a plain encoder has no pixel decoder to score with: its served score comes
        // from the calibrated pretraining export with the same encoder (its "sibling").
        if (try? PretrainingDirectory.isPretraining(URL(fileURLWithPath: model))) == false {
            try reportingUsageErrors { throw ValidationError("\(model) is a classifier or encoder export without a pixel decoder, and the score is calibrated with "
                                  + "one: calibrate the pretraining export it came from (export of the pretrain run); the server scores "
                                  + "every model with the same input through that calibrated sibling") }
        }
        let source = try reportingUsageErrors { try measurementData(data, model: model, progress: progress) }  // a usage error before the do: exit 64
        do {
            let dir = URL(fileURLWithPath: model)
            let test = try Datasets.open(source, split: .test, testShare: split.share(recordedBy: model, data: source))
            let network = try PretrainingDirectory.load(dir)
            if let note = split.note(test, data: source) { progress.log(note) }
            let measured = MeasuredData(path: source, split: "test split", heldOut: test.heldOut)
            var calibration = try Evaluation.errorCalibration(network, dataset: test, describing: "\(measured.path), \(measured.split)",
                                                              maxImages: images, batchSize: batchSize, seeds: masks, progress: progress)
            let bankURL = dir.appendingPathComponent(FeatureBank.fileName)
            if bankImages > 0 {
                // The train split less any held-out share: the bank never holds a calibration image.
                let train = try Datasets.open(source, split: .train, testShare: split.share(recordedBy: model, data: source))
                let (bank, unhashed) = try Evaluation.featureCalibration(network.encoder, bank: train, describingBank: "\(measured.path), train split",
                                                                         heldOut: test, describing: "\(measured.path), \(measured.split)",
                                                                         bankImages: bankImages, heldOutImages: images, k: k,
                                                                         batchSize: batchSize, progress: progress)
                // The bank first: a calibration file never names a bank that is not there yet, and it records
                // the bank's hash, so a run stopped between the two files leaves a pair the server refuses.
                var features = unhashed
                features.bankSHA256 = try bank.write(to: dir)
                calibration.featureSpace = features
                let d = features.distances
                progress.log("feature bank: \(bank.count) × \(bank.dim) (fp16); \(d.count) held-out images' distances to their k-th nearest (k = \(k)), median "
                             + "\(String(format: "%.4f", d[d.count / 2])), 99th percentile \(String(format: "%.4f", d[min(d.count - 1, d.count * 99 / 100)]))")
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            try AtomicFile.write(try encoder.encode(calibration), to: dir.appendingPathComponent(ReconstructionErrorCalibration.fileName))
            if bankImages == 0, FileManager.default.fileExists(atPath: bankURL.path) {
                try FileManager.default.removeItem(at: bankURL)  // a bank the new calibration no longer describes
            }
            let e = calibration.errors
            if e.count < 100 {
                // The warning fires from the 99th percentile on: below 100 images that is the single largest one.
                progress.log("warning: only \(e.count) held-out images: a served percentile moves in steps of "
                             + String(format: "%.1f", 100 / Double(e.count)) + " points and the out-of-distribution warning "
                             + "(from the 99th) means little; calibrate on a test split of 100 or more images")
            }
            progress.log("\(e.count) images: masked-patch MSE median \(String(format: "%.5f", e[e.count / 2])), "
                         + "99th percentile \(String(format: "%.5f", e[min(e.count - 1, e.count * 99 / 100)])); wrote \(dir.path)/\(ReconstructionErrorCalibration.fileName)")
        } catch {
            throw fail("error: \(error)", code: 1)
        }
    }
}
