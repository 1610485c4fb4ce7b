extension Image {
    /// Turns an image stored with EXIF orientation `value` (1...8) upright, exactly as PIL's
    /// `ImageOps.exif_transpose`: 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90
    /// clockwise, 7 transverse, 8 rotate 90 counter-clockwise. Other values return the image as is.
    public func applyingEXIFOrientation(_ value: Int) -> Image {
        let w = width, h = height
        // Output pixel (x, y) reads source pixel index `start + x * stepX + y * stepY`.
        let (start, stepX, stepY): (Int, Int, Int)
        switch value {
        case 2: (start, stepX, stepY) = (w - 1, -1, w)
        case 3: (start, stepX, stepY) = (h * w - 1, -1, -w)
        case 4: (start, stepX, stepY) = ((h - 1) * w, 1, -w)
        case 5: (start, stepX, stepY) = (0, w, 1)
        case 6: (start, stepX, stepY) = ((h - 1) * w, -w, 1)
        case 7: (start, stepX, stepY) = (h * w - 1, -w, -1)
        case 8: (start, stepX, stepY) = (w - 1, w, -1)
        default: return self
        }
        let (outWidth, outHeight) = value >= 5 ? (h, w) : (w, h)
        let c = channels
        return pixels.withUnsafeBufferPointer { source in
            Image(width: outWidth, height: outHeight, channels: c) { output in
                var o = 0
                for y in 0..<outHeight {
                    var s = start + y * stepY
                    for _ in 0..<outWidth {
                        for k in 0..<c { output[o + k] = source[s * c + k] }
                        o += c
                        s += stepX
                    }
                }
            }
        }
    }
}
