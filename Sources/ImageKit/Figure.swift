extension Image {
    /// Places images side by side, top-aligned, with `gap` columns of `background` between them.
    /// Gray images are converted to RGB when any input is RGB.
    public static func hstack(_ images: [Image], gap: Int = 0, background: UInt8 = 255) -> Image {
        precondition(!images.isEmpty, "hstack needs at least one image")
        precondition(gap >= 0, "gap must not be negative")
        let channels = images.contains { $0.channels == 3 } ? 3 : 1
        let parts = images.map { channels == 3 ? $0.toRGB() : $0 }
        let width = parts.reduce(0) { $0 + $1.width } + gap * (parts.count - 1)
        let height = parts.map(\.height).max()!
        return Image(width: width, height: height, channels: channels) { output in
            output.initialize(repeating: background)
            var left = 0
            for part in parts {
                let rowBytes = part.width * channels
                part.pixels.withUnsafeBufferPointer { source in
                    for y in 0..<part.height {
                        let to = (y * width + left) * channels
                        _ = UnsafeMutableBufferPointer(rebasing: output[to..<(to + rowBytes)])
                            .update(fromContentsOf: source[(y * rowBytes)..<((y + 1) * rowBytes)])
                    }
                }
                left += part.width + gap
            }
        }
    }

    /// Each pixel becomes a `factor` x `factor` block (for looking at 32 px images in figures).
    public func upscaledNearest(factor: Int) -> Image {
        precondition(factor >= 1, "factor must be at least 1")
        let c = channels, outWidth = width * factor
        return pixels.withUnsafeBufferPointer { source in
            Image(width: outWidth, height: height * factor, channels: c) { output in
                for y in 0..<(height * factor) {
                    let sourceRow = (y / factor) * width * c
                    let outputRow = y * outWidth * c
                    for x in 0..<outWidth {
                        for k in 0..<c { output[outputRow + x * c + k] = source[sourceRow + (x / factor) * c + k] }
                    }
                }
            }
        }
    }
}
