import XCTest
import Foundation
import TestSupport

/// `bootmae-train` argument handling that a user meets before any training starts.
final class TrainCommandTests: XCTestCase {
    func testFinetuneNeedsAStartingPointUnlessItResumes() throws {
        let train = try BuiltExecutable("bootmae-train")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("ft-args-\(UUID())").path
        let fresh = try train.run(["finetune", "--out", out])
        XCTAssertNotEqual(fresh.status, 0)
        XCTAssertTrue(fresh.stderr.contains("--init-from none"), fresh.stderr)
        // With --resume the saved recipe names the start; a folder without a checkpoint is the error then.
        let resume = try train.run(["finetune", "--out", out, "--resume"])
        XCTAssertEqual(resume.status, 1, resume.stderr)
        XCTAssertTrue(resume.stderr.contains("no checkpoint to resume from"), resume.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/recipe.json"), "a failed start writes nothing")
    }

    /// Numbers outside their meaning stop at the command line (usage error, exit 64, naming the
    /// flag) instead of crashing mid-run or training on nonsense.
    func testNonsenseNumbersAreUsageErrors() throws {
        let train = try BuiltExecutable("bootmae-train")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("bad-numbers-\(UUID())").path
        let cases: [([String], String)] = [
            (["knn", "--model", out, "--k", "0"], "--k"),
            (["knn", "--model", out, "--temperature", "0"], "--temperature"),
            (["eval", "--model", out, "--batch-size", "0"], "--batch-size"),
            (["linprobe", "--model", out, "--blr=-1"], "--blr"),
            (["finetune", "--out", out, "--init-from", "none", "--crop-scale", "5"], "--crop-scale"),
            (["finetune", "--out", out, "--init-from", "none", "--label-smoothing", "2"], "--label-smoothing"),
            (["finetune", "--out", out, "--init-from", "none", "--layer-decay=-1"], "--layer-decay"),
            (["pretrain", "--out", out, "--patch-size", "0"], "--patch-size"),
            (["pretrain", "--out", out, "--lr=-1"], "learning rate"),
            (["pretrain", "--out", out, "--ema-start", "5"], "--ema-start"),
            (["pretrain", "--out", out, "--feature-weight=-1"], "--feature-weight"),
            (["pretrain", "--out", out, "--objective", "mae", "--feature-weight", "0.5"], "unknown option '--feature-weight' for objective mae (mae's own options: --masking)"),
            (["pretrain", "--out", out, "--objective", "ibot-typo"], "unknown objective 'ibot-typo'; known objectives: bootmae, mae, ibot"),
            (["pretrain", "--out", out, "--masking", "checkerboard"], "--masking is one of random, block"),
            (["pretrain", "--out", out, "--no-weight-mask=yes"], "--no-weight-mask takes no value"),
            (["pretrain", "--out", out, "--ema-end"], "--ema-end needs a value"),
            (["pretrain", "--out", out, "--channels", "2"], "--channels"),
            (["finetune", "--out", out, "--init-from", out, "--channels", "1"], "--channels"),  // a pretrained encoder keeps its own
        ]
        for (arguments, flag) in cases {
            let result = try train.run(arguments)
            XCTAssertEqual(result.status, 64, "\(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(flag), "\(arguments): \(result.stderr)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "nothing is created")
    }

    /// --resume trains on with the saved recipe: flags that would change it are an error (not
    /// silently ignored), and resuming a finished run leaves its results as they are.
    func testResumeKeepsTheRecipeAndLeavesAFinishedRunAlone() throws {
        let train = try BuiltExecutable("bootmae-train")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("resume-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let data = Fixtures.url("datasets/idx-gz").path  // 20 train images (2 steps of 8), 6 test images
        let first = try train.run(["pretrain", "--data", data, "--out", out, "--epochs", "1", "--batch-size", "8", "--threads", "1"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stderr.contains("1 channel (grayscale), 20 images"), first.stderr)

        let changed = try train.run(["pretrain", "--out", out, "--resume", "--epochs", "3", "--lr=1e-3"])
        XCTAssertEqual(changed.status, 64, changed.stderr)
        XCTAssertTrue(changed.stderr.contains("--epochs, --lr"), changed.stderr)

        let result = try Data(contentsOf: URL(fileURLWithPath: out + "/result.json"))
        let again = try train.run(["pretrain", "--out", out, "--resume", "--threads", "1"])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("already finished"), again.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/result.json")), result, "result.json untouched")

        // Measurements of a run default to the dataset it trained on, not to Fashion-MNIST.
        let measured = try train.run(["eval", "--model", out, "--threads", "1"])
        XCTAssertEqual(measured.status, 0, measured.stderr)
        XCTAssertTrue(measured.stdout.contains("\"images\" : 6"), measured.stdout)
    }
}
