extension Image {
    /// The same image with 3 channels; gray values are copied into R, G and B.
    public func toRGB() -> Image {
        if channels == 3 { return self }
        return pixels.withUnsafeBufferPointer { gray in
            Image(width: width, height: height, channels: 3) { rgb in
                for i in 0..<gray.count {
                    rgb[3 * i] = gray[i]
                    rgb[3 * i + 1] = gray[i]
                    rgb[3 * i + 2] = gray[i]
                }
            }
        }
    }

    /// The same image with 1 channel, using PIL's `convert('L')` arithmetic: ITU-R 601 luma
    /// L = 0.299 R + 0.587 G + 0.114 B in 16-bit fixed point, rounded half up.
    public func toGray() -> Image {
        if channels == 1 { return self }
        return pixels.withUnsafeBufferPointer { rgb in
            Image(width: width, height: height, channels: 1) { gray in
                for i in 0..<gray.count {
                    let r = UInt32(rgb[3 * i]), g = UInt32(rgb[3 * i + 1]), b = UInt32(rgb[3 * i + 2])
                    gray[i] = UInt8(truncatingIfNeeded: (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16)
                }
            }
        }
    }
}
