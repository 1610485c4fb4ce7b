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
}
