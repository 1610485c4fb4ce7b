import XCTest
import Foundation
import Tensor
import TestSupport

/// `bootmae-train precision-check` run as a user would, on the shipped classifier and Fashion-MNIST's
/// test split: a report on bf16 CPUs (and a gate that fails when asked for more than bf16 gives), a
/// clear refusal elsewhere.
final class PrecisionCheckCommandTests: XCTestCase {
    let model = ShippedServer.modelsDirectory.appendingPathComponent(ShippedModelTests.classifier).path
    let data = "/usr/share/datasets/fashion-mnist"

    func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try BuiltExecutable("bootmae-train").run(["precision-check", "--model", model, "--data", data, "--limit", "10"] + arguments)
    }

    func testReportsOrExplainsWhyNot() throws {
        guard FileManager.default.fileExists(atPath: data) else { throw XCTSkip("Debian's dataset-fashion-mnist is not installed") }
        let result = try run([])
        guard InferenceKernel.best(for: .bf16).precision == .bf16 else {
            XCTAssertEqual(result.status, 2)
            XCTAssertTrue(result.stderr.contains("no bf16 instructions"), result.stderr)
            return
        }
        XCTAssertEqual(result.status, 0, result.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["images"] as? Int, 10)
        let cosine = try XCTUnwrap(json["cosineMin"] as? Double)
        XCTAssertGreaterThan(cosine, 0.999)
        XCTAssertLessThan(cosine, 1)
        XCTAssertNotNil(json["top1Agreement"] as? Double, "a classifier reports top-1 agreement")
        XCTAssertTrue(result.stderr.contains("same top-1 on"), result.stderr)

        let gate = try run(["--min-cosine", "1"])
        XCTAssertEqual(gate.status, 3)
        XCTAssertTrue(gate.stderr.contains("below --min-cosine"), gate.stderr)
    }

    func testBadArgumentsAreRefused() throws {
        let bad = try run(["--min-cosine", "2"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--min-cosine"), bad.stderr)
    }

    /// A plain folder of the user's own images (no test split) is compared whole, and says so.
    func testAFolderWithoutTestSplitIsComparedWhole() throws {
        guard InferenceKernel.best(for: .bf16).precision == .bf16 else { throw XCTSkip("this CPU has no bf16 instructions") }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("precision-check-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        for name in ["gray.png", "rgb.png", "gray.jpg"] {
            try FileManager.default.copyItem(at: Fixtures.url("images/\(name)"), to: folder.appendingPathComponent(name))
        }
        let result = try BuiltExecutable("bootmae-train").run(["precision-check", "--model", model, "--data", folder.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("no test split: comparing on all of its 3 images"), result.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["images"] as? Int, 3)
    }
}
