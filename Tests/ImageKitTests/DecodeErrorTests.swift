import XCTest
@testable import ImageKit

/// Bad input gives the right `ImageError` (and no crash, exit or stderr noise from the C libraries).
final class DecodeErrorTests: XCTestCase {
    private func decodeError(_ file: String, maxPixels: Int = ImageDecoder.defaultMaxPixels) throws -> ImageError? {
        let bytes = try Fixtures.bytes(file)
        do {
            _ = try ImageDecoder.decode(bytes, maxPixels: maxPixels)
            return nil
        } catch {
            return error  // statically an ImageError: decode uses typed throws
        }
    }

    func testEmpty() throws {
        XCTAssertEqual(try decodeError("empty.bin"), .empty)
    }

    func testTextIsUnsupportedAndSaysWhatIsAccepted() throws {
        let error = try XCTUnwrap(decodeError("text.txt"))
        XCTAssertEqual(error, .unsupportedFormat(detected: "text, not image data"))
        XCTAssertTrue(error.description.contains("PNG, JPEG"), error.description)
    }

    func testOtherFormatsAreNamed() throws {
        let gif = Array("GIF89a".utf8) + [UInt8](repeating: 0, count: 20)
        XCTAssertThrowsError(try ImageDecoder.decode(gif)) { error in
            XCTAssertEqual(error as? ImageError, .unsupportedFormat(detected: "GIF"))
        }
        XCTAssertThrowsError(try ImageDecoder.decode([0x00, 0x01, 0xFE])) { error in
            XCTAssertEqual(error as? ImageError, .unsupportedFormat(detected: "unknown, starts with bytes 00 01 FE"))
        }
    }

    func testTruncatedJPEG() throws {
        guard case .truncated(let message) = try decodeError("truncated.jpg") else {
            return XCTFail("expected .truncated")
        }
        XCTAssertTrue(message.contains("truncated or corrupt JPEG"), message)
        XCTAssertTrue(message.contains("Premature end of JPEG file"), message)
    }

    func testCorruptJPEG() throws {
        guard case .corrupt(let message) = try decodeError("corrupt.jpg") else { return XCTFail("expected .corrupt") }
        XCTAssertTrue(message.contains("JPEG"), message)
    }

    func testTruncatedPNG() throws {
        guard case .truncated = try decodeError("truncated.png") else { return XCTFail("expected .truncated") }
    }

    /// The inverted IDAT bytes derail zlib/filter decoding before the chunk's CRC is checked.
    func testCorruptPNG() throws {
        guard case .corrupt(let message) = try decodeError("corrupt.png") else { return XCTFail("expected .corrupt") }
        XCTAssertFalse(message.isEmpty)
    }

    /// huge_header.png declares 50000x50000 and holds a 16-byte IDAT: reaching `.tooLarge` (and not
    /// `.truncated`/`.corrupt`, nor a 7.5 GB allocation) proves the check runs on the header alone.
    func testTooLargeFiresBeforeDecoding() throws {
        XCTAssertEqual(try decodeError("huge_header.png"), .tooLarge(width: 50000, height: 50000, limit: 40_000_000))
        // The same limit for JPEG: a 96x80 file against a 7000-pixel limit.
        XCTAssertEqual(try decodeError("rgb_baseline_q90.jpg", maxPixels: 7000), .tooLarge(width: 96, height: 80, limit: 7000))
        XCTAssertEqual(try decodeError("rgb.png", maxPixels: 7679), .tooLarge(width: 96, height: 80, limit: 7679))
        XCTAssertNil(try decodeError("rgb.png", maxPixels: 7680))
    }

    /// Every prefix of a valid file fails cleanly (or, for a PNG cut after the image data, decodes).
    func testEveryTruncationFailsCleanly() throws {
        for file in ["rgb_baseline_q90.jpg", "rgb_progressive.jpg", "gray.png", "cmyk.jpg"] {
            let bytes = try Fixtures.bytes(file)
            for length in stride(from: 1, to: bytes.count - 12, by: 97) {
                XCTAssertThrowsError(try ImageDecoder.decode(Array(bytes[..<length])), "\(file) cut at \(length)")
            }
        }
    }

    /// Random byte damage must end in an image or an ImageError, never a crash or an exit()
    /// from inside libpng/libjpeg. Deterministic (fixed-seed LCG) so failures reproduce.
    func testRandomDamageNeverCrashes() throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
        var outcomes = [String: Int]()
        for file in ["rgb_baseline_q90.jpg", "rgb_progressive.jpg", "gray.jpg", "orient_6.jpg", "rgb.png",
                     "palette_trns.png", "rgb16.png", "orient_6.png", "cmyk.jpg"] {
            let original = try Fixtures.bytes(file)
            for _ in 0..<150 {
                var bytes = original
                for _ in 0..<(1 + next(8)) { bytes[next(bytes.count)] = UInt8(next(256)) }
                do {
                    _ = try ImageDecoder.decode(bytes)
                    outcomes["decoded", default: 0] += 1
                } catch {
                    outcomes[caseName(error), default: 0] += 1
                }
            }
        }
        print("random damage outcomes: \(outcomes.sorted { $0.key < $1.key })")
        XCTAssertEqual(outcomes.values.reduce(0, +), 9 * 150)
    }

    private func caseName(_ error: ImageError) -> String {
        switch error {
        case .empty: "empty"
        case .unsupportedFormat: "unsupportedFormat"
        case .truncated: "truncated"
        case .corrupt: "corrupt"
        case .unsupportedColorSpace: "unsupportedColorSpace"
        case .tooLarge: "tooLarge"
        case .outOfMemory: "outOfMemory"
        case .encodingFailed: "encodingFailed"
        }
    }

    func testDescriptionsSayWhatToDo() {
        XCTAssertTrue(ImageError.tooLarge(width: 50000, height: 50000, limit: 40_000_000).description
            .contains("Downscale"))
        XCTAssertTrue(ImageError.truncated("x").description.contains("use the complete file"))
        XCTAssertTrue(ImageError.empty.description.contains("empty"))
    }
}
