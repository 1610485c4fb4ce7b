import ImageKit
import Objectives
import Tensor

/// A view's photometric augmentations (`PhotometricSpec`), in the order of iBOT's global crops
/// (bytedance/ibot main_ibot.py `DataAugmentationiBOT`): `RandomApply([ColorJitter(b, c, s, h)], p)`,
/// `RandomGrayscale(p)`, utils.py `GaussianBlur(p)` and `Solarization(p)`; applied to the 8-bit
/// crop after RandomResizedCrop and the flip, before normalization. Each op's pixels are Pillow's
/// (ColorAdjustments.swift, HueShift.swift, GaussianBlur.swift).
///
/// Deviation: iBOT blurs 224-pixel global crops (and 96-pixel local ones) with σ ~ U(0.1, 2)
/// pixels. On a small view that would smear most of the image away, so σ is scaled by
/// `viewSize / spec.blurReferenceSize` (a 28-pixel global view: σ in 0.0125…0.25; a 12-pixel
/// local view the same), keeping the blur's extent relative to the crop.
///
/// Randomness: every call draws the same 12 numbers from `rng`, applied or not, in this order:
/// jitter applied (u < p), the order of its four ops (a Fisher–Yates shuffle of 0…3 from the top,
/// standing in for torchvision's `torch.randperm(4)`), the brightness, contrast, saturation and hue
/// factors; grayscale applied; blur applied, σ; solarize applied. So a view depends only on its own
/// stream (seed, epoch, index, view) and resume stays exact.
public struct PhotometricAugment: Sendable, Equatable {
    public let spec: PhotometricSpec
    /// The side of the views it is applied to (scales the blur σ).
    public let viewSize: Int

    public init(_ spec: PhotometricSpec, viewSize: Int) {
        for p in [spec.jitterProbability, spec.grayscaleProbability, spec.blurProbability, spec.solarizeProbability] {
            precondition((0...1).contains(p), "PhotometricSpec: probabilities must be in 0...1")
        }
        precondition(spec.brightness >= 0 && spec.contrast >= 0 && spec.saturation >= 0, "PhotometricSpec: jitter strengths are ≥ 0")
        precondition((0...0.5).contains(spec.hue), "PhotometricSpec: hue is in 0...0.5")
        precondition(spec.blurSigma.lowerBound >= 0, "PhotometricSpec: blur σ is ≥ 0")
        precondition(viewSize > 0 && spec.blurReferenceSize > 0, "PhotometricAugment: view and blur reference sizes must be positive")
        self.spec = spec
        self.viewSize = viewSize
    }

    /// One draw of the random choices.
    public struct Draw: Sendable, Equatable {
        /// The jitter ops in order (0 brightness, 1 contrast, 2 saturation, 3 hue) with their factors
        /// (brightness, contrast, saturation, hue), or nil when jitter is not applied.
        public var jitter: (order: [Int], factors: [Float])?
        public var grayscale: Bool
        /// The blur's σ in pixels of this view (already scaled), or nil.
        public var blurSigma: Float?
        public var solarize: Bool

        public static func == (a: Draw, b: Draw) -> Bool {
            a.jitter?.order == b.jitter?.order && a.jitter?.factors == b.jitter?.factors && a.grayscale == b.grayscale
                && a.blurSigma == b.blurSigma && a.solarize == b.solarize
        }
    }

    public func draw(using rng: inout SeededRandom) -> Draw {
        let jitterOn = rng.uniform(in: 0...1) < spec.jitterProbability
        var order = [0, 1, 2, 3]
        for i in stride(from: 3, to: 0, by: -1) { order.swapAt(i, rng.below(i + 1)) }
        // torchvision `ColorJitter._check_input`: [max(0, 1 − x), 1 + x] and [−h, h]; float32 factors.
        func factor(_ x: Double) -> Float { Float(rng.uniform(in: max(0, 1 - x)...(1 + x))) }
        let factors = [factor(spec.brightness), factor(spec.contrast), factor(spec.saturation),
                       Float(rng.uniform(in: -spec.hue...spec.hue))]
        let grayscale = rng.uniform(in: 0...1) < spec.grayscaleProbability
        let blurOn = rng.uniform(in: 0...1) < spec.blurProbability
        let sigma = rng.uniform(in: spec.blurSigma) * Double(viewSize) / Double(spec.blurReferenceSize)
        let solarize = rng.uniform(in: 0...1) < spec.solarizeProbability
        return Draw(jitter: jitterOn ? (order, factors) : nil, grayscale: grayscale, blurSigma: blurOn ? Float(sigma) : nil,
                    solarize: solarize)
    }

    /// The drawn augmentations applied to `image`. A jitter op whose strength is 0 is skipped (as
    /// torchvision sets its factor to None), which matters for hue: its HSV round trip is lossy.
    public func apply(_ draw: Draw, to image: Image) -> Image {
        var out = image
        if let (order, factors) = draw.jitter {
            for op in order {
                switch op {
                case 0 where spec.brightness > 0: out = out.adjustingBrightness(factors[0])
                case 1 where spec.contrast > 0: out = out.adjustingContrast(factors[1])
                case 2 where spec.saturation > 0: out = out.adjustingSaturation(factors[2])
                case 3 where spec.hue > 0: out = out.shiftingHue(factors[3])
                default: break
                }
            }
        }
        if draw.grayscale { out = out.grayscaledKeepingChannels() }
        if let sigma = draw.blurSigma { out = out.gaussianBlurred(radius: sigma) }
        if draw.solarize { out = out.solarized() }
        return out
    }

    public func callAsFunction(_ image: Image, using rng: inout SeededRandom) -> Image {
        apply(draw(using: &rng), to: image)
    }
}
