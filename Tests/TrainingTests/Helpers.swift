import Foundation
import ImageKit
import TestSupport
import XCTest
@testable import Training

/// A fresh temporary folder, removed when the test ends.
func makeTemporaryFolder(_ test: XCTestCase, _ name: String = "data") throws -> String {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("bootmae-training-tests-\(UUID().uuidString)")
        .appendingPathComponent(name)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
    return url.path
}

func write(_ bytes: [UInt8], to path: String) throws {
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                            withIntermediateDirectories: true)
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

func readBytes(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

/// The folder of the committed dataset fixtures.
let datasetFixtures = Fixtures.url("datasets").path

/// The error `body` throws, or a test failure.
func thrownError<T>(_ body: () throws -> T, file: StaticString = #filePath, line: UInt = #line) -> DatasetError? {
    do {
        _ = try body()
        XCTFail("expected an error", file: file, line: line)
        return nil
    } catch let error as DatasetError {
        return error
    } catch {
        XCTFail("expected a DatasetError, got \(error)", file: file, line: line)
        return nil
    }
}

/// A gray or RGB test image whose pixels encode `seed`.
func patternImage(width: Int, height: Int, channels: Int, seed: Int) -> Image {
    Image(width: width, height: height, channels: channels,
          pixels: (0..<(width * height * channels)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ seed &* 31) })
}

/// An in-memory labeled dataset for loader tests (no files).
struct SyntheticDataset: ImageDataset {
    let count: Int
    var width = 12, height = 10
    let channels = 3
    var classes: [String] { ["a", "b", "c"] }
    /// Indices whose image "fails to decode".
    var broken: Set<Int> = []

    func label(at index: Int) -> Int? { index % 3 }
    func image(at index: Int) throws -> Image {
        if broken.contains(index) { throw DatasetError.unreadableImage(name: sampleName(at: index), reason: "broken on purpose") }
        return patternImage(width: width, height: height, channels: 3, seed: index)
    }
    func sampleName(at index: Int) -> String { "synthetic/\(index).png" }
}
