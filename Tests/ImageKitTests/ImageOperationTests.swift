import XCTest
@testable import ImageKit

final class ImageOperationTests: XCTestCase {
    func testPNGEncodeDecodeRoundTrip() throws {
        for file in ["rgb.png", "gray.png", "rgb_baseline_q90.jpg"] {
            let image = try ImageDecoder.decode(Fixtures.bytes(file))
            assertSameImage(try ImageDecoder.decode(PNGEncoder.encode(image)), image, file)
        }
        let tiny = Image(width: 1, height: 1, channels: 3, pixels: [1, 2, 3])
        XCTAssertEqual(try ImageDecoder.decode(PNGEncoder.encode(tiny)), tiny)
    }

    func testToGrayMatchesPillowConvertL() throws {
        let gray = try ImageDecoder.decode(Fixtures.bytes("rgb.png")).toGray()
        assertSameImage(gray, try Fixtures.expected("rgb_to_gray.png"), "toGray")
    }

    func testToRGBReplicatesGray() {
        let rgb = Image(width: 2, height: 1, channels: 1, pixels: [7, 9]).toRGB()
        XCTAssertEqual(rgb.pixels, [7, 7, 7, 9, 9, 9])
    }

    /// torchvision: top = int(round((h - th) / 2.0)) with Python's round-half-to-even.
    func testCenterCropRounding() {
        let image = Image(width: 1, height: 9, channels: 1, pixels: Array(0..<9))
        XCTAssertEqual(image.centerCropped(width: 1, height: 4).pixels, [2, 3, 4, 5])  // 2.5 -> 2
        XCTAssertEqual(image.centerCropped(width: 1, height: 6).pixels, [2, 3, 4, 5, 6, 7])  // 1.5 -> 2
        XCTAssertEqual(image.centerCropped(width: 1, height: 8).pixels, Array(0..<8))  // 0.5 -> 0
        XCTAssertEqual(image.centerCropped(width: 1, height: 3).pixels, [3, 4, 5])
    }

    func testHStackAndNearestUpscale() {
        let a = Image(width: 2, height: 2, channels: 1, pixels: [1, 2, 3, 4])
        let b = Image(width: 1, height: 1, channels: 3, pixels: [9, 8, 7])
        let strip = Image.hstack([a, b], gap: 1, background: 255)
        XCTAssertEqual([strip.width, strip.height, strip.channels], [4, 2, 3])
        XCTAssertEqual(strip.pixels, [1, 1, 1, 2, 2, 2, 255, 255, 255, 9, 8, 7,
                                      3, 3, 3, 4, 4, 4, 255, 255, 255, 255, 255, 255])
        XCTAssertEqual(a.upscaledNearest(factor: 2).pixels, [1, 1, 2, 2,
                                                            1, 1, 2, 2,
                                                            3, 3, 4, 4,
                                                            3, 3, 4, 4])
    }
}
