import XCTest
import Foundation
import TestSupport

/// The fuzz harnesses' properties hold on their seed corpora in a normal build (the replayer mode of
/// the same executables scripts/fuzz-*.sh build with libFuzzer).
final class FuzzReplayTests: XCTestCase {
    func testImageFixturesPassTheDecodeFuzzChecks() throws {
        let replay = try BuiltExecutable("image-decode-fuzz").run([Fixtures.url("images").path])
        XCTAssertEqual(replay.status, 0, replay.stdout + replay.stderr)
        XCTAssertTrue(replay.stdout.contains("inputs replayed, all properties hold"), replay.stdout)
    }

    func testRequestSeedsPassTheDecodingFuzzChecks() throws {
        let replay = try BuiltExecutable("request-decode-fuzz").run([Fixtures.url("request-corpus").path])
        XCTAssertEqual(replay.status, 0, replay.stdout + replay.stderr)
        XCTAssertTrue(replay.stdout.contains("9 inputs replayed, all properties hold"), replay.stdout)
    }
}
