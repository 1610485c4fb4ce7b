import ImageKit
import Objectives
import Tensor

/// Turns one dataset image into model input: `channels` planes of `imageSize` × `imageSize`
/// normalized floats (CHW).
///
/// - Training (`augment` set): convert to the model's channels (gray: PIL's `convert('L')`; RGB:
///   gray copied to R, G, B), then the augmentation (its output is `imageSize` × `imageSize`), then
///   the photometric augmentations when `photometric` is set (on the 8-bit crop, drawing from the
///   same stream after the crop and flip), then x / 255, (x − mean) / std — torchvision's
///   `ToTensor` + `Normalize`.
/// - Evaluation (`augment` nil): ImageKit's `ImagePreprocessor` (timm's eval transform: bicubic
///   resize of the shorter side to imageSize / cropPct, centre crop, normalize).
public struct SampleTransform: Sendable {
    public let channels: Int
    public let imageSize: Int
    public let augment: Augment?
    /// Colour jitter, grayscale, blur, solarization after the crop (nil: none; training only).
    public let photometric: PhotometricAugment?
    public let preprocessor: ImagePreprocessor
    /// (x / 255 − mean[c]) / std[c] for every byte value, channel by channel (the preprocessor's
    /// float32 arithmetic, so both paths agree bit for bit on an image already at the target size).
    private let table: [Float]

    public init(channels: Int, imageSize: Int, mean: [Float], std: [Float], augment: Augment?, photometric: PhotometricSpec? = nil,
                cropPct: Double = 1) {
        precondition(augment == nil || augment!.size == imageSize,
                     "SampleTransform: the augmentation crops to \(augment?.size ?? 0) px but the model takes \(imageSize)")
        precondition(photometric == nil || augment != nil, "SampleTransform: photometric augmentations need a training augmentation")
        self.photometric = photometric.map { PhotometricAugment($0, viewSize: imageSize) }
        preprocessor = ImagePreprocessor(imageSize: imageSize, channels: channels, mean: mean, std: std, cropPct: cropPct)
        self.channels = channels
        self.imageSize = imageSize
        self.augment = augment
        table = (0..<channels).flatMap { c in (0..<256).map { (Float($0) / 255 - mean[c]) / std[c] } }
    }

    /// Floats per image: channels × imageSize × imageSize.
    public var tensorCount: Int { preprocessor.tensorCount }

    /// Writes the model input for `image` into `output`. `rng` drives the augmentation (unused for eval).
    public func apply(_ image: Image, using rng: inout SeededRandom, into output: UnsafeMutableBufferPointer<Float>) {
        guard let augment else { return preprocessor.tensorCHW(image, into: output) }
        precondition(output.count >= tensorCount, "output needs \(tensorCount) floats")
        let converted = channels == 1 ? image.toGray() : image.toRGB()
        let cropped = augment(converted, using: &rng)
        let augmented = photometric.map { $0(cropped, using: &rng) } ?? cropped
        let plane = imageSize * imageSize, c = channels
        augmented.pixels.withUnsafeBufferPointer { pixels in
            table.withUnsafeBufferPointer { table in
                for channel in 0..<c {
                    let lookup = channel * 256, base = channel * plane
                    for i in 0..<plane { output[base + i] = table[lookup + Int(pixels[i * c + channel])] }
                }
            }
        }
    }

    public func apply(_ image: Image, using rng: inout SeededRandom) -> [Float] {
        [Float](unsafeUninitializedCapacity: tensorCount) { buffer, count in
            apply(image, using: &rng, into: buffer)
            count = tensorCount
        }
    }
}

/// How the loader derives its random streams from the run's seed. Fixed: changing it changes every
/// run's data order and augmentation.
///
/// `mix(x)` is SplitMix64's step (x + 0x9E3779B97F4A7C15, then its finalizer), and
/// `derive(seed, parts…) = fold(mix(seed), { h, p in mix(h ^ p) })`:
/// - epoch order: `SeededRandom(seed: derive(seed, 0x6F72646572 /* "order" */, epoch))`, then a
///   Fisher–Yates shuffle from the top (for i in n−1…1: swap(i, below(i + 1)));
/// - sample augmentation: `SeededRandom(seed: derive(seed, 0x73616D706C65 /* "sample" */, epoch, index))`
///   where index is the dataset index (not the position in the epoch);
/// - view v of a multi-view sample: `SeededRandom(seed: derive(seed, 0x76696577 /* "view" */, epoch, index, v))`.
public enum LoaderSeeds {
    public static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public static func derive(_ seed: UInt64, _ parts: UInt64...) -> UInt64 {
        parts.reduce(mix(seed)) { mix($0 ^ $1) }
    }

    public static func orderSeed(seed: UInt64, epoch: Int) -> UInt64 {
        derive(seed, 0x6F_7264_6572, UInt64(bitPattern: Int64(epoch)))
    }

    public static func sampleSeed(seed: UInt64, epoch: Int, index: Int) -> UInt64 {
        derive(seed, 0x7361_6D70_6C65, UInt64(bitPattern: Int64(epoch)), UInt64(bitPattern: Int64(index)))
    }

    public static func viewSeed(seed: UInt64, epoch: Int, index: Int, view: Int) -> UInt64 {
        derive(seed, 0x7669_6577, UInt64(bitPattern: Int64(epoch)), UInt64(bitPattern: Int64(index)), UInt64(bitPattern: Int64(view)))
    }

    /// The order in which an epoch visits the dataset: 0..<count, shuffled when `shuffle`.
    public static func epochOrder(count: Int, shuffle: Bool, seed: UInt64, epoch: Int) -> [Int] {
        var order = Array(0..<count)
        guard shuffle, count > 1 else { return order }
        var rng = SeededRandom(seed: orderSeed(seed: seed, epoch: epoch))
        for i in stride(from: count - 1, to: 0, by: -1) {
            order.swapAt(i, rng.below(i + 1))
        }
        return order
    }
}
