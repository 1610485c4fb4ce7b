import XCTest
import Foundation
import Tensor
import ViT
import Checkpoint
@testable import Service
import Objectives
import TestSupport

/// The feature-space out-of-distribution score: the served distance recomputed here from the served
/// embedding and the bank file (read as plain safetensors), its percentile, the warning it raises,
/// `/v1/models`, and the load errors of a calibration whose bank is missing or does not fit.
extension ServiceTests {
    /// A models folder with `bootmae` calibrated: reconstruction errors `errors` and a bank of
    /// `bankSize` Gaussian vectors (k = 3) with held-out distances `distances`.
    func featureScoredModels(errors: [Double], distances: [Double], bankSize: Int = 12, writeBank: Bool = true) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("service-feature-ood-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Self.modelsDir.appendingPathComponent("bootmae"), to: dir.appendingPathComponent("bootmae"))
        let model = dir.appendingPathComponent("bootmae")
        let config = try ModelDirectory.readConfig(model)
        var rng = SeededRandom(seed: 11)
        let bank = FeatureBank(embeddings: (0..<(bankSize * config.embedDim)).map { _ in rng.normal() }, dim: config.embedDim)
        let sha256 = writeBank ? try bank.write(to: model) : nil
        let features = FeatureDistanceCalibration(k: 3, pooling: config.globalPool.rawValue, bankImages: bankSize, bankDataset: "gaussian",
                                                  dataset: "made up", distances: distances, bankSHA256: sha256)
        let measure = ReconstructionErrorProtocol(masking: .block, maskedPatches: 32, seeds: [0])
        let calibration = ReconstructionErrorCalibration(measure: measure, dataset: "made up", errors: errors, featureSpace: features)
        try JSONEncoder().encode(calibration).write(to: model.appendingPathComponent(ReconstructionErrorCalibration.fileName))
        return dir
    }

    func featureScoredService(_ dir: URL) throws -> Service {
        var options = Service.Options()
        options.maxImagesPerRequest = 8
        let service = Service(registry: try ModelRegistry(directory: dir.path), limits: .init(maxBatch: 4, maxDelay: 0.002, maxQueue: 64), options: options)
        service.markReady()
        return service
    }

    func testFeatureScoreIsTheKthNearestBankDistanceOfTheServedEmbedding() throws {
        // Held-out distances spread over 0...2 (the range of distances between unit vectors); the
        // reconstruction errors so large that every image's reconstruction percentile is 0, which
        // would warn ("unusually plain") were there no feature score.
        let distances = (0..<40).map { Double($0) * 0.05 + 0.01 }
        let dir = try featureScoredModels(errors: [10, 20, 30], distances: distances)
        defer { try? FileManager.default.removeItem(at: dir) }
        let service = try featureScoredService(dir)
        let answer = call("POST", "/v1/embeddings", json: ["model": "bootmae", "input": [photo.base64EncodedString(), png.base64EncodedString()]],
                          service: service)
        XCTAssertEqual(answer.status, 200, "\(String(describing: answer.json))")
        let items = try XCTUnwrap(answer.json?["data"] as? [[String: Any]])
        XCTAssertEqual(items.count, 2)

        // The reference: the bank as stored (fp16, read without FeatureBank), the served embedding
        // normalised in Double, every Euclidean distance, the third smallest.
        let file = try SafeTensorsFile(contentsOf: dir.appendingPathComponent("bootmae/\(FeatureBank.fileName)"))
        let bank = try file.tensor("bank")
        XCTAssertEqual(file.entries["bank"]?.dtype, .f16)
        XCTAssertEqual(bank.shape, [12, 24])
        for item in items {
            let embedding = try XCTUnwrap(item["embedding"] as? [Double])
            let norm = embedding.reduce(0) { $0 + $1 * $1 }.squareRoot()
            let unit = embedding.map { $0 / norm }
            let all = (0..<12).map { row in
                (0..<24).reduce(0.0) { s, j in let d = unit[j] - Double(bank.data[row * 24 + j]); return s + d * d }.squareRoot()
            }.sorted()
            let ood = try XCTUnwrap(item["ood"] as? [String: Any])
            let feature = try XCTUnwrap(ood["feature_space"] as? [String: Any])
            let distance = try XCTUnwrap(feature["distance"] as? Double)
            XCTAssertEqual(distance, all[2], accuracy: 1e-4)
            XCTAssertEqual(feature["k"] as? Int, 3)
            XCTAssertEqual(feature["bank_images"] as? Int, 12)
            XCTAssertEqual(feature["calibration_images"] as? Int, 40)
            // No held-out distance lies within 1e-3 of another value's boundary here, so the share below is exact.
            let below = distances.filter { $0 < distance }.count
            XCTAssertEqual(feature["percentile"] as? Double, 100 * Double(below) / 40)
            XCTAssertEqual(ood["percentile"] as? Double, 0)  // the reconstruction percentile, still reported
            // The warning follows the feature score alone: this one lies inside the held-out distances' range.
            XCTAssertLessThan(distance, 1.96)
            XCTAssertEqual((item["warnings"] as? [[String: Any]])?.filter { $0["code"] as? String == "out_of_distribution" }.count, 0)
        }
        let cards = call("GET", "/v1/models", service: service).json?["data"] as? [[String: Any]] ?? []
        let scoring = try XCTUnwrap(cards.first { $0["id"] as? String == "bootmae" }?["ood_score"] as? [String: Any])
        XCTAssertEqual(scoring["warning_score"] as? String, "feature_space")
        let featureScoring = try XCTUnwrap(scoring["feature_space"] as? [String: Any])
        XCTAssertEqual(featureScoring["k"] as? Int, 3)
        XCTAssertEqual(featureScoring["calibration_images"] as? Int, 40)
        XCTAssertEqual(featureScoring["pooling"] as? String, "cls")
    }

    func testAnImageFartherThanEveryHeldOutImageIsWarnedAbout() throws {
        // Held-out distances all tiny: any real image lies beyond them (percentile 100).
        let dir = try featureScoredModels(errors: [10, 20], distances: [1e-4, 2e-4, 3e-4])
        defer { try? FileManager.default.removeItem(at: dir) }
        let service = try featureScoredService(dir)
        let answer = call("POST", "/v1/embeddings", json: ["model": "bootmae", "input": photo.base64EncodedString()], service: service)
        let item = try XCTUnwrap((answer.json?["data"] as? [[String: Any]])?.first)
        XCTAssertEqual(((item["ood"] as? [String: Any])?["feature_space"] as? [String: Any])?["percentile"] as? Double, 100)
        let warnings = (item["warnings"] as? [[String: Any]] ?? []).filter { $0["code"] as? String == "out_of_distribution" }
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue((warnings.first?["message"] as? String ?? "").contains("3rd nearest of 12"), "\(warnings)")
        // A PNG answer carries both percentiles and the warning's code in its headers.
        let png = call("POST", "/v1/reconstructions", json: ["model": "bootmae", "input": photo.base64EncodedString()], service: service).response
        let headers = Dictionary(png.headers, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(headers["X-OOD-Feature-Percentile"], "100.0")
        XCTAssertEqual(headers["X-OOD-Percentile"], "0.0")
        XCTAssertTrue(headers["X-Warnings"]?.contains("out_of_distribution") ?? false, "\(headers)")
    }

    func testTheWarningRuleOfEachScore() {
        let far = OODScore.FeatureScore(percentile: 99.5, distance: 1, k: 5, bankImages: 1000, calibrationImages: 5000)
        let near = OODScore.FeatureScore(percentile: 50, distance: 0.2, k: 5, bankImages: 1000, calibrationImages: 5000)
        let nearest = OODScore.FeatureScore(percentile: 0, distance: 0, k: 5, bankImages: 1000, calibrationImages: 5000)
        // With a feature score it alone decides, on its upper tail only.
        XCTAssertNotNil(OODScore(percentile: 50, maskedPatchMSE: 1, referenceModel: "m", calibrationImages: 4, featureSpace: far).warning)
        XCTAssertNil(OODScore(percentile: 100, maskedPatchMSE: 1, referenceModel: "m", calibrationImages: 4, featureSpace: near).warning)
        XCTAssertNil(OODScore(percentile: 0, maskedPatchMSE: 1, referenceModel: "m", calibrationImages: 4, featureSpace: nearest).warning)
        // Without one, the reconstruction percentile's two tails; few calibration images are said to be coarse.
        let coarse = OODScore(percentile: 100, maskedPatchMSE: 1, referenceModel: "m", calibrationImages: 16).warning
        XCTAssertTrue(coarse?.message.contains("about 1 in 17") ?? false, "\(String(describing: coarse))")
        XCTAssertFalse(OODScore(percentile: 0, maskedPatchMSE: 1, referenceModel: "m", calibrationImages: 1000).warning?.message.contains("1 in") ?? true)
        XCTAssertEqual(OODScore.ordinal(1) + OODScore.ordinal(2) + OODScore.ordinal(3) + OODScore.ordinal(5) + OODScore.ordinal(11) + OODScore.ordinal(22),
                       "1st2nd3rd5th11th22nd")
    }

    func testACalibrationWhoseBankIsMissingOrDoesNotFitIsRefused() throws {
        let missing = try featureScoredModels(errors: [1], distances: [0.5], writeBank: false)
        defer { try? FileManager.default.removeItem(at: missing) }
        XCTAssertThrowsError(try ModelRegistry(directory: missing.path)) { error in
            XCTAssertTrue("\(error)".contains(FeatureBank.fileName), "\(error)")
        }
        // A bank of another width than the encoder's embeddings (a calibration of another model).
        let wrong = try featureScoredModels(errors: [1], distances: [0.5])
        defer { try? FileManager.default.removeItem(at: wrong) }
        try FeatureBank(embeddings: [Float](repeating: 1, count: 12 * 7), dim: 7).write(to: wrong.appendingPathComponent("bootmae"))
        XCTAssertThrowsError(try ModelRegistry(directory: wrong.path)) { error in
            XCTAssertTrue("\(error)".contains("SHA-256 differs"), "\(error)")
        }
        // Without a recorded hash (a calibration from before it was recorded) the shape check still refuses it.
        let unhashed = wrong.appendingPathComponent("bootmae/\(ReconstructionErrorCalibration.fileName)")
        var calibration = try JSONDecoder().decode(ReconstructionErrorCalibration.self, from: Data(contentsOf: unhashed))
        calibration.featureSpace?.bankSHA256 = nil
        try JSONEncoder().encode(calibration).write(to: unhashed)
        XCTAssertThrowsError(try ModelRegistry(directory: wrong.path)) { error in
            XCTAssertTrue("\(error)".contains("12 × 7"), "\(error)")
        }
    }

    /// A bank of the right shape but other rows than the distances were measured with (calibrate stopped
    /// between its two files, or a bank copied from another model of the same width) is refused by its
    /// recorded hash, with what to do; the bytes it was measured with, put back, load.
    func testABankOtherThanTheCalibrationsIsRefusedByItsHash() throws {
        let dir = try featureScoredModels(errors: [1], distances: [0.5])
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("bootmae")
        let bankFile = model.appendingPathComponent(FeatureBank.fileName)
        let written = try Data(contentsOf: bankFile)
        let original = try XCTUnwrap(try FeatureBank.read(model))
        XCTAssertNoThrow(try ModelRegistry(directory: dir.path))
        var rows = original.rows
        rows.swapAt(0, original.dim)   // the first value of the first two rows exchanged: same shape, other bytes
        try FeatureBank(embeddings: rows, dim: original.dim).write(to: model)
        XCTAssertThrowsError(try ModelRegistry(directory: dir.path)) { error in
            XCTAssertTrue("\(error)".contains("SHA-256 differs") && "\(error)".contains("calibrate"), "\(error)")
        }
        try written.write(to: bankFile)
        XCTAssertNoThrow(try ModelRegistry(directory: dir.path))
    }

    /// A calibration written before the hash was recorded loads with its (fitting) bank, unchecked.
    func testACalibrationWithoutABankHashStillLoads() throws {
        let dir = try featureScoredModels(errors: [1], distances: [0.5])
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("bootmae/\(ReconstructionErrorCalibration.fileName)")
        var calibration = try JSONDecoder().decode(ReconstructionErrorCalibration.self, from: Data(contentsOf: file))
        XCTAssertNotNil(calibration.featureSpace?.bankSHA256)
        calibration.featureSpace?.bankSHA256 = nil
        try JSONEncoder().encode(calibration).write(to: file)
        let registry = try ModelRegistry(directory: dir.path)
        XCTAssertEqual(try registry.model("bootmae").featureBank?.count, 12)
    }
}
