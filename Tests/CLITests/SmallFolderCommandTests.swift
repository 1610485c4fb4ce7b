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
}
