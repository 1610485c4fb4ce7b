import Foundation
import ImageKit
import Objectives
import ViT

/// Something about a request's image that the model was not trained for: in every embeddings,
/// classifications and reconstructions answer (`warnings`), never a reason to refuse the image.
struct InputWarning: Codable, Equatable, Sendable {
    var code: String
    var message: String

    /// Every code a warning may carry (openapi.yaml: Warning.code).
    enum Code: String, CaseIterable {
        case convertedToGrayscale = "converted_to_grayscale"
        case grayscaleToRGB = "grayscale_to_rgb"
        case alphaDropped = "alpha_dropped"
        case upscaled
        case cropped
        case outOfDistribution = "out_of_distribution"
    }

    init(_ code: Code, _ message: String) { self.code = code.rawValue; self.message = message }
}

/// What a model directory says it was made for (config.json `intended_input`, optional).
public struct IntendedInput: Codable, Sendable, Equatable {
    public var channels: Int?
    /// Side in pixels of the images it was trained on.
    public var size: Int?
    /// The kind of images, in words ("Fashion-MNIST garments: ...").
    public var domain: String?

    /// The `intended_input` object of a config.json, nil when absent. A malformed one throws.
    static func read(_ directory: URL) throws -> IntendedInput? {
        struct Config: Decodable {
            var intendedInput: IntendedInput?
            enum CodingKeys: String, CodingKey { case intendedInput = "intended_input" }
        }
        let data = try Data(contentsOf: directory.appendingPathComponent("config.json"))
        return try JSONDecoder().decode(Config.self, from: data).intendedInput
    }
}

/// A model's out-of-distribution scores for one image: the percentile of its masked-patch
/// reconstruction error among the calibration images (held-out images of the training data) and,
/// where the calibration has a feature bank, the percentile of its embedding's k-th-nearest-neighbour
/// distance to the training images (`featureSpace`), which then decides the warning.
struct OODScore: Codable, Equatable, Sendable {
    /// 0...100: the share of calibration images that reconstruct better.
    var percentile: Double
    /// This image's masked-patch MSE ([0, 1] pixel units), averaged over the protocol's masks.
    var maskedPatchMSE: Double
    /// The model whose pixel decoder measured it (this one, or a sibling with the same encoder).
    var referenceModel: String
    var calibrationImages: Int
    /// The feature-space score, measured with the reference model's encoder and bank.
    var featureSpace: FeatureScore?

    struct FeatureScore: Codable, Equatable, Sendable {
        /// 0...100: the share of held-out images whose embeddings lie nearer to the bank.
        var percentile: Double
        /// The distance from the L2-normalised embedding to its k-th nearest bank embedding (0...2).
        var distance: Double
        var k: Int
        var bankImages: Int
        var calibrationImages: Int

        enum CodingKeys: String, CodingKey {
            case percentile, distance, k, bankImages = "bank_images", calibrationImages = "calibration_images"
        }
    }

    enum CodingKeys: String, CodingKey {
        case percentile, maskedPatchMSE = "masked_patch_mse", referenceModel = "reference_model", calibrationImages = "calibration_images"
        case featureSpace = "feature_space"
    }

    /// From this percentile on, an answer warns that the image is out of distribution. The feature
    /// score warns on its upper tail only (a small distance is a typical image). Without a feature
    /// score, the reconstruction percentile warns on both tails, since a plain or smooth image
    /// reconstructs unusually well; with one, the reconstruction percentile is reported but does not
    /// warn: on Fashion-MNIST its tails flagged 2.0% of held-out garments and missed 33% of photos and
    /// synthetic images, the feature score's 1.4% and 7% (README, "What the out-of-distribution score catches").
    static let warningPercentile = 99.0

    /// Which score raises the warning (`/v1/models` says it): the feature score where the calibration has one.
    static func warningScore(withFeatureSpace: Bool) -> String { withFeatureSpace ? "feature_space" : "masked_patch_mse" }

    var warning: InputWarning? {
        if let f = featureSpace {
            guard f.percentile >= Self.warningPercentile else { return nil }
            return InputWarning(.outOfDistribution, String(format: "the image's embedding lies farther from the model's training images "
                + "(distance %.3f to its %@ nearest of %d) than %.1f%% of %d held-out images of the training data do (measured by %@): "
                + "it is probably unlike what the model was trained on", f.distance, Self.ordinal(f.k), f.bankImages, f.percentile,
                f.calibrationImages, referenceModel))
        }
        // The reconstruction error measures how predictable the masked patches are, not what the image
        // shows: the message says what was measured, and how coarse a percentile of few images is.
        let coarse = calibrationImages < 100 ? String(format: "; with %d calibration images about 1 in %d of the model's own images lands here", calibrationImages, calibrationImages + 1) : ""
        if percentile >= Self.warningPercentile {
            return InputWarning(.outOfDistribution, String(format: "the image's masked patches reconstruct worse than those of %.1f%% of %d held-out images "
                + "of the model's training data (masked-patch MSE %.4f, measured by %@): it may be unlike what the model was trained on%@",
                percentile, calibrationImages, maskedPatchMSE, referenceModel, coarse))
        }
        if percentile <= 100 - Self.warningPercentile {
            return InputWarning(.outOfDistribution, String(format: "the image's masked patches reconstruct better than those of %.1f%% of %d held-out images "
                + "of the model's training data (masked-patch MSE %.4f, measured by %@): it is unusually plain for this model and may be unlike "
                + "what it was trained on%@", 100 - percentile, calibrationImages, maskedPatchMSE, referenceModel, coarse))
        }
        return nil
    }

    /// The scores as a PNG answer's headers: `X-OOD-Percentile` (reconstruction) and, with a feature
    /// score, `X-OOD-Feature-Percentile`.
    var headers: [(String, String)] {
        [("X-OOD-Percentile", String(format: "%.1f", percentile))]
            + (featureSpace.map { [("X-OOD-Feature-Percentile", String(format: "%.1f", $0.percentile))] } ?? [])
    }

    static func ordinal(_ n: Int) -> String {
        let suffix = (11...13).contains(n % 100) ? "th" : ([1: "st", 2: "nd", 3: "rd"][n % 10] ?? "th")
        return "\(n)\(suffix)"
    }
}

/// One decoded request image as model input, with what was done to it on the way.
struct PreparedImage {
    var tensor: [Float]
    var warnings: [InputWarning]
}

enum InputChecks {
    /// Resizes up to this factor pass silently.
    static let maxUpscale = 2.0

    /// The conversions the preprocessor applies to `image` (decoded from `bytes`) that take it away
    /// from what the model saw in training. `cropShare`: the share of the image's area that the
    /// center crop may cut away for its aspect ratio before it is worth a warning.
    static func warnings(image: Image, bytes: [UInt8], preprocessor p: ImagePreprocessor, cropShare: Double) -> [InputWarning] {
        var out: [InputWarning] = []
        if p.channels == 1 && image.channels == 3 && isColourful(image) {
            out.append(InputWarning(.convertedToGrayscale, "the model takes grayscale images; this colour image was converted to gray"))
        } else if p.channels == 3 && image.channels == 1 {
            out.append(InputWarning(.grayscaleToRGB, "the model takes colour images; this grayscale image was copied into all three channels"))
        }
        if AlphaProbe.hasAlpha(bytes) {
            out.append(InputWarning(.alphaDropped, "the image has an alpha channel; transparency was dropped (transparent pixels keep their stored colour)"))
        }
        let short = min(image.width, image.height), long = max(image.width, image.height)
        let factor = Double(p.resizeSize) / Double(short)
        if factor > maxUpscale {
            out.append(InputWarning(.upscaled, String(format: "the image (%d×%d) was upscaled %.1f× to the model's %d px: the model sees interpolated pixels",
                                                      image.width, image.height, factor, p.imageSize)))
        }
        let lost = 1 - Double(short) / Double(long)
        if lost > cropShare {
            out.append(InputWarning(.cropped, String(format: "the model sees a square center crop: %.0f%% of this %d×%d image was cut away",
                                                     100 * lost, image.width, image.height)))
        }
        return out
    }

    /// Whether an RGB image holds colour: more than 0.5% of its pixels have channels more than 24 apart
    /// (a gray image stored as RGB, or JPEG chroma noise, is not colour).
    static func isColourful(_ image: Image) -> Bool {
        guard image.channels == 3 else { return false }
        let pixels = image.width * image.height
        var coloured = 0
        image.pixels.withUnsafeBufferPointer { px in
            for i in 0..<pixels {
                let r = Int(px[3 * i]), g = Int(px[3 * i + 1]), b = Int(px[3 * i + 2])
                if max(r, g, b) - min(r, g, b) > 24 { coloured += 1 }
            }
        }
        return coloured * 200 > pixels
    }
}
