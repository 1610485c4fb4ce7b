/// An 8-bit image: `height` rows of `width` pixels, each pixel `channels` bytes (1 = gray, 3 = RGB),
/// stored row-major with interleaved channels ("HWC").
public struct Image: Sendable, Hashable {
    public let width: Int
    public let height: Int
    public let channels: Int
    public let pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0, "image size must be positive, got \(width)x\(height)")
        precondition(channels == 1 || channels == 3, "images are gray (1 channel) or RGB (3), got \(channels)")
        precondition(pixels.count == width * height * channels,
                     "\(width)x\(height)x\(channels) image needs \(width * height * channels) bytes, got \(pixels.count)")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// An image of one repeated value in every channel.
    public init(width: Int, height: Int, channels: Int, fill: UInt8 = 0) {
        self.init(width: width, height: height, channels: channels,
                  pixels: [UInt8](repeating: fill, count: width * height * channels))
    }

    /// Builds an image by letting `body` write all `width * height * channels` bytes.
    @inlinable
    public init(width: Int, height: Int, channels: Int,
                initializingWith body: (inout UnsafeMutableBufferPointer<UInt8>) -> Void) {
        let count = width * height * channels
        let pixels = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            body(&buffer)
            initialized = count
        }
        self.init(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// The value of one channel of the pixel at column `x`, row `y`.
    public subscript(x x: Int, y y: Int, channel channel: Int) -> UInt8 {
        pixels[(y * width + x) * channels + channel]
    }
}
