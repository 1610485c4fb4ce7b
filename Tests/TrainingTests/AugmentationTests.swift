import Foundation
import ImageKit
import Tensor
import XCTest
@testable import Training

final class AugmentationTests: XCTestCase {
    func testRandomResizedCropIsDeterministicAndSized() {
        let crop = RandomResizedCrop(size: 16)
        for (w, h, c) in [(40, 30, 3), (9, 13, 1), (16, 16, 3), (100, 20, 1)] {
            let image = patternImage(width: w, height: h, channels: c, seed: w)
            var a = SeededRandom(seed: 7), b = SeededRandom(seed: 7)
            let first = crop(image, using: &a), second = crop(image, using: &b)
            XCTAssertEqual(first, second)
            XCTAssertEqual([first.width, first.height, first.channels], [16, 16, c])
            XCTAssertEqual(a, b)
        }
        // Different seeds give different crops (of a textured image).
        let image = patternImage(width: 64, height: 48, channels: 3, seed: 3)
        let crops = Set((0..<8).map { seed -> Image in
            var rng = SeededRandom(seed: UInt64(seed))
            return crop(image, using: &rng)
        })
        XCTAssertGreaterThan(crops.count, 6)
    }

    /// The box sampler over many draws: every box inside the image, area share and aspect ratio
    /// within the bounds (up to the rounding of w and h), both extremes reached, positions uniform.
    func testCropBoxStatisticsRespectScaleAndRatio() {
        let (width, height) = (200, 150)
        let crop = RandomResizedCrop(size: 32, scale: 0.2...1, ratio: 3.0 / 4...4.0 / 3)
        var rng = SeededRandom(seed: 42)
        var areas: [Double] = [], logRatios: [Double] = [], xs: [Double] = []
        for _ in 0..<20_000 {
            let box = crop.sampleBox(width: width, height: height, using: &rng)
            XCTAssert(box.x >= 0 && box.y >= 0 && box.width > 0 && box.height > 0
                      && box.x + box.width <= width && box.y + box.height <= height, "\(box)")
            let area = Double(box.width * box.height) / Double(width * height)
            let ratio = Double(box.width) / Double(box.height)
            // w and h are each rounded: allow their ±0.5 px.
            let slackW = 0.5 / Double(box.width), slackH = 0.5 / Double(box.height)
            XCTAssert(area >= 0.2 * (1 - slackW) * (1 - slackH) && area <= 1, "area \(area) of \(box)")
            XCTAssert(ratio >= 0.75 * (1 - slackW - slackH) && ratio <= 4.0 / 3 * (1 + slackW + slackH), "ratio \(ratio) of \(box)")
            areas.append(area); logRatios.append(log(ratio))
            if box.width < width { xs.append(Double(box.x) / Double(width - box.width)) }
        }
        XCTAssertLessThan(areas.min()!, 0.205)
        XCTAssertGreaterThan(areas.max()!, 0.97)
        XCTAssertLessThan(logRatios.min()!, log(0.76))
        XCTAssertGreaterThan(logRatios.max()!, log(1.32))
        // Areas are uniform in [0.2, 1] before rejection, but boxes taller or wider than the image
        // are redrawn. Means of 200,000 draws of a Python transcription of torchvision's get_params
        // for this image: area share 0.4964, log(w/h) 0.0372.
        let meanArea = areas.reduce(0, +) / Double(areas.count)
        let meanLogRatio = logRatios.reduce(0, +) / Double(logRatios.count)
        XCTAssertEqual(meanArea, 0.4964, accuracy: 0.006)
        XCTAssertEqual(meanLogRatio, 0.0372, accuracy: 0.004)
        // The relative position is uniform on [0, 1].
        let meanX = xs.reduce(0, +) / Double(xs.count)
        XCTAssertEqual(meanX, 0.5, accuracy: 0.02)
    }

    func testCropFallsBackToTheCentre() {
        // An area above the image's can never fit: the fallback is torchvision's centre crop.
        let impossible = RandomResizedCrop(size: 8, scale: 2...3)
        var rng = SeededRandom(seed: 1)
        XCTAssertEqual(impossible.sampleBox(width: 100, height: 50, using: &rng), CropBox(x: 16, y: 0, width: 67, height: 50))
        XCTAssertEqual(impossible.sampleBox(width: 30, height: 100, using: &rng), CropBox(x: 0, y: 30, width: 30, height: 40))
        XCTAssertEqual(impossible.sampleBox(width: 40, height: 45, using: &rng), CropBox(x: 0, y: 0, width: 40, height: 45))
    }

    func testHorizontalFlip() {
        let image = Image(width: 3, height: 2, channels: 3, pixels: Array(0..<18))
        XCTAssertEqual(image.flippedHorizontally().pixels, [6, 7, 8, 3, 4, 5, 0, 1, 2, 15, 16, 17, 12, 13, 14, 9, 10, 11])
        let gray = Image(width: 3, height: 1, channels: 1, pixels: [1, 2, 3])
        XCTAssertEqual(gray.flippedHorizontally().pixels, [3, 2, 1])

        var rng = SeededRandom(seed: 5)
        XCTAssertEqual(HorizontalFlip(p: 0)(image, using: &rng), image)
        XCTAssertEqual(HorizontalFlip(p: 1)(image, using: &rng), image.flippedHorizontally())
        let flips = (0..<2000).filter { _ in HorizontalFlip(p: 0.5)(image, using: &rng) != image }.count
        XCTAssertEqual(Double(flips) / 2000, 0.5, accuracy: 0.05)
    }

    /// The training path's normalization equals ImageKit's eval preprocessor on an image already at
    /// the target size (i.e. the preprocessor's resize is the identity there), for gray and RGB.
    func testTrainAndEvalTransformsAgreeAtTheTargetSize() {
        let identity = Augment(crop: RandomResizedCrop(size: 20, scale: 1...1, ratio: 1...1), flip: nil)
        for channels in [1, 3] {
            let mean: [Float] = channels == 1 ? [0.286] : [0.485, 0.456, 0.406]
            let std: [Float] = channels == 1 ? [0.353] : [0.229, 0.224, 0.225]
            let image = patternImage(width: 20, height: 20, channels: 3, seed: 11)
            let train = SampleTransform(channels: channels, imageSize: 20, mean: mean, std: std, augment: identity)
            let eval = SampleTransform(channels: channels, imageSize: 20, mean: mean, std: std, augment: nil)
            var rng = SeededRandom(seed: 0)
            let a = train.apply(image, using: &rng), b = eval.apply(image, using: &rng)
            XCTAssertEqual(a.count, channels * 400)
            XCTAssertEqual(a, b)
            XCTAssertEqual(b, ImagePreprocessor(imageSize: 20, channels: channels, mean: mean, std: std).tensorCHW(image))
            // Known value: first pixel, first channel.
            let first = channels == 1 ? image.toGray()[x: 0, y: 0, channel: 0] : image[x: 0, y: 0, channel: 0]
            XCTAssertEqual(a[0], (Float(first) / 255 - mean[0]) / std[0])
        }
    }

    func testAugmentedTransformUsesTheModelChannels() {
        let augment = Augment(size: 12)
        let gray = patternImage(width: 28, height: 28, channels: 1, seed: 1)
        let transform = SampleTransform(channels: 3, imageSize: 12, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], augment: augment)
        var rng = SeededRandom(seed: 3)
        let floats = transform.apply(gray, using: &rng)
        XCTAssertEqual(floats.count, 3 * 144)
        // Gray copied to R, G, B: the three planes are equal.
        XCTAssertEqual(Array(floats[0..<144]), Array(floats[144..<288]))
        XCTAssertEqual(Array(floats[0..<144]), Array(floats[288..<432]))
        XCTAssert(floats.allSatisfy { (-1...1).contains($0) })
    }
}
