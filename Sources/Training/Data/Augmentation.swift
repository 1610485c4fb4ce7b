import Foundation
import ImageKit
import Tensor

/// A crop rectangle in pixels: top-left corner (`x`, `y`) and size.
public struct CropBox: Sendable, Hashable {
    public var x: Int, y: Int, width: Int, height: Int
    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x; self.y = y; self.width = width; self.height = height
    }
}

/// torchvision's `RandomResizedCrop(size, scale, ratio, interpolation=BICUBIC)`: a random box of
/// `scale` × the image area and aspect ratio (width / height) in `ratio` (sampled log-uniformly), then
/// resized to `size` × `size` with ImageKit's Pillow-exact bicubic filter.
public struct RandomResizedCrop: Sendable, Hashable {
    public let size: Int
    public let scale: ClosedRange<Double>
    public let ratio: ClosedRange<Double>

    public init(size: Int, scale: ClosedRange<Double> = 0.2...1, ratio: ClosedRange<Double> = 3.0 / 4...4.0 / 3) {
        precondition(size > 0, "RandomResizedCrop: size must be positive")
        precondition(scale.lowerBound > 0, "RandomResizedCrop: scale must be positive")
        precondition(ratio.lowerBound > 0, "RandomResizedCrop: ratio must be positive")
        self.size = size
        self.scale = scale
        self.ratio = ratio
    }

    /// `RandomResizedCrop.get_params`: up to 10 draws of (area, log-ratio); the first box that fits
    /// the image is placed uniformly at random. If none fits: the largest centred box with the ratio
    /// clamped to `ratio` (the whole image when its own ratio is inside).
    public func sampleBox(width: Int, height: Int, using rng: inout SeededRandom) -> CropBox {
        let area = Double(width * height)
        let logRatio = (log(ratio.lowerBound), log(ratio.upperBound))
        for _ in 0..<10 {
            let targetArea = area * rng.uniform(in: scale)
            let aspect = exp(rng.uniform(in: logRatio.0...logRatio.1))
            let w = Int((targetArea * aspect).squareRoot().rounded(.toNearestOrEven))
            let h = Int((targetArea / aspect).squareRoot().rounded(.toNearestOrEven))
            if w > 0 && w <= width && h > 0 && h <= height {
                let y = rng.below(height - h + 1)
                let x = rng.below(width - w + 1)
                return CropBox(x: x, y: y, width: w, height: h)
            }
        }
        let inRatio = Double(width) / Double(height)
        var w = width, h = height
        if inRatio < ratio.lowerBound {
            h = Int((Double(w) / ratio.lowerBound).rounded(.toNearestOrEven))
        } else if inRatio > ratio.upperBound {
            w = Int((Double(h) * ratio.upperBound).rounded(.toNearestOrEven))
        }
        return CropBox(x: (width - w) / 2, y: (height - h) / 2, width: w, height: h)
    }

    /// The crop of a random box, resized to `size` × `size`.
    public func callAsFunction(_ image: Image, using rng: inout SeededRandom) -> Image {
        let box = sampleBox(width: image.width, height: image.height, using: &rng)
        let crop = (box.x, box.y, box.width, box.height) == (0, 0, image.width, image.height)
            ? image : image.cropped(x: box.x, y: box.y, width: box.width, height: box.height)
        // Pillow returns a copy when the size does not change; the bicubic filter would too.
        return (crop.width, crop.height) == (size, size) ? crop : crop.resized(width: size, height: size)
    }
}

/// torchvision's `RandomHorizontalFlip(p)`: mirrors the image left-right with probability `p`.
public struct HorizontalFlip: Sendable, Hashable {
    public let p: Double
    public init(p: Double = 0.5) {
        precondition((0...1).contains(p), "HorizontalFlip: p must be in 0...1")
        self.p = p
    }

    /// Always draws one number, so the random stream does not depend on `p`.
    public func callAsFunction(_ image: Image, using rng: inout SeededRandom) -> Image {
        rng.uniform(in: 0...1) < p ? image.flippedHorizontally() : image
    }
}

/// The training augmentation of MAE / BootMAE: `RandomResizedCrop(size, scale, ratio, BICUBIC)`
/// then `RandomHorizontalFlip`. Its output is `size` × `size`.
public struct Augment: Sendable, Hashable {
    public var crop: RandomResizedCrop
    public var flip: HorizontalFlip?

    public init(crop: RandomResizedCrop, flip: HorizontalFlip? = HorizontalFlip(p: 0.5)) {
        self.crop = crop
        self.flip = flip
    }

    /// MAE's pretraining transform (`scale` 0.2…1 there; 0.08…1 is torchvision's default for
    /// supervised training).
    public init(size: Int, scale: ClosedRange<Double> = 0.2...1, ratio: ClosedRange<Double> = 3.0 / 4...4.0 / 3,
                horizontalFlip p: Double = 0.5) {
        self.init(crop: RandomResizedCrop(size: size, scale: scale, ratio: ratio), flip: p > 0 ? HorizontalFlip(p: p) : nil)
    }

    public var size: Int { crop.size }

    public func callAsFunction(_ image: Image, using rng: inout SeededRandom) -> Image {
        let cropped = crop(image, using: &rng)
        return flip.map { $0(cropped, using: &rng) } ?? cropped
    }
}

extension Image {
    /// The image mirrored left-right.
    public func flippedHorizontally() -> Image {
        let c = channels, w = width
        return pixels.withUnsafeBufferPointer { source in
            Image(width: width, height: height, channels: channels) { output in
                for row in 0..<height {
                    let base = row * w * c
                    for x in 0..<w {
                        let from = base + (w - 1 - x) * c, to = base + x * c
                        for k in 0..<c { output[to + k] = source[from + k] }
                    }
                }
            }
        }
    }
}

extension SeededRandom {
    /// Uniform in `range` with 53 bits of precision.
    public mutating func uniform(in range: ClosedRange<Double>) -> Double {
        range.lowerBound + Double(next() >> 11) * 0x1p-53 * (range.upperBound - range.lowerBound)
    }

    /// Uniform integer in 0..<`n` (multiply-high; the bias is below n / 2^64). Written out rather
    /// than `Int.random(in:using:)` so the stream cannot change with the standard library.
    public mutating func below(_ n: Int) -> Int {
        precondition(n > 0, "below(n) needs n > 0")
        return Int(UInt64(n).multipliedFullWidth(by: next()).high)
    }
}
