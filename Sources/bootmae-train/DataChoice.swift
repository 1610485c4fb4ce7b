import ArgumentParser
import Foundation
import Training

// Which images a command reads: the test split a labelled folder without test/ or val/ holds out.

/// `--test-share`, for the commands that read a test split (finetune, eval, knn, linprobe, calibrate).
struct TestShareOption: ParsableArguments {
    @Option(help: "A labelled folder without test/ or val/ (root/<class>/<image>): the share of each class held out as the test split, chosen by file path (at least 1 image of a class of 2 or more); 0 holds none out. Default: the run's recorded share, else 0.1.")
    var testShare: Double?

    func validate() throws {
        try ensure(testShare.map { $0 >= 0 && $0 <= 0.5 } ?? true, "--test-share must be within 0 and 0.5")
    }

    /// The share to hold out: --test-share, else the one the run in folder `model` recorded, else the default.
    func share(recordedBy model: String?) -> Double {
        testShare ?? model.flatMap(recordedTestShare(of:)) ?? HeldOutSplit.defaultShare
    }
}

/// The share the run in folder `model` held out (a fine-tune's recipe.json), if it recorded one.
func recordedTestShare(of model: String) -> Double? {
    struct Recorded: Decodable { let testShare: Double? }
    let recipe = URL(fileURLWithPath: model).appendingPathComponent("recipe.json")
    return (try? JSONDecoder().decode(Recorded.self, from: Data(contentsOf: recipe)))?.testShare
}
