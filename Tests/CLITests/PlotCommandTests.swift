import XCTest
import Foundation
import ImageKit
import TestSupport

/// `bootmae-train plot` on hand-written run folders.
final class PlotCommandTests: XCTestCase {
    func makeRun(_ rows: [String]) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("plot-run-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Data((rows.joined(separator: "\n") + "\n").utf8).write(to: dir.appendingPathComponent("metrics.jsonl"))
        return dir
    }

    func testOverlaysRunsIntoOnePNGAndExplainsBadInput() throws {
        let plot = try BuiltExecutable("bootmae-train")
        let a = try makeRun((0..<30).map { #"{"epoch": \#($0), "test_top1": \#(0.5 + Double($0) / 100)}"# })
        let b = try makeRun((0..<30).map { #"{"epoch": \#($0), "test_top1": \#(0.4 + Double($0) / 80), "loss": 1}"# })
        defer { for d in [a, b] { try? FileManager.default.removeItem(at: d) } }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("plot-\(UUID()).png")
        defer { try? FileManager.default.removeItem(at: out) }

        let ok = try plot.run(["plot", a.path, b.path, "--metric", "test_top1", "--labels", "A,B", "--smooth", "3", "--out", out.path])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        let image = try ImageDecoder.decode(Data(contentsOf: out))
        XCTAssertGreaterThan(image.width, 200)

        // A run without the metric, a wrong label count, and a folder that is not a run: exit 1 or 64 with a message.
        let missing = try plot.run(["plot", a.path, "--metric", "loss", "--out", out.path])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("no 'loss' values"), missing.stderr)
        let labels = try plot.run(["plot", a.path, b.path, "--labels", "A", "--out", out.path])
        XCTAssertNotEqual(labels.status, 0)
        XCTAssertTrue(labels.stderr.contains("--labels"), labels.stderr)
        let notRun = try plot.run(["plot", "/nonexistent", "--out", out.path])
        XCTAssertEqual(notRun.status, 1)
        XCTAssertTrue(notRun.stderr.contains("no metrics.jsonl"), notRun.stderr)
    }
}
