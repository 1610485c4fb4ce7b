import XCTest
@testable import ImageKit

/// EXIF orientation 1...8 gives the same pixels as Pillow's `ImageOps.exif_transpose`.
final class OrientationTests: XCTestCase {
    func testAllEightJPEGOrientationsMatchPillow() throws {
        for value in 1...8 {
            let image = try ImageDecoder.decode(Fixtures.bytes("orient_\(value).jpg"))
            assertSameImage(image, try Fixtures.decodedByPillow("orient_\(value).jpg"), "orientation \(value)")
            XCTAssertEqual(image.width, value >= 5 ? 32 : 48, "orientation \(value)")
        }
    }

    func testPNGWithEXIFChunk() throws {
        let image = try ImageDecoder.decode(Fixtures.bytes("orient_6.png"))
        assertSameImage(image, try Fixtures.decodedByPillow("orient_6.png"), "orient_6.png")
    }

    func testOrientationCanBeLeftAlone() throws {
        let raw = try ImageDecoder.decode(Fixtures.bytes("orient_6.jpg"), applyOrientation: false)
        assertSameImage(raw, try Fixtures.decodedByPillow("orient_1.jpg"), "orient_6.jpg unrotated")
    }

    /// On a 3x2 image with distinct values, each orientation is the documented mirror/rotation.
    func testTransformsOnATinyImage() {
        let image = Image(width: 3, height: 2, channels: 1, pixels: [1, 2, 3,
                                                                    4, 5, 6])
        let expected: [Int: (Int, [UInt8])] = [
            1: (3, [1, 2, 3, 4, 5, 6]),
            2: (3, [3, 2, 1, 6, 5, 4]),
            3: (3, [6, 5, 4, 3, 2, 1]),
            4: (3, [4, 5, 6, 1, 2, 3]),
            5: (2, [1, 4, 2, 5, 3, 6]),
            6: (2, [4, 1, 5, 2, 6, 3]),
            7: (2, [6, 3, 5, 2, 4, 1]),
            8: (2, [3, 6, 2, 5, 1, 4]),
        ]
        for (value, (width, pixels)) in expected {
            let out = image.applyingEXIFOrientation(value)
            XCTAssertEqual(out.width, width, "orientation \(value)")
            XCTAssertEqual(out.pixels, pixels, "orientation \(value)")
        }
        XCTAssertEqual(image.applyingEXIFOrientation(0), image)
        XCTAssertEqual(image.applyingEXIFOrientation(9), image)
    }
}
