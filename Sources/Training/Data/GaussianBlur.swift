import Foundation
import ImageKit

/// Pillow's `ImageFilter.GaussianBlur(radius)`, which iBOT's utils.py `GaussianBlur` applies: not a
/// sampled Gaussian kernel but three passes of an "extended" box blur per axis (libImaging BoxBlur.c,
/// after Gwosdek et al., "Theoretical foundations of Gaussian convolution by extended box
/// filtering"), whose variance equals radius² (radius is the standard deviation σ). Edges repeat
/// the border pixel. The box weights are 24-bit fixed point, so every output byte is an exact
/// integer computation once the float32 box radius is fixed.
extension Image {
    /// The image blurred with standard deviation `radius` pixels (0: unchanged).
    public func gaussianBlurred(radius: Float) -> Image {
        let box = Self.boxRadius(sigma: radius, passes: 3)
        guard box != 0 else { return self }
        var planes = (0..<channels).map { c in stride(from: c, to: pixels.count, by: channels).map { pixels[$0] } }
        for c in 0..<channels {
            for _ in 0..<3 { Self.boxBlurRows(&planes[c], width: width, height: height, radius: box) }
            for _ in 0..<3 { Self.boxBlurColumns(&planes[c], width: width, height: height, radius: box) }
        }
        return Image(width: width, height: height, channels: channels) { out in
            for c in 0..<channels {
                for i in 0..<(width * height) { out[i * channels + c] = planes[c][i] }
            }
        }
    }

    /// `_gaussian_blur_radius`: the fractional box radius whose `passes` passes have variance σ²
    /// (float32 throughout, except the float64 square root and floor Pillow's C expression uses).
    static func boxRadius(sigma: Float, passes: Int) -> Float {
        let sigma2 = sigma * sigma / Float(passes)
        let length = Float((12.0 * Double(sigma2) + 1.0).squareRoot())
        let l = Float(((Double(length) - 1.0) / 2.0).rounded(.down))
        var a = (2 * l + 1) * (l * (l + 1) - 3 * sigma2)
        a /= 6 * (sigma2 - (l + 1) * (l + 1))
        return l + a
    }

    /// One extended box pass along a line of `count` bytes, `at(k)` reading byte k and `set(k, v)`
    /// writing it: out[x] = Σ_{|k−x|≤r} in[k]·w + (in[x−r−1] + in[x+r+1])·f with r = ⌊radius⌋,
    /// w = ⌊2²⁴ / (2·radius + 1)⌋ (float32 division), f = (2²⁴ − (2r + 1)·w) / 2, indices clamped
    /// to the line, rounded as (sum + 2²³) >> 24 (`ImagingLineBoxBlur8`).
    @inline(__always)
    static func boxLine(count: Int, radius: Float, at: (Int) -> UInt8, set: (Int, UInt8) -> Void, scratch: inout [Int]) {
        let r = Int(radius)
        let w = Int(UInt32(Float(1 << 24) / (radius * 2 + 1)))
        let f = ((1 << 24) - (r * 2 + 1) * w) / 2
        let last = count - 1
        func value(_ k: Int) -> Int { Int(at(Swift.min(Swift.max(k, 0), last))) }
        var acc = 0
        for k in (-r - 1)...(r - 1) { acc += value(k) }   // the window of x = −1
        for x in 0..<count {
            acc += value(x + r) - value(x - r - 1)
            scratch[x] = (acc * w + (value(x - r - 1) + value(x + r + 1)) * f + (1 << 23)) >> 24
        }
        for x in 0..<count { set(x, UInt8(truncatingIfNeeded: scratch[x])) }
    }

    static func boxBlurRows(_ plane: inout [UInt8], width: Int, height: Int, radius: Float) {
        var scratch = [Int](repeating: 0, count: width)
        plane.withUnsafeMutableBufferPointer { p in
            for y in 0..<height {
                let base = y * width
                boxLine(count: width, radius: radius, at: { p[base + $0] }, set: { p[base + $0] = $1 }, scratch: &scratch)
            }
        }
    }

    static func boxBlurColumns(_ plane: inout [UInt8], width: Int, height: Int, radius: Float) {
        var scratch = [Int](repeating: 0, count: height)
        plane.withUnsafeMutableBufferPointer { p in
            for x in 0..<width {
                boxLine(count: height, radius: radius, at: { p[$0 * width + x] }, set: { p[$0 * width + x] = $1 }, scratch: &scratch)
            }
        }
    }
}
