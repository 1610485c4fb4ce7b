import XCTest
@testable import ImageKit

/// `ImagePreprocessor` against timm's eval transform computed with Pillow + numpy float32.
final class PreprocessorTests: XCTestCase {
    private let imagenetMean: [Float] = [0.485, 0.456, 0.406]
    private let imagenetStd: [Float] = [0.229, 0.224, 0.225]

    private func check(_ tensor: [Float], expected name: String) throws {
        let expected = try Fixtures.floats(name)
        XCTAssertEqual(tensor.count, expected.count, name)
        let maxDiff = zip(tensor, expected).map { abs($0 - $1) }.max() ?? .infinity
        print("preprocess vs Pillow/numpy \(name): max abs diff \(maxDiff)")
        XCTAssertLessThanOrEqual(maxDiff, 1e-6, name)
    }

    func testRGBWithCropPct() throws {
        let pre = ImagePreprocessor(imageSize: 64, channels: 3, mean: imagenetMean, std: imagenetStd, cropPct: 0.875)
        XCTAssertEqual(pre.resizeSize, 73)
        try check(pre.tensorCHW(ImageDecoder.decode(Fixtures.bytes("rgb.png"))), expected: "preprocess_rgb_64.f32")
    }

    func testGray28For32PixelModel() throws {
        let pre = ImagePreprocessor(imageSize: 32, channels: 1, mean: [0.2860], std: [0.3530])
        try check(pre.tensorCHW(ImageDecoder.decode(Fixtures.bytes("gray28.png"))), expected: "preprocess_gray28_32.f32")
    }

    /// An RGB image fed to a 1-channel model is converted with PIL's 'L' formula first.
    func testRGBImageForGrayModel() throws {
        let pre = ImagePreprocessor(imageSize: 32, channels: 1, mean: [0.5], std: [0.5])
        try check(pre.tensorCHW(ImageDecoder.decode(Fixtures.bytes("rgb.png"))), expected: "preprocess_rgb_as_gray_32.f32")
    }

    /// The 224 pipeline on a real photo, checked through the uint8 crop Pillow produced (the
    /// float32 tensor itself would be a 600 kB fixture); the float step is covered above.
    func testPhoto224MatchesPillowCrop() throws {
        let pre = ImagePreprocessor(imageSize: 224, channels: 3, mean: imagenetMean, std: imagenetStd, cropPct: 0.875)
        let photo = try ImageDecoder.decode(Fixtures.bytes("photo_512x384.jpg"))
        let crop = try Fixtures.expected("photo_resize256_crop224.png")
        let tensor = pre.tensorCHW(photo)
        var worst: Float = 0
        for c in 0..<3 {
            for i in 0..<(224 * 224) {
                let expected = (Float(crop.pixels[i * 3 + c]) / 255 - imagenetMean[c]) / imagenetStd[c]
                worst = max(worst, abs(tensor[c * 224 * 224 + i] - expected))
            }
        }
        print("preprocess photo 224 vs Pillow crop: max abs diff \(worst)")
        XCTAssertLessThanOrEqual(worst, 1e-6)
    }

    /// cropPct > 1: the resized image is smaller than the crop, and torchvision pads with zeros.
    func testCropLargerThanImagePadsLikeTorchvision() {
        let pre = ImagePreprocessor(imageSize: 8, channels: 1, mean: [0], std: [1], cropPct: 2.0)
        let tensor = pre.tensorCHW(Image(width: 4, height: 6, channels: 1, fill: 255))  // resized to 4x6
        // torchvision pads left (8-4)//2 = 2, top (8-6)//2 = 1.
        for y in 0..<8 {
            for x in 0..<8 {
                let inside = (2..<6).contains(x) && (1..<7).contains(y)
                XCTAssertEqual(tensor[y * 8 + x], inside ? 1 : 0, "(\(x), \(y))")
            }
        }
    }

    func testShorterSideRule() {
        XCTAssertEqual(ImagePreprocessor.shorterSideSize(width: 500, height: 375, shorter: 256).width, 341)
        XCTAssertEqual(ImagePreprocessor.shorterSideSize(width: 375, height: 500, shorter: 256).height, 341)
        XCTAssertEqual(ImagePreprocessor.shorterSideSize(width: 28, height: 28, shorter: 32).width, 32)
    }
}
