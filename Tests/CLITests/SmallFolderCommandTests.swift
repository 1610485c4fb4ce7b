import XCTest
import Foundation
import TestSupport
import ImageKit

/// What a new user meets measuring and training on a small folder of their own photos.
final class SmallFolderCommandTests: XCTestCase {
    /// A scratch folder, removed after the test.
    func scratch(_ name: String) -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID())").path
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// `counts[class]` 32×32 RGB PNGs in `folder/<class>/`, each a different pattern.
    func writeClasses(_ counts: [String: Int], in folder: String) throws {
        for (c, (name, count)) in counts.sorted(by: { $0.key < $1.key }).enumerated() {
            try FileManager.default.createDirectory(atPath: "\(folder)/\(name)", withIntermediateDirectories: true)
            for i in 0..<count {
                let pixels = (0..<(32 * 32 * 3)).map { UInt8(truncatingIfNeeded: $0 * (i + 3) + c * 91) }
                let png = try PNGEncoder.encode(Image(width: 32, height: 32, channels: 3, pixels: pixels))
                try Data(png).write(to: URL(fileURLWithPath: "\(folder)/\(name)/\(i).png"))
            }
        }
    }

    /// One damaged file among 13 training images is skipped with a warning naming it, where 1% of
    /// 13 used to be none (the run stopped in its first epoch); the run's result lists it.
    func testOneBadFileDoesNotStopASmallDataset() throws {
        let train = try BuiltExecutable("bootmae-train")
        let root = scratch("bad-file")
        try writeClasses(["cat": 6, "dog": 6], in: root + "/train")
        try writeClasses(["cat": 2, "dog": 2], in: root + "/test")
        try Data("not a PNG".utf8).write(to: URL(fileURLWithPath: root + "/train/dog/broken.png"))
        let out = root + "/runs/ft"
        let result = try train.run(["finetune", "--init-from", "none", "--data", root, "--out", out, "--epochs", "1",
                                    "--batch-size", "4", "--threads", "1"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("warning: skipped an unreadable image: \(root)/train/dog/broken.png"), result.stderr)
        struct Result: Decodable { let unreadableImages: [String]? }
        let recorded = try JSONDecoder().decode(Result.self, from: Data(contentsOf: URL(fileURLWithPath: out + "/result.json")))
        XCTAssertEqual(recorded.unreadableImages, [root + "/train/dog/broken.png"])
    }

    /// A classifier of one class (loss 0, top-1 100%, every input "cats") is refused before anything
    /// is written: finetune, linprobe and knn name the folder and the class found (usage error).
    func testOneClassIsRefusedByTheClassifyingCommands() throws {
        let train = try BuiltExecutable("bootmae-train")
        let root = scratch("one-class")
        try writeClasses(["cats": 6], in: root + "/train")
        try writeClasses(["cats": 2], in: root + "/test")
        let pt = root + "/runs/pt", ft = root + "/runs/ft"
        let pretrain = try train.run(["pretrain", "--data", root, "--out", pt, "--epochs", "1", "--batch-size", "4",
                                      "--threads", "1", "--max-steps", "1"])
        XCTAssertEqual(pretrain.status, 0, "pretraining reads no labels: \(pretrain.stderr)")
        let expected = "\(root)/train holds one class (cats): a classifier needs at least 2 classes"
        for command in [["finetune", "--init-from", pt, "--out", ft, "--epochs", "1", "--threads", "1"],
                        ["finetune", "--init-from", "none", "--data", root, "--out", ft, "--epochs", "1", "--threads", "1"],
                        ["linprobe", "--model", pt, "--threads", "1"],
                        ["knn", "--model", pt, "--threads", "1"]] {
            let result = try train.run(command)
            XCTAssertEqual(result.status, 64, "\(command): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(expected), "\(command): \(result.stderr)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: ft), "no run folder is made")
        for file in ["linprobe.json", "knn.json"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: pt + "/" + file), file)
        }
    }

    /// root/<class>/ without test/ or val/: pretraining reads every image and says what the
    /// measurements will hold out; eval, knn and finetune hold out a share of each class as the test
    /// split (saying so) and train on the rest; a fine-tune records its --test-share, its measurements
    /// use it, and a resume with another share is refused.
    func testAClassFolderWithoutTestSplitHoldsOutAShareOfEachClass() throws {
        let train = try BuiltExecutable("bootmae-train")
        let root = scratch("held-out")
        try writeClasses(["cat": 10, "dog": 10], in: root)
        let pt = root + "-runs/pt", ft = root + "-runs/ft"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: root + "-runs") }
        let pretrain = try train.run(["pretrain", "--data", root, "--out", pt, "--epochs", "1", "--batch-size", "4",
                                      "--threads", "1", "--max-steps", "1"])
        XCTAssertEqual(pretrain.status, 0, pretrain.stderr)
        XCTAssertTrue(pretrain.stderr.contains("pretraining uses all 20 images (it reads no labels); eval, knn, linprobe and finetune "
                                               + "hold out 2 of them (10% of each class) as the test split"), pretrain.stderr)
        XCTAssertTrue(pretrain.stderr.contains(", 20 images, 5 steps"), pretrain.stderr)

        let note = "\(root) has no test/ or val/ subfolder: holding out 2 of its 20 images as the test split (10% of each class"
        let eval = try train.run(["eval", "--model", pt, "--threads", "1"])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        XCTAssertTrue(eval.stderr.contains(note), eval.stderr)
        XCTAssertTrue(eval.stdout.contains("\"images\" : 2"), eval.stdout)
        let knn = try train.run(["knn", "--model", pt, "--threads", "1"])
        XCTAssertEqual(knn.status, 0, knn.stderr)
        XCTAssertTrue(knn.stderr.contains(note), knn.stderr)
        struct Counts: Decodable { let trainCount: Int; let testCount: Int }
        let counts = try JSONDecoder().decode(Counts.self, from: Data(contentsOf: URL(fileURLWithPath: pt + "/knn.json")))
        XCTAssertEqual([counts.trainCount, counts.testCount], [18, 2])

        let finetune = ["finetune", "--init-from", pt, "--out", ft, "--epochs", "1", "--batch-size", "4", "--threads", "1",
                        "--test-share", "0.2"]
        let first = try train.run(finetune + ["--max-steps", "1"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stderr.contains("holding out 4 of its 20 images as the test split (20% of each class"), first.stderr)
        XCTAssertTrue(first.stderr.contains("16 images in 2 classes"), first.stderr)
        struct Share: Decodable { let testShare: Double? }
        XCTAssertEqual(try JSONDecoder().decode(Share.self, from: Data(contentsOf: URL(fileURLWithPath: ft + "/recipe.json"))).testShare, 0.2)
        let changed = try train.run(["finetune", "--out", ft, "--resume", "--test-share", "0.1"])
        XCTAssertEqual(changed.status, 64, changed.stderr)
        XCTAssertTrue(changed.stderr.contains("--test-share: recorded 0.2, given 0.1"), changed.stderr)
        let measured = try train.run(["eval", "--model", ft, "--threads", "1"])
        XCTAssertEqual(measured.status, 0, measured.stderr)
        XCTAssertTrue(measured.stdout.contains("\"images\" : 4"), "the run's recorded share: \(measured.stdout)")
        // A larger share than the fine-tune held out would test on images it trained on: refused.
        let larger = try train.run(["eval", "--model", ft, "--threads", "1", "--test-share", "0.3"])
        XCTAssertNotEqual(larger.status, 0, larger.stderr)
        XCTAssertTrue(larger.stderr.contains("--test-share 0.3 is more than the 0.2 that \(ft) held out"), larger.stderr)
        // The export records the share beside the data, and its measurements hold out the same images.
        let exported = root + "-runs/ft-export"
        let export = try train.run(["export", "--run", ft, "--out", exported])
        XCTAssertEqual(export.status, 0, export.stderr)
        let config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: exported + "/config.json"))) as? [String: Any])
        XCTAssertEqual(config["test_share"] as? Double, 0.2)
        let ofExport = try train.run(["knn", "--model", exported, "--threads", "1"])
        XCTAssertEqual(ofExport.status, 0, ofExport.stderr)
        XCTAssertTrue(ofExport.stderr.contains("holding out 4 of its 20 images as the test split (20% of each class"), ofExport.stderr)
        // A dataset with its own test split says --test-share does not apply.
        let own = root + "-own"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: own) }
        try writeClasses(["cat": 4, "dog": 4], in: own + "/train")
        try writeClasses(["cat": 2, "dog": 2], in: own + "/test")
        let ignored = try train.run(["eval", "--model", pt, "--data", own, "--test-share", "0.2", "--threads", "1"])
        XCTAssertEqual(ignored.status, 0, ignored.stderr)
        XCTAssertTrue(ignored.stderr.contains("note: --test-share is not used: \(own) has a test split of its own"), ignored.stderr)
        // The fine-tune's recorded share concerns its own data only: other data takes any share.
        let otherData = try train.run(["eval", "--model", ft, "--data", own, "--test-share", "0.3", "--threads", "1"])
        XCTAssertEqual(otherData.status, 0, otherData.stderr)

        let none = try train.run(["eval", "--model", pt, "--threads", "1", "--test-share", "0"])
        XCTAssertEqual(none.status, 1, none.stderr)
        XCTAssertTrue(none.stderr.contains("has no test split"), none.stderr)
        XCTAssertTrue(none.stderr.contains("--test-share 0 holds none"), none.stderr)
    }

    /// Measurements say what they measured: eval, knn and calibrate record the dataset (path and split)
    /// in their JSON, the card shows it beside each number, and an export records its training data
    /// (config.json training_data) so measuring it without --data reads that. A model directory that
    /// names no data is a usage error asking for --data (it used to be measured on Fashion-MNIST).
    func testMeasurementsNameTheirDataAndAModelThatNamesNoneNeedsData() throws {
        let train = try BuiltExecutable("bootmae-train")
        let root = scratch("measured")
        try writeClasses(["cat": 10, "dog": 10], in: root + "/photos")
        let data = root + "/photos", pt = root + "/runs/pt", model = root + "/models/m"
        let pretrain = try train.run(["pretrain", "--data", data, "--out", pt, "--epochs", "1", "--batch-size", "4",
                                      "--threads", "1", "--max-steps", "1"])
        XCTAssertEqual(pretrain.status, 0, pretrain.stderr)
        struct Measured: Decodable { let data: Data?; struct Data: Decodable { let path: String; let split: String } }
        func measured(_ file: String) throws -> Measured.Data? {
            try JSONDecoder().decode(Measured.self, from: Foundation.Data(contentsOf: URL(fileURLWithPath: file))).data
        }
        for command in ["eval", "knn"] {
            let result = try train.run([command, "--model", pt, "--threads", "1"])
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertTrue(result.stderr.contains("data: \(data) (what \(pt) trained on; --data to change)"), result.stderr)
        }
        XCTAssertEqual(try measured(pt + "/eval.json")?.path, data)
        XCTAssertEqual(try measured(pt + "/eval.json")?.split, "test split (test split held out of the class folders: 2 of 20 images, 10% of each class)")
        XCTAssertEqual(try measured(pt + "/knn.json")?.split,
                       "train and test splits (test split held out of the class folders: 2 of 20 images, 10% of each class)")

        let export = try train.run(["export", "--run", pt, "--out", model])
        XCTAssertEqual(export.status, 0, export.stderr)
        let config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: model + "/config.json"))) as? [String: Any])
        XCTAssertEqual(config["training_data"] as? String, data)
        let card = try String(contentsOf: URL(fileURLWithPath: model + "/MODEL_CARD.md"), encoding: .utf8)
        XCTAssertTrue(card.contains("| metric | value | measured on |"), card)
        XCTAssertNotNil(card.range(of: #"\| k-NN top-1 \(frozen\) \| [0-9.]+% \| photos, train and test splits \(test split held out of the class folders: 2 of 20 images"#,
                                   options: .regularExpression), card)
        XCTAssertNotNil(card.range(of: #"\| masked-patch PSNR, block masks \| [0-9.]+ dB \| photos, test split \("#, options: .regularExpression), card)

        // The export's own measurements read the data it records.
        let exported = try train.run(["eval", "--model", model, "--threads", "1"])
        XCTAssertEqual(exported.status, 0, exported.stderr)
        XCTAssertTrue(exported.stderr.contains("data: \(data) (what \(model) trained on"), exported.stderr)
        XCTAssertTrue(exported.stderr.contains("reconstruction on 2 test images of photos, test split"), exported.stderr)
        let calibrated = try train.run(["calibrate", "--model", model, "--threads", "1"])
        XCTAssertEqual(calibrated.status, 0, calibrated.stderr)
        struct Calibration: Decodable { let dataset: String }
        let calibration = try JSONDecoder().decode(Calibration.self, from: Data(contentsOf: URL(fileURLWithPath: model + "/ood_calibration.json")))
        XCTAssertEqual(calibration.dataset, "\(data), test split (test split held out of the class folders: 2 of 20 images, 10% of each class) (first 2 images)")

        // A model that names no data (an export from before training_data, a converted checkpoint) needs --data.
        var unnamed = config
        unnamed["training_data"] = nil
        try JSONSerialization.data(withJSONObject: unnamed).write(to: URL(fileURLWithPath: model + "/config.json"))
        for command in ["eval", "knn", "linprobe", "calibrate"] {
            let out = command == "calibrate" ? [] : ["--out", root + "/\(command)-unnamed.json"]  // calibrate writes into the model
            let result = try train.run([command, "--model", model, "--threads", "1"] + out)
            XCTAssertEqual(result.status, 64, "\(command): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("\(model) does not say which data it was trained on"), "\(command): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("pass --data"), "\(command): \(result.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/\(command)-unnamed.json"), command)
        }
        XCTAssertEqual(try JSONDecoder().decode(Calibration.self, from: Data(contentsOf: URL(fileURLWithPath: model + "/ood_calibration.json"))).dataset,
                       calibration.dataset, "calibrate replaced nothing")
        let given = try train.run(["eval", "--model", model, "--data", data, "--threads", "1"])
        XCTAssertEqual(given.status, 0, given.stderr)

        // Recorded data that is not on this machine: said, with the path.
        unnamed["training_data"] = root + "/moved-away"
        try JSONSerialization.data(withJSONObject: unnamed).write(to: URL(fileURLWithPath: model + "/config.json"))
        let missing = try train.run(["eval", "--model", model, "--threads", "1"])
        XCTAssertEqual(missing.status, 64, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("was trained on \(root)/moved-away (its config.json training_data), which is not here"), missing.stderr)
    }
}
