import ImageKit

/// The pixel operations of torchvision's `ColorJitter`, `RandomGrayscale` and iBOT's
/// `Solarization` on 8-bit images, with the arithmetic Pillow uses for them (torchvision calls Pillow
/// for PIL images: `adjust_brightness` / `adjust_contrast` / `adjust_saturation` are
/// `ImageEnhance.Brightness` / `Contrast` / `Color`, i.e. `Image.blend(degenerate, image, factor)`).
/// Gray images: brightness, contrast and solarization apply; saturation and grayscale return the
/// image (Pillow's `Color` enhancer blends a gray image with itself).
extension Image {
    /// `Image.blend(degenerate, self, factor)` as Pillow computes it per byte: in float32,
    /// d + factor·(v − d), truncated toward zero and clipped to 0…255 (libImaging Blend.c).
    /// `degenerate(i)` is the degenerate image's byte at index `i` of `pixels`.
    @inline(__always)
    func blended(factor: Float, degenerate: (Int) -> UInt8) -> Image {
        if factor == 1 { return self }
        return pixels.withUnsafeBufferPointer { source in
            Image(width: width, height: height, channels: channels) { out in
                for i in 0..<source.count {
                    let d = Int(degenerate(i))
                    let t = Float(d) + factor * Float(Int(source[i]) - d)
                    out[i] = t <= 0 ? 0 : (t >= 255 ? 255 : UInt8(t))
                }
            }
        }
    }

    /// torchvision `adjust_brightness`: a blend with black.
    public func adjustingBrightness(_ factor: Float) -> Image {
        blended(factor: factor) { _ in 0 }
    }

    /// torchvision `adjust_contrast`: a blend with a flat gray image at the mean of the image's
    /// luma (Pillow: `int(ImageStat.Stat(image.convert('L')).mean[0] + 0.5)`).
    public func adjustingContrast(_ factor: Float) -> Image {
        let gray = toGray().pixels
        let sum = gray.reduce(0) { $0 + Int($1) }
        let mean = UInt8(Int(Double(sum) / Double(gray.count) + 0.5))
        return blended(factor: factor) { _ in mean }
    }

    /// torchvision `adjust_saturation`: a blend with the image's own luma, copied to R, G, B.
    /// A gray image is returned unchanged.
    public func adjustingSaturation(_ factor: Float) -> Image {
        guard channels == 3 else { return self }
        let gray = toGray().pixels
        return gray.withUnsafeBufferPointer { gray in blended(factor: factor) { gray[$0 / 3] } }
    }

    /// torchvision `rgb_to_grayscale(img, num_output_channels=3)`: Pillow's luma
    /// (`convert('L')`, L = R·299/1000 + G·587/1000 + B·114/1000 in fixed point) in all three
    /// channels. A gray image is returned unchanged.
    public func grayscaledKeepingChannels() -> Image {
        channels == 3 ? toGray().toRGB() : self
    }

    /// Pillow `ImageOps.solarize(image, threshold)`: every byte v ≥ threshold becomes 255 − v.
    public func solarized(threshold: UInt8 = 128) -> Image {
        Image(width: width, height: height, channels: channels, pixels: pixels.map { $0 >= threshold ? 255 - $0 : $0 })
    }
}
