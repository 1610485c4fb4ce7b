import Foundation
import ImageKit

/// torchvision `adjust_hue` for PIL images (transforms/_functional_pil.py): convert to Pillow's
/// 8-bit HSV, add `np.int32(hue_factor * 255)` to H modulo 256, convert back. Pillow's
/// conversions (libImaging Convert.c `rgb2hsv_row` / `hsv2rgb`) mix float32 and float64 steps; the
/// types below follow them so the bytes match.
extension Image {
    /// The image with its hue rotated by `factor` turns (−0.5…0.5). Gray images are returned
    /// unchanged (torchvision returns mode L as is). Note that even a shift of 0 goes through the
    /// lossy HSV round trip, as it does in torchvision.
    public func shiftingHue(_ factor: Float) -> Image {
        guard channels == 3 else { return self }
        let shift = UInt8(truncatingIfNeeded: Int32(Double(factor) * 255))
        return pixels.withUnsafeBufferPointer { source in
            Image(width: width, height: height, channels: 3) { out in
                for p in stride(from: 0, to: source.count, by: 3) {
                    var (h, s, v) = Self.pillowHSV(source[p], source[p + 1], source[p + 2])
                    h &+= shift
                    (out[p], out[p + 1], out[p + 2]) = Self.pillowRGB(h, s, v)
                }
            }
        }
    }

    /// Pillow's RGB → HSV of one pixel (colorsys's formulas, H and S scaled to 0…255, truncated).
    static func pillowHSV(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> (UInt8, UInt8, UInt8) {
        let maxc = Swift.max(r, g, b), minc = Swift.min(r, g, b)
        guard maxc != minc else { return (0, 0, maxc) }
        let cr = Float(maxc - minc)
        let s = cr / Float(maxc)
        let rc = Float(maxc - r) / cr, gc = Float(maxc - g) / cr, bc = Float(maxc - b) / cr
        var h: Float
        if r == maxc {
            h = bc - gc
        } else if g == maxc {
            h = Float(2.0 + Double(rc) - Double(bc))
        } else {
            h = Float(4.0 + Double(gc) - Double(rc))
        }
        h = Float(fmod(Double(h) / 6.0 + 1.0, 1.0))
        return (clip8(Double(h) * 255.0), clip8(Double(s) * 255.0), maxc)
    }

    /// Pillow's HSV → RGB of one pixel; p, q, t rounded half away from zero (C `round`).
    static func pillowRGB(_ h: UInt8, _ s: UInt8, _ v: UInt8) -> (UInt8, UInt8, UInt8) {
        guard s != 0 else { return (v, v, v) }
        let h6 = Double(Float(h)) * 6.0 / 255.0
        let i = Int(h6.rounded(.down))
        let f = Float(h6 - Double(Float(i)))
        let fs = Float(Double(Float(s)) / 255.0)
        let vv = Double(Float(v))
        let p = clip8((vv * (1.0 - Double(fs))).rounded())
        let q = clip8((vv * (1.0 - Double(fs * f))).rounded())
        let t = clip8((vv * (1.0 - Double(fs) * (1.0 - Double(f)))).rounded())
        switch i % 6 {
        case 0: return (v, t, p)
        case 1: return (q, v, p)
        case 2: return (p, v, t)
        case 3: return (p, q, v)
        case 4: return (t, p, v)
        default: return (v, p, q)
        }
    }

    /// C's `CLIP8((int)x)`: truncation toward zero, then clamped to 0…255.
    @inline(__always)
    private static func clip8(_ x: Double) -> UInt8 {
        let n = Int(x)
        return n <= 0 ? 0 : (n >= 255 ? 255 : UInt8(n))
    }
}
