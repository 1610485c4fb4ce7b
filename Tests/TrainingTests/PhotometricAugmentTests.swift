import Foundation
import ImageKit
import Objectives
import Tensor
import XCTest
@testable import Training

/// `PhotometricAugment`: draws from the view's own stream (same stream → same output, a fixed
/// count of numbers whatever the probabilities), applied shares and factor ranges over many draws,
/// the blur's σ scaled to the view, one-channel no-ops, and its place in `SampleTransform` (after
/// the crop and flip, whose geometry it does not change).
final class PhotometricAugmentTests: XCTestCase {
    let rgb = patternImage(width: 16, height: 16, channels: 3, seed: 5)

    func testSameStreamSameOutputAndAFixedNumberOfDraws() {
        let specs: [PhotometricSpec] = [.ibotFirstGlobal, .ibotSecondGlobal, PhotometricSpec(),
                                        PhotometricSpec(brightness: 0.4, jitterProbability: 1, grayscaleProbability: 1, blurProbability: 1,
                                                        solarizeProbability: 1)]
        for spec in specs {
            let augment = PhotometricAugment(spec, viewSize: 16)
            for seed in UInt64(0)..<20 {
                var a = SeededRandom(seed: seed), b = SeededRandom(seed: seed), c = SeededRandom(seed: seed)
                XCTAssertEqual(augment(rgb, using: &a), augment(rgb, using: &b))
                for _ in 0..<12 { _ = c.next() }
                XCTAssertEqual(a, c, "12 numbers per view, applied or not")
            }
        }
        // Different streams give different views.
        let augment = PhotometricAugment(.ibotFirstGlobal, viewSize: 16)
        let outputs = Set((UInt64(0)..<10).map { seed -> Image in
            var rng = SeededRandom(seed: seed)
            return augment(rgb, using: &rng)
        })
        XCTAssertGreaterThan(outputs.count, 8)
    }

    /// Over many draws each op's applied share is its probability (±4σ of a binomial), the factors
    /// stay in torchvision's ranges with the right means, all 24 op orders occur about equally.
    func testAppliedSharesAndFactorRanges() {
        let n = 20_000
        for spec in [PhotometricSpec.ibotFirstGlobal, .ibotSecondGlobal] {
            let augment = PhotometricAugment(spec, viewSize: 28)
            var rng = SeededRandom(seed: 99)
            var (jitter, gray, blur, solarize) = (0, 0, 0, 0)
            var factorSums = [Double](repeating: 0, count: 4)
            var orders: [[Int]: Int] = [:]
            for _ in 0..<n {
                let draw = augment.draw(using: &rng)
                if let (order, f) = draw.jitter {
                    jitter += 1
                    orders[order, default: 0] += 1
                    XCTAssert((0.6...1.4).contains(f[0]) && (0.6...1.4).contains(f[1]) && (0.8...1.2).contains(f[2])
                              && (-0.1...0.1).contains(f[3]), "\(f)")
                    for k in 0..<4 { factorSums[k] += Double(f[k]) }
                }
                if draw.grayscale { gray += 1 }
                if let sigma = draw.blurSigma {
                    blur += 1
                    XCTAssert((Float(0.1 * 28 / 224)...Float(2.0 * 28 / 224)).contains(sigma), "σ \(sigma)")
                }
                if draw.solarize { solarize += 1 }
            }
            func check(_ count: Int, _ p: Double, _ what: String) {
                let tolerance = 4 * (p * (1 - p) / Double(n)).squareRoot()
                XCTAssertEqual(Double(count) / Double(n), p, accuracy: max(tolerance, 1e-12), what)
            }
            check(jitter, spec.jitterProbability, "jitter")
            check(gray, spec.grayscaleProbability, "grayscale")
            check(blur, spec.blurProbability, "blur")
            check(solarize, spec.solarizeProbability, "solarize")
            for (k, mean) in [1.0, 1, 1, 0].enumerated() {
                XCTAssertEqual(factorSums[k] / Double(jitter), mean, accuracy: 0.01, "factor \(k)")
            }
            XCTAssertEqual(orders.count, 24)
            for (order, count) in orders {
                XCTAssertEqual(Double(count) / Double(jitter), 1.0 / 24, accuracy: 0.01, "\(order)")
            }
        }
    }

    /// iBOT's σ ~ U(0.1, 2) is in pixels of a 224-pixel crop: the same stream gives σ · size / 224.
    func testBlurSigmaScalesWithTheViewSize() {
        let spec = PhotometricSpec(blurProbability: 1)
        for seed in UInt64(0)..<50 {
            var a = SeededRandom(seed: seed), b = SeededRandom(seed: seed)
            let full = PhotometricAugment(spec, viewSize: 224).draw(using: &a).blurSigma!
            let small = PhotometricAugment(spec, viewSize: 28).draw(using: &b).blurSigma!
            XCTAssert((0.1...2).contains(full))
            XCTAssertEqual(small, full * 28 / 224, accuracy: 1e-6)
        }
    }

    /// Gray images: saturation, hue and grayscale do nothing; brightness, contrast, blur and
    /// solarization apply.
    func testOneChannelImages() {
        let gray = patternImage(width: 12, height: 12, channels: 1, seed: 3)
        let colourOnly = PhotometricAugment(PhotometricSpec(saturation: 0.5, hue: 0.5, jitterProbability: 1, grayscaleProbability: 1),
                                            viewSize: 12)
        var rng = SeededRandom(seed: 1)
        for _ in 0..<20 { XCTAssertEqual(colourOnly(gray, using: &rng), gray) }
        for spec in [PhotometricSpec(brightness: 0.4, jitterProbability: 1), PhotometricSpec(contrast: 0.4, jitterProbability: 1),
                     PhotometricSpec(blurProbability: 1, blurSigma: 1...2), PhotometricSpec(solarizeProbability: 1)] {
            var rng = SeededRandom(seed: 2)
            let out = PhotometricAugment(spec, viewSize: 224)(gray, using: &rng)
            XCTAssertEqual(out.channels, 1)
            XCTAssertNotEqual(out, gray, "\(spec)")
        }
    }

    /// A jitter op of strength 0 is skipped, as torchvision sets its factor to None: in particular
    /// no HSV round trip (which is lossy) when hue is 0.
    func testZeroStrengthOpsAreSkipped() {
        let noise = Image(width: 8, height: 8, channels: 3, pixels: (0..<192).map { UInt8(truncatingIfNeeded: $0 &* 97 &+ 13) })
        XCTAssertNotEqual(noise.shiftingHue(0), noise, "the round trip alone changes this image")
        let none = PhotometricAugment(PhotometricSpec(jitterProbability: 1), viewSize: 8)
        var rng = SeededRandom(seed: 4)
        XCTAssertEqual(none(noise, using: &rng), noise)
    }

    /// In `SampleTransform` the photometric step follows the crop and flip on the same stream; with
    /// every probability 0 the output is exactly the transform without it (same crops).
    func testSampleTransformStep() {
        let image = patternImage(width: 30, height: 24, channels: 3, seed: 8)
        let (mean, std): ([Float], [Float]) = ([0.5, 0.4, 0.3], [0.2, 0.25, 0.3])
        let augment = Augment(size: 12)
        let plain = SampleTransform(channels: 3, imageSize: 12, mean: mean, std: std, augment: augment)
        let off = SampleTransform(channels: 3, imageSize: 12, mean: mean, std: std, augment: augment,
                                  photometric: PhotometricSpec(brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1))
        let on = SampleTransform(channels: 3, imageSize: 12, mean: mean, std: std, augment: augment, photometric: .ibotSecondGlobal)
        XCTAssertNil(plain.photometric)
        XCTAssertEqual(on.photometric, PhotometricAugment(.ibotSecondGlobal, viewSize: 12))
        var changed = 0
        for seed in UInt64(0)..<10 {
            var a = SeededRandom(seed: seed), b = SeededRandom(seed: seed), c = SeededRandom(seed: seed)
            XCTAssertEqual(plain.apply(image, using: &a), off.apply(image, using: &b))
            // By hand: crop + flip, then the photometric step on the same stream, then normalize.
            var d = SeededRandom(seed: seed)
            let cropped = augment(image, using: &d)
            let expected = PhotometricAugment(.ibotSecondGlobal, viewSize: 12)(cropped, using: &d)
            let floats = on.apply(image, using: &c)
            XCTAssertEqual(c, d)
            for (i, value) in floats.enumerated() {
                let channel = i / 144, pixel = i % 144
                XCTAssertEqual(value, (Float(expected.pixels[pixel * 3 + channel]) / 255 - mean[channel]) / std[channel])
            }
            var e = SeededRandom(seed: seed)
            if floats != plain.apply(image, using: &e) { changed += 1 }
        }
        XCTAssertGreaterThan(changed, 5)
    }
}
