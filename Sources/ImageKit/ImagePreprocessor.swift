/// Turns decoded images into model input, matching timm's eval transform on PIL images:
/// `Resize(floor(imageSize / cropPct), BICUBIC)` (shorter side), `CenterCrop(imageSize)`,
/// `ToTensor()` (x / 255), `Normalize(mean, std)`.
public struct ImagePreprocessor: Sendable {
    public let imageSize: Int
    public let channels: Int
    public let mean: [Float]
    public let std: [Float]
    public let cropPct: Double
    /// (x / 255 - mean[c]) / std[c] for every byte value x, channel by channel.
    private let table: [Float]

    public init(imageSize: Int, channels: Int, mean: [Float], std: [Float], cropPct: Double = 1.0) {
        precondition(imageSize > 0, "imageSize must be positive")
        precondition(channels == 1 || channels == 3, "models take 1 (gray) or 3 (RGB) channels")
        precondition(mean.count == channels && std.count == channels, "need one mean and one std per channel")
        precondition(std.allSatisfy { $0 != 0 }, "std must not be zero")
        precondition(cropPct > 0, "cropPct must be positive")
        self.imageSize = imageSize
        self.channels = channels
        self.mean = mean
        self.std = std
        self.cropPct = cropPct
        // Same float32 operations as torch: div(255), then sub(mean), then div(std).
        table = (0..<channels).flatMap { c in (0..<256).map { (Float($0) / 255 - mean[c]) / std[c] } }
    }

    /// Length of the shorter side after the resize: floor(imageSize / cropPct).
    public var resizeSize: Int { Int((Double(imageSize) / cropPct).rounded(.down)) }

    /// Number of floats `tensorCHW` produces.
    public var tensorCount: Int { channels * imageSize * imageSize }

    /// The model input for `image`: `channels` planes of `imageSize` x `imageSize` floats.
    public func tensorCHW(_ image: Image) -> [Float] {
        [Float](unsafeUninitializedCapacity: tensorCount) { buffer, count in
            tensorCHW(image, into: buffer)
            count = tensorCount
        }
    }

    /// Writes the model input for `image` into `output` (e.g. one slot of a batch buffer).
    public func tensorCHW(_ image: Image, into output: UnsafeMutableBufferPointer<Float>) {
        precondition(output.count >= tensorCount, "output needs \(tensorCount) floats")
        let cropped = resizedAndCropped(channels == 1 ? image.toGray() : image.toRGB())
        let plane = imageSize * imageSize, c = channels
        cropped.pixels.withUnsafeBufferPointer { pixels in
            table.withUnsafeBufferPointer { table in
                for channel in 0..<c {
                    let lookup = channel * 256, base = channel * plane
                    for i in 0..<plane { output[base + i] = table[lookup + Int(pixels[i * c + channel])] }
                }
            }
        }
    }

    /// torchvision `Resize(int)` then `CenterCrop`, computing only the cropped pixels when the
    /// crop lies inside the resized image (the usual case, cropPct <= 1).
    func resizedAndCropped(_ image: Image) -> Image {
        let (width, height) = ImagePreprocessor.shorterSideSize(width: image.width, height: image.height,
                                                                 shorter: resizeSize)
        let origin = Image.centerCropOrigin(imageWidth: width, imageHeight: height,
                                            cropWidth: imageSize, cropHeight: imageSize)
        if origin.x >= 0 && origin.y >= 0 {
            return image.resized(width: width, height: height,
                                 keeping: (origin.x, origin.y, imageSize, imageSize))
        }
        let resized = (width, height) == (image.width, image.height) ? image : image.resized(width: width, height: height)
        return resized.centerCropped(width: imageSize, height: imageSize)
    }

    /// torchvision `Resize(int)`: the shorter side becomes `shorter`, the longer
    /// int(shorter * long / short) (truncated).
    static func shorterSideSize(width: Int, height: Int, shorter: Int) -> (width: Int, height: Int) {
        let short = min(width, height), long = max(width, height)
        let newLong = Int(Double(shorter * long) / Double(short))
        return width <= height ? (shorter, newLong) : (newLong, shorter)
    }
}
