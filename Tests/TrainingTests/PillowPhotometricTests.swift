import Foundation
import ImageKit
import Objectives
import TestSupport
import XCTest
@testable import Training

/// Each photometric op against Pillow / torchvision on fixed inputs and parameters
/// (Tests/Fixtures/augment, written by tools/reference/make_augment_fixtures.py): brightness,
/// contrast, saturation, hue, grayscale, Gaussian blur (several σ, also the scaled ones of 28- and
/// 32-pixel views), solarization and whole ColorJitter passes in a fixed order, on a photo crop,
/// random bytes (every hue branch) and a gray image.
///
/// Tolerance: 0 — every byte equal. The ops follow Pillow's integer and float32/float64 steps
/// (Blend.c, Convert.c, BoxBlur.c), so there is no rounding slack to allow for.
final class PillowPhotometricTests: XCTestCase {
    struct Case: Decodable {
        let input: String
        let op: String
        let value: Double?
        let order: [Int]?
        let factors: [Double]?
        let expected: String
    }

    struct Cases: Decodable { let cases: [Case] }

    func image(_ name: String) throws -> Image {
        try ImageDecoder.decode(Data(contentsOf: Fixtures.url("augment/\(name)")))
    }

    func apply(_ c: Case, to image: Image) -> Image {
        let v = Float(c.value ?? 0)
        switch c.op {
        case "brightness": return image.adjustingBrightness(v)
        case "contrast": return image.adjustingContrast(v)
        case "saturation": return image.adjustingSaturation(v)
        case "hue": return image.shiftingHue(v)
        case "grayscale": return image.grayscaledKeepingChannels()
        case "blur": return image.gaussianBlurred(radius: v)
        case "solarize": return image.solarized()
        case "jitter":
            let spec = PhotometricSpec(brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1, jitterProbability: 1)
            let draw = PhotometricAugment.Draw(jitter: (c.order!, c.factors!.map(Float.init)), grayscale: false, blurSigma: nil,
                                               solarize: false)
            return PhotometricAugment(spec, viewSize: image.width).apply(draw, to: image)
        default:
            XCTFail("unknown op \(c.op)")
            return image
        }
    }

    func testEveryOpMatchesPillowExactly() throws {
        let cases = try JSONDecoder().decode(Cases.self, from: Data(contentsOf: Fixtures.url("augment/cases.json"))).cases
        XCTAssertEqual(cases.count, 136)
        var worst: [String: Int] = [:]
        for c in cases {
            let input = try image(c.input), expected = try image(c.expected)
            let output = apply(c, to: input)
            XCTAssertEqual([output.width, output.height, output.channels], [expected.width, expected.height, expected.channels], c.expected)
            let diff = zip(output.pixels, expected.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
            worst[c.op] = max(worst[c.op] ?? 0, diff)
            XCTAssertEqual(diff, 0, "\(c.expected): max |Δ| = \(diff) levels, \(zip(output.pixels, expected.pixels).filter { $0 != $1 }.count) bytes differ")
        }
        XCTAssertEqual(Set(worst.keys), ["brightness", "contrast", "saturation", "hue", "grayscale", "blur", "solarize", "jitter"])
    }

    /// The fixtures exercise the ops: on RGB inputs every case changes the image except factor 1
    /// and the smallest blurs (σ ≤ 0.2 may leave a smooth 8-bit image unchanged); on gray inputs
    /// saturation, hue and grayscale are the identity (as in torchvision) and the rest are not.
    func testFixturesExerciseTheOps() throws {
        let cases = try JSONDecoder().decode(Cases.self, from: Data(contentsOf: Fixtures.url("augment/cases.json"))).cases
        for c in cases {
            let unchanged = try image(c.input) == image(c.expected)
            let identity = c.value == 1 && ["brightness", "contrast", "saturation"].contains(c.op)
                || (c.op == "blur" && c.value! <= Double(Float(0.2)))
                || (c.input.hasPrefix("gray") && ["saturation", "hue", "grayscale"].contains(c.op))
            if !identity { XCTAssertFalse(unchanged, "\(c.expected) equals its input") }
            if c.input.hasPrefix("gray") && ["saturation", "hue", "grayscale"].contains(c.op) {
                XCTAssertTrue(unchanged, "\(c.expected) should be the input")
            }
        }
    }
}
