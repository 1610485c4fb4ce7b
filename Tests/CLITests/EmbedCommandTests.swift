import XCTest
import Foundation
import Tensor
import Checkpoint
import ImageKit
import ViT
import TestSupport

/// `bootmae-train embed` run as a user would: the built executable, real photos, real files.
final class EmbedCommandTests: XCTestCase {
    func requireExecutable() throws { _ = try BuiltExecutable("bootmae-train") }

    func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try BuiltExecutable("bootmae-train").run(arguments)
    }

    let model = Fixtures.url("encoders/timm_qkv_cls").path
    let photo = Fixtures.url("images/photo_512x384.jpg").path
    let png = Fixtures.url("images/rgb.png").path

    func testJSONLinesMatchTheInProcessEncoder() throws {
        try requireExecutable()
        let result = try run(["embed", "--model", model, photo, png, "--pooling", "mean"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = result.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as! [String: Any]
        XCTAssertEqual(first["image"] as? String, photo)
        let embedding = (first["embedding"] as! [NSNumber]).map(\.floatValue)

        // The same image through the library.
        let encoder = try ModelDirectory.loadEncoder(URL(fileURLWithPath: model))
        let c = encoder.config
        let prep = ImagePreprocessor(imageSize: c.imgSize, channels: c.inChans, mean: c.mean, std: c.std)
        let image = try ImageDecoder.decode(try Data(contentsOf: URL(fileURLWithPath: photo)))
        let input = Tensor(shape: [1, c.inChans, c.imgSize, c.imgSize], data: prep.tensorCHW(image))
        let expected = encoder.embed(input, pooling: .mean)
        XCTAssertLessThanOrEqual(relativeError(Tensor(shape: [1, embedding.count], data: embedding), expected), 1e-6)
    }

    /// `--precision bf16` runs the bf16 GEMM (where the CPU has it): close to fp32, not equal to it.
    func testBF16PrecisionStaysCloseToFP32() throws {
        try requireExecutable()
        try XCTSkipUnless(InferenceKernel.best(for: .bf16).precision == .bf16, "this CPU has no bf16 instructions")
        func embedding(_ extra: [String]) throws -> [Double] {
            let result = try run(["embed", "--model", model, photo] + extra)
            XCTAssertEqual(result.status, 0, result.stderr)
            let line = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
            return (line["embedding"] as! [NSNumber]).map(\.doubleValue)
        }
        let (fp32, bf16) = (try embedding([]), try embedding(["--precision", "bf16"]))
        let dot = zip(fp32, bf16).reduce(0) { $0 + $1.0 * $1.1 }
        let cosine = dot / (fp32.reduce(0) { $0 + $1 * $1 } * bf16.reduce(0) { $0 + $1 * $1 }).squareRoot()
        XCTAssertGreaterThanOrEqual(cosine, 0.9999)
        XCTAssertNotEqual(fp32, bf16)
        let bad = try run(["embed", "--model", model, photo, "--precision", "fp16"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("fp16"), bad.stderr)
    }

    func testNPYOutputIsWrittenAtomically() throws {
        try requireExecutable()
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("emb-\(UUID()).npy")
        defer { try? FileManager.default.removeItem(at: out) }
        let result = try run(["embed", "--model", model, "--format", "npy", "--output", out.path, photo, png])
        XCTAssertEqual(result.status, 0, result.stderr)
        let data = try Data(contentsOf: out)
        XCTAssertEqual(Array(data.prefix(6)), [0x93] + Array("NUMPY".utf8))
        let headerLength = Int(data[8]) | Int(data[9]) << 8
        let header = String(decoding: data[10..<(10 + headerLength)], as: UTF8.self)
        XCTAssertTrue(header.contains("'shape': (2, 48)"), header)
        XCTAssertEqual((10 + headerLength) % 64, 0)
        XCTAssertEqual(data.count, 10 + headerLength + 2 * 48 * 4)
    }

    func testBadImagesFailWithAMessageAndNoOutput() throws {
        try requireExecutable()
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("emb-\(UUID()).jsonl")
        for (file, phrase) in [("truncated.jpg", "truncated"), ("text.txt", "Accepted formats: PNG, JPEG"),
                               ("missing.png", "no such file")] {
            let result = try run(["embed", "--model", model, "--output", out.path, png, Fixtures.url("images/\(file)").path])
            XCTAssertEqual(result.status, 1, file)
            XCTAssertTrue(result.stderr.contains(phrase), "\(file): \(result.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "no partial output for \(file)")
        }
    }

    func testUnloadableModelExitsWithStatus2() throws {
        try requireExecutable()
        // An empty folder of our own (the shared temporary directory may hold anything, even a config.json).
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("no-model-\(UUID())")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: empty) }
        let result = try run(["embed", "--model", empty.path, png])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.stderr.contains("config.json"), result.stderr)
    }
}
