import Foundation
import XCTest
@testable import Training

/// What a run folder does about the leftovers of a trainer that was killed.
final class RunDirectoryFaultTests: XCTestCase {
    /// Metrics logged after the last checkpoint (and a line cut short) are dropped on resume, so
    /// the resumed run logs each step once.
    func testMetricsAfterTheCheckpointAreDroppedOnResume() throws {
        let folder = try makeTemporaryFolder(self, "run")
        let run = RunDirectory(reading: folder)
        for step in [1, 10, 20, 30] { run.appendMetrics(["step": step, "loss": Double(step) / 10]) }
        let handle = try FileHandle(forWritingTo: run.file("metrics.jsonl"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"step\": 40, \"lo".utf8))   // killed mid-line
        try handle.close()
        run.dropMetrics(after: 20)
        XCTAssertEqual(run.readMetrics().map { ($0["step"] as? Int) ?? -1 }, [1, 10, 20])
        let before = try Data(contentsOf: run.file("metrics.jsonl"))
        run.dropMetrics(after: 20)
        XCTAssertEqual(try Data(contentsOf: run.file("metrics.jsonl")), before, "nothing to drop: untouched")
    }

    /// Opening a run folder for training removes the temporary files of writers killed mid-write.
    func testOpeningARunRemovesTemporaryFilesOfKilledWriters() throws {
        let folder = try makeTemporaryFolder(self, "run")
        let leftover = URL(fileURLWithPath: folder).appendingPathComponent(".checkpoint.safetensors.tmp-4242-7")
        try Data("half".utf8).write(to: leftover)
        try Data("{}".utf8).write(to: URL(fileURLWithPath: folder).appendingPathComponent("config.json"))
        _ = try RunDirectory(folder, mode: .fresh)
        XCTAssertFalse(FileManager.default.fileExists(atPath: leftover.path))
    }
}
