import ArgumentParser
import Foundation
import Training

// Which images a command reads: the dataset a measurement defaults to, and the test split a labelled
// folder without test/ or val/ holds out.

/// `--test-share`, for the commands that read a test split (finetune, eval, knn, linprobe, calibrate).
struct TestShareOption: ParsableArguments {
    @Option(help: "A labelled folder without test/ or val/ (root/<class>/<image>): the share of each class held out as the test split, chosen by file path (at least 1 image of a class of 2 or more); 0 holds none out. Default: the run's recorded share, else 0.1.")
    var testShare: Double?

    func validate() throws {
        try ensure(testShare.map { $0 >= 0 && $0 <= 0.5 } ?? true, "--test-share must be within 0 and 0.5")
    }

    /// The share to hold out: --test-share, else the one the model recorded, else the default. A share
    /// above the recorded one is a usage error: a smaller share's test images are among a larger
    /// one's, so the difference is images the model was trained on.
    /// `data`: the dataset measured; the model's share counts only for the data it was trained on.
    func share(recordedBy model: String?, data: String? = nil) throws -> Double {
        let training = model.flatMap(recordedTraining(of:))
        let sameData = data.map { given in training.map { canonicalPath($0.path) == canonicalPath(given) } ?? false } ?? true
        let recorded = sameData ? training?.testShare : nil
        if let testShare, let recorded, let model {
            try ensure(testShare <= recorded, "--test-share \(testShare) is more than the \(recorded) that \(model) held out when it "
                       + "was trained: the difference is images it trained on; give \(recorded) or less (or leave --test-share out)")
        }
        return testShare ?? recorded ?? HeldOutSplit.defaultShare
    }

    /// The log line of the test split `dataset` of `data` reads: its held-out share, or why --test-share
    /// does not apply (the dataset has a test split of its own); nil when neither is worth a word.
    func note(_ dataset: any ImageDataset, data: String) -> String? {
        if let held = dataset.heldOut { return held.note }
        return testShare.map { _ in "note: --test-share is not used: \(data) has a test split of its own (test/ or val/, or IDX files)" }
    }
}

/// The dataset a measurement of `model` reads: --data, else the one it was trained on (a run folder's
/// recipe.json `data`, an export's config.json `training_data`), said in the log. A model that names
/// none is a usage error: a photo model measured on Fashion-MNIST would give numbers that mean nothing.
func measurementData(_ given: String?, model: String, progress: ProgressReporter) throws -> String {
    if let given { return given }
    guard let recorded = recordedTraining(of: model) else {
        try ensure(FileManager.default.fileExists(atPath: model), "no run folder or model directory at \(model)")
        throw ValidationError("\(model) does not say which data it was trained on (no recipe.json of a run, no training_data in its "
                              + "config.json): pass --data with the dataset to measure on (its test split is used)")
    }
    guard FileManager.default.fileExists(atPath: recorded.path) else {
        throw ValidationError("\(model) was trained on \(recorded.path) (its \(recorded.file)), which is not here"
                              + "\(recorded.path.hasPrefix("/") ? "" : " (a relative path is read from the working directory)")"
                              + ": pass --data with that dataset")
    }
    progress.log("data: \(recorded.path) (what \(model) trained on; --data to change)")
    return recorded.path
}

/// What the model in folder `model` records of its training data (RecordedTrainingData).
func recordedTraining(of model: String) -> RecordedTrainingData? {
    RecordedTrainingData.read(from: URL(fileURLWithPath: model))
}
