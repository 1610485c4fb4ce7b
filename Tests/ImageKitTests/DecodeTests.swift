import XCTest
@testable import ImageKit

/// Every valid fixture decodes to Pillow's pixels (`Image.open(f).convert('RGB' or 'L')`).
final class DecodeTests: XCTestCase {
    /// The PNG decoder must be exact: the expected files of all other tests are read with it.
    /// The expected files are 8-bit gray/RGB PNGs Pillow wrote from its decode, so each pair
    /// crosses two encodings (16-bit vs 8-bit, palette vs RGB, ...) of the same pixels.
    func testPNGsMatchPillowExactly() throws {
        let cases: [(file: String, channels: Int)] = [
            ("rgb.png", 3), ("interlaced.png", 3), ("gray.png", 1), ("gray_alpha.png", 1), ("rgba.png", 3),
            ("palette_trns.png", 3), ("palette_4bit.png", 3), ("gray_1bit.png", 1), ("rgb16.png", 3),
            ("gray16.png", 1),  // expected = high byte; Pillow itself clips I;16 (see README)
        ]
        for (file, channels) in cases {
            let image = try ImageDecoder.decode(Fixtures.bytes(file))
            XCTAssertEqual(image.channels, channels, file)
            assertSameImage(image, try Fixtures.decodedByPillow(file), "\(file) vs Pillow")
        }
    }

    /// An anchor independent of our own decoder: values numpy printed for Pillow's decode.
    func testPNGDecodeMatchesKnownValues() throws {
        let rgb = try ImageDecoder.decode(Fixtures.bytes("rgb.png"))
        XCTAssertEqual([rgb.width, rgb.height, rgb.channels], [96, 80, 3])
        XCTAssertEqual((0..<3).map { rgb[x: 0, y: 0, channel: $0] }, [152, 141, 126])
        XCTAssertEqual((0..<3).map { rgb[x: 95, y: 79, channel: $0] }, [43, 22, 4])
        XCTAssertEqual((0..<3).map { rgb[x: 50, y: 40, channel: $0] }, [157, 124, 85])
        XCTAssertEqual(rgb.pixels.reduce(0) { $0 + Int($1) }, 2_937_031)
        let gray = try ImageDecoder.decode(Fixtures.bytes("gray.png"))
        XCTAssertEqual([gray.width, gray.height, gray.channels], [96, 80, 1])
        XCTAssertEqual(gray[x: 0, y: 0, channel: 0], 130)
        XCTAssertEqual(gray[x: 95, y: 79, channel: 0], 135)
        XCTAssertEqual(gray.pixels.reduce(0) { $0 + Int($1) }, 762_877)
    }

    /// Tolerance: mean abs difference <= 1/255 (of the 0...255 range: <= 1.0 in byte units)
    /// and max <= 2. We link Debian's libjpeg-turbo 2.1.5, Pillow's wheel bundles 3.x; both use
    /// the same integer IDCT and fancy upsampling, so the pixels are expected to be identical,
    /// but the tolerance allows a rounding difference between versions or SIMD paths.
    /// Measured: 0 difference on every file (exact).
    func testJPEGsMatchPillow() throws {
        let cases: [(file: String, channels: Int)] = [
            ("rgb_baseline_q90.jpg", 3), ("rgb_progressive.jpg", 3), ("gray.jpg", 1), ("photo_512x384.jpg", 3),
            ("cmyk.jpg", 3),  // an Adobe CMYK JPEG, converted to RGB as Pillow's convert('RGB') does
        ]
        for (file, channels) in cases {
            let image = try ImageDecoder.decode(Fixtures.bytes(file))
            let expected = try Fixtures.decodedByPillow(file)
            XCTAssertEqual(image.channels, channels, file)
            let mad = meanAbsoluteDifference(image, expected)
            let maxDiff = maxAbsoluteDifference(image, expected)
            print("JPEG decode vs Pillow \(file): mean abs diff \(mad), max \(maxDiff)")
            XCTAssertLessThanOrEqual(mad, 1.0, file)
            XCTAssertLessThanOrEqual(maxDiff, 2, file)
        }
    }

    /// `minimumSide` decodes a JPEG at 1/2, 1/4 or 1/8 (libjpeg's DCT scaling) while the shorter side
    /// keeps that many pixels: the pixels are Pillow's draft-mode decode at the same scale
    /// (tools/reference/make_scaled_jpeg_fixtures.py), within the tolerance of the full-size test
    /// (measured: exact). The scale stops before the side would drop below it; a PNG ignores it.
    func testJPEGsScaleWhileDecodingAsPillowsDraftMode() throws {
        let photo = try Fixtures.bytes("photo_512x384.jpg")   // 512×384
        for (minimumSide, denominator) in [(96, 4), (48, 8), (20, 8)] {
            let image = try ImageDecoder.decode(photo, minimumSide: minimumSide)
            let expected = try Fixtures.expected("photo_512x384_jpg_draft\(denominator).png")
            XCTAssertEqual([image.width, image.height], [512 / denominator, 384 / denominator], "minimumSide \(minimumSide)")
            let (mad, maxDiff) = (meanAbsoluteDifference(image, expected), maxAbsoluteDifference(image, expected))
            print("JPEG decode at 1/\(denominator) vs Pillow draft: mean abs diff \(mad), max \(maxDiff)")
            XCTAssertLessThanOrEqual(mad, 1.0, "1/\(denominator)")
            XCTAssertLessThanOrEqual(maxDiff, 2, "1/\(denominator)")
        }
        // 1/2 would leave 192 rows, 1/4 96: with 97 wanted only 1/2 is allowed; with 385, none.
        XCTAssertEqual(try ImageDecoder.decode(photo, minimumSide: 97).width, 256)
        XCTAssertEqual(try ImageDecoder.decode(photo, minimumSide: 385).width, 512)
        XCTAssertEqual(try ImageDecoder.decode(photo, minimumSide: 0).width, 512)
        let png = try Fixtures.bytes("rgb.png")
        assertSameImage(try ImageDecoder.decode(png, minimumSide: 10), try ImageDecoder.decode(png), "a PNG decodes whole")
        // The pixel limit is the file's own, not the scaled output's.
        XCTAssertThrowsError(try ImageDecoder.decode(photo, maxPixels: 512 * 384 - 1, minimumSide: 48))
    }

    func testDataOverloadAndFormatSniffing() throws {
        let bytes = try Fixtures.bytes("gray.jpg")
        XCTAssertEqual(try ImageDecoder.decode(Data(bytes)), try ImageDecoder.decode(bytes))
        XCTAssertEqual(bytes.withUnsafeBytes { ImageFormat.sniff($0) }, .jpeg)
        XCTAssertEqual(try Fixtures.bytes("rgb.png").withUnsafeBytes { ImageFormat.sniff($0) }, .png)
        XCTAssertNil(try Fixtures.bytes("text.txt").withUnsafeBytes { ImageFormat.sniff($0) })
    }
}
