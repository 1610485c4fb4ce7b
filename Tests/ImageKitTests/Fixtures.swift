import Foundation
import XCTest
@testable import ImageKit

/// Files written by tools/reference/make_image_fixtures.py (see Tests/Fixtures/images/README.md).
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/images")

    static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: directory.appendingPathComponent(name)))
    }

    /// An expected result: a PNG written by Pillow, read with our own PNG decoder (whose exactness
    /// `DecodeTests` checks against PNGs with known content).
    static func expected(_ name: String) throws -> Image {
        try ImageDecoder.decode(bytes("expected/" + name))
    }

    /// Pillow's decode of input `file` (gray.png -> expected/gray_png.png).
    static func decodedByPillow(_ file: String) throws -> Image {
        try expected(file.replacingOccurrences(of: ".", with: "_") + ".png")
    }

    /// A raw little-endian float32 file.
    static func floats(_ name: String) throws -> [Float] {
        let raw = try bytes("expected/" + name)
        return stride(from: 0, to: raw.count, by: 4).map { i in
            Float(bitPattern: UInt32(raw[i]) | UInt32(raw[i + 1]) << 8 | UInt32(raw[i + 2]) << 16 | UInt32(raw[i + 3]) << 24)
        }
    }
}

/// Mean absolute difference in 0...255 units; asserts equal shapes first.
func meanAbsoluteDifference(_ a: Image, _ b: Image, file: StaticString = #filePath, line: UInt = #line) -> Double {
    XCTAssertEqual([a.width, a.height, a.channels], [b.width, b.height, b.channels], "shape", file: file, line: line)
    guard a.pixels.count == b.pixels.count, !a.pixels.isEmpty else { return .infinity }
    let total = zip(a.pixels, b.pixels).reduce(0) { $0 + abs(Int($1.0) - Int($1.1)) }
    return Double(total) / Double(a.pixels.count)
}

func maxAbsoluteDifference(_ a: Image, _ b: Image) -> Int {
    zip(a.pixels, b.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
}

/// Asserts identical images, reporting a summary instead of dumping every pixel.
func assertSameImage(_ a: Image, _ b: Image, _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
    guard a != b else { return }
    guard [a.width, a.height, a.channels] == [b.width, b.height, b.channels] else {
        return XCTFail("\(message): shape \(a.width)x\(a.height)x\(a.channels) vs \(b.width)x\(b.height)x\(b.channels)",
                       file: file, line: line)
    }
    let differing = zip(a.pixels, b.pixels).filter { $0 != $1 }.count
    XCTFail("\(message): \(differing) of \(a.pixels.count) bytes differ, max \(maxAbsoluteDifference(a, b))",
            file: file, line: line)
}
