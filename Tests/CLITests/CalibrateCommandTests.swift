import XCTest
import Foundation
import TestSupport
import ImageKit
import Checkpoint

/// `bootmae-train calibrate`: the feature bank beside the reconstruction errors, its removal with
/// `--bank-images 0`, and the numbers it refuses.
final class CalibrateCommandTests: XCTestCase {
    /// A classifier (or plain encoder) export has no pixel decoder to calibrate with: a usage error
    /// that says to calibrate the pretraining export it came from, not a config field it lacks.
    func testAClassifierIsSentToItsPretrainingExport() throws {
        let train = try BuiltExecutable("bootmae-train")
        let result = try train.run(["calibrate", "--model", Fixtures.url("encoders/timm_qkv_avg_head").path,
                                    "--data", Fixtures.url("datasets/idx-gz").path, "--threads", "1"])
        XCTAssertEqual(result.status, 64, result.stderr)
        XCTAssertTrue(result.stderr.contains("is a classifier or encoder export without a pixel decoder"), result.stderr)
        XCTAssertTrue(result.stderr.contains("calibrate the pretraining export it came from"), result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: Fixtures.url("encoders/timm_qkv_avg_head").path + "/ood_calibration.json"))
    }

    func testCalibrateWritesAndRemovesTheFeatureBank() throws {
        let train = try BuiltExecutable("bootmae-train")
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("calibrate-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        // An ImageFolder of 40-px pictures (the 32-px fixture model resizes them) and the model to calibrate.
        for (split, count) in [("train", 8), ("test", 12)] {
            try FileManager.default.createDirectory(atPath: "\(root)/data/\(split)/a", withIntermediateDirectories: true)
            for i in 0..<count {
                let pixels = (0..<(40 * 40 * 3)).map { UInt8(truncatingIfNeeded: $0 * (i + 2) + (split == "test" ? 17 : 0)) }
                try Data(try PNGEncoder.encode(Image(width: 40, height: 40, channels: 3, pixels: pixels)))
                    .write(to: URL(fileURLWithPath: "\(root)/data/\(split)/a/\(i).png"))
            }
        }
        let model = root + "/model"
        try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
        for file in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(atPath: Fixtures.url("pretrain/bootmae_tiny/\(file)").path, toPath: "\(model)/\(file)")
        }
        let base = ["calibrate", "--model", model, "--data", root + "/data", "--images", "10", "--masks", "1", "--threads", "1"]

        let tooFew = try train.run(base + ["--bank-images", "3", "--k", "3"])
        XCTAssertEqual(tooFew.status, 64, tooFew.stderr)
        XCTAssertTrue(tooFew.stderr.contains("--bank-images must be 0 (no feature bank) or more than --k"), tooFew.stderr)

        let withBank = try train.run(base + ["--bank-images", "6", "--k", "2"])
        XCTAssertEqual(withBank.status, 0, withBank.stderr)
        XCTAssertTrue(withBank.stderr.contains("warning: only 10 held-out images: a served percentile moves in steps of 10.0 points"),
                      withBank.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: model + "/ood_calibration.json"))) as? [String: Any]
        XCTAssertEqual((json?["errors"] as? [Double])?.count, 10)
        let features = try XCTUnwrap(json?["feature_space"] as? [String: Any])
        XCTAssertEqual(features["k"] as? Int, 2)
        XCTAssertEqual(features["bank_images"] as? Int, 6)
        XCTAssertEqual(features["pooling"] as? String, "cls")
        XCTAssertEqual(features["bank_dataset"] as? String, "\(root)/data, train split (first 6 images)")
        let distances = try XCTUnwrap(features["distances"] as? [Double])
        XCTAssertEqual(distances.count, 10)
        XCTAssertEqual(distances, distances.sorted())
        XCTAssertTrue(distances.allSatisfy { (0...2).contains($0) }, "\(distances)")
        let bank = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: model + "/ood_feature_bank.safetensors"))
        XCTAssertEqual(bank.entries["bank"]?.shape, [6, 24])
        // The calibration names the bank it measured by its bytes' SHA-256.
        XCTAssertEqual(features["bank_sha256"] as? String, SHA256.hex(try SHA256.digest(ofFile: model + "/ood_feature_bank.safetensors")))
        XCTAssertEqual(bank.entries["bank"]?.dtype, .f16)

        // Without a bank, the calibration says nothing of one and the old bank goes.
        let without = try train.run(base + ["--bank-images", "0"])
        XCTAssertEqual(without.status, 0, without.stderr)
        let plain = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: model + "/ood_calibration.json"))) as? [String: Any]
        XCTAssertNil(plain?["feature_space"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: model + "/ood_feature_bank.safetensors"))
    }
}
