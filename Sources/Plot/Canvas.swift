import ImageKit

/// A rectangle of whole pixels: columns `x ..< x + width`, rows `y ..< y + height`.
public struct PixelRect: Sendable, Hashable {
    public var x: Int
    public var y: Int
    public var width: Int
    public var height: Int

    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
    }

    public var maxX: Int { x + width }
    public var maxY: Int { y + height }
    public var isEmpty: Bool { width <= 0 || height <= 0 }

    public func contains(x px: Int, y py: Int) -> Bool {
        px >= x && px < maxX && py >= y && py < maxY
    }

    /// The overlap of two rectangles (empty, with non-negative size, when they do not meet).
    public func intersection(_ other: PixelRect) -> PixelRect {
        let left = max(x, other.x), top = max(y, other.y)
        let right = min(maxX, other.maxX), bottom = min(maxY, other.maxY)
        return PixelRect(x: left, y: top, width: max(0, right - left), height: max(0, bottom - top))
    }
}

/// An RGB drawing surface. Integer-coordinate operations (`fill`, `rect`, `text`) address whole
/// pixels; `line` and `polyline` take continuous coordinates in which pixel (i, j) covers
/// [i, i+1) x [j, j+1), so its centre is (i + 0.5, j + 0.5), and are anti-aliased.
/// Every operation is clipped to the canvas and to `clip` when that is set.
public struct Canvas: Sendable {
    public let width: Int
    public let height: Int
    /// Row-major RGB bytes, like `Image.pixels`.
    public private(set) var pixels: [UInt8]
    /// When set, drawing only changes pixels inside this rectangle.
    public var clip: PixelRect?

    public init(width: Int, height: Int, background: RGB = .white) {
        precondition(width > 0 && height > 0, "canvas size must be positive, got \(width)x\(height)")
        self.width = width
        self.height = height
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            pixels[3 * i] = background.r
            pixels[3 * i + 1] = background.g
            pixels[3 * i + 2] = background.b
        }
        self.pixels = pixels
    }

    /// The canvas as a 3-channel `Image`.
    public var image: Image { Image(width: width, height: height, channels: 3, pixels: pixels) }

    /// The colour of pixel (x, y).
    public subscript(x: Int, y: Int) -> RGB {
        precondition(x >= 0 && x < width && y >= 0 && y < height, "pixel (\(x), \(y)) is outside the canvas")
        let i = (y * width + x) * 3
        return RGB(pixels[i], pixels[i + 1], pixels[i + 2])
    }

    /// The pixels drawing may change: the canvas, cut to `clip`.
    public var drawableArea: PixelRect {
        let all = PixelRect(x: 0, y: 0, width: width, height: height)
        return clip.map { all.intersection($0) } ?? all
    }

    /// Paints every drawable pixel.
    public mutating func fill(_ color: RGB) {
        let area = drawableArea
        fill(x: area.x, y: area.y, width: area.width, height: area.height, color: color)
    }

    /// Paints a filled rectangle.
    public mutating func fill(x: Int, y: Int, width w: Int, height h: Int, color: RGB) {
        let area = PixelRect(x: x, y: y, width: w, height: h).intersection(drawableArea)
        guard !area.isEmpty else { return }
        let canvasWidth = width
        pixels.withUnsafeMutableBufferPointer { p in
            for row in area.y..<area.maxY {
                var i = (row * canvasWidth + area.x) * 3
                for _ in 0..<area.width {
                    p[i] = color.r
                    p[i + 1] = color.g
                    p[i + 2] = color.b
                    i += 3
                }
            }
        }
    }

    /// Paints the outline of a rectangle, `lineWidth` pixels thick, inside its bounds.
    public mutating func rect(x: Int, y: Int, width w: Int, height h: Int, color: RGB, lineWidth: Int = 1) {
        guard w > 0 && h > 0 && lineWidth > 0 else { return }
        let t = min(lineWidth, (min(w, h) + 1) / 2)
        fill(x: x, y: y, width: w, height: t, color: color)
        fill(x: x, y: y + h - t, width: w, height: t, color: color)
        fill(x: x, y: y + t, width: t, height: h - 2 * t, color: color)
        fill(x: x + w - t, y: y + t, width: t, height: h - 2 * t, color: color)
    }

    /// Mixes `color` into pixel (x, y) with opacity `alpha` (0...1).
    public mutating func blend(x: Int, y: Int, color: RGB, alpha: Double) {
        guard drawableArea.contains(x: x, y: y), alpha > 0 else { return }
        let a = min(alpha, 1)
        let i = (y * width + x) * 3
        pixels[i] = Self.mix(pixels[i], color.r, a)
        pixels[i + 1] = Self.mix(pixels[i + 1], color.g, a)
        pixels[i + 2] = Self.mix(pixels[i + 2], color.b, a)
    }

    /// Draws `text` in the built-in `BitmapFont` (see `BitmapFont.draw`).
    public mutating func text(_ text: String, at origin: (x: Int, y: Int), color: RGB = .black, scale: Int = 1,
                              vertical: Bool = false, font: BitmapFont = .standard) {
        font.draw(text: text, at: origin, color: color, scale: scale, vertical: vertical, on: &self)
    }

    /// An anti-aliased straight line `width` pixels thick with round ends.
    public mutating func line(from a: (x: Double, y: Double), to b: (x: Double, y: Double), color: RGB, width: Double = 1) {
        polyline([a, b], color: color, width: width)
    }

    /// Anti-aliased connected line segments `width` pixels thick with round joins and ends.
    /// Overlapping segments do not darken each other: coverage is combined before the colour is
    /// mixed in. Non-finite points are left out (their neighbours are joined); a single point draws a dot.
    public mutating func polyline(_ points: [(x: Double, y: Double)], color: RGB, width lineWidth: Double = 1) {
        let finite = points.filter { $0.x.isFinite && $0.y.isFinite }
        guard !finite.isEmpty, lineWidth > 0, lineWidth.isFinite else { return }
        let reach = lineWidth / 2 + 0.5  // pixel centres closer than this to the line get some coverage
        var minX = Double.infinity, maxX = -Double.infinity, minY = Double.infinity, maxY = -Double.infinity
        for p in finite {
            minX = min(minX, p.x); maxX = max(maxX, p.x)
            minY = min(minY, p.y); maxY = max(maxY, p.y)
        }
        let area = drawableArea
        guard !area.isEmpty else { return }
        // The box the stroke can touch, computed in Double so far-away points cannot overflow Int.
        let left = max(Double(area.x), (minX - reach - 1).rounded(.down))
        let top = max(Double(area.y), (minY - reach - 1).rounded(.down))
        let right = min(Double(area.maxX), (maxX + reach + 1).rounded(.up))
        let bottom = min(Double(area.maxY), (maxY + reach + 1).rounded(.up))
        guard left < right && top < bottom else { return }
        let box = PixelRect(x: Int(left), y: Int(top), width: Int(right - left), height: Int(bottom - top))

        var coverage = [Float](repeating: 0, count: box.width * box.height)
        coverage.withUnsafeMutableBufferPointer { cov in
            if finite.count == 1 {
                Self.stroke(finite[0], finite[0], reach: reach, box: box, into: cov)
            }
            for k in 1..<max(1, finite.count) {
                Self.stroke(finite[k - 1], finite[k], reach: reach, box: box, into: cov)
            }
        }
        let canvasWidth = width
        coverage.withUnsafeBufferPointer { cov in
            pixels.withUnsafeMutableBufferPointer { p in
                for row in 0..<box.height {
                    for column in 0..<box.width {
                        let a = Double(cov[row * box.width + column])
                        guard a > 0 else { continue }
                        let i = ((box.y + row) * canvasWidth + box.x + column) * 3
                        p[i] = Self.mix(p[i], color.r, a)
                        p[i + 1] = Self.mix(p[i + 1], color.g, a)
                        p[i + 2] = Self.mix(p[i + 2], color.b, a)
                    }
                }
            }
        }
    }

    @inline(__always)
    static func mix(_ under: UInt8, _ over: UInt8, _ alpha: Double) -> UInt8 {
        UInt8((Double(under) + (Double(over) - Double(under)) * alpha).rounded())
    }

    /// Accumulates (by maximum) the coverage of the capsule of radius `reach - 0.5` around segment
    /// a-b into `cov`, a `box`-sized buffer. Coverage of a pixel is `reach - distance` from its
    /// centre to the segment, clamped to 0...1.
    static func stroke(_ a: (x: Double, y: Double), _ b: (x: Double, y: Double), reach: Double, box: PixelRect,
                       into cov: UnsafeMutableBufferPointer<Float>) {
        // Cut the segment to the box (plus the stroke's reach) so that coordinates stay small.
        let margin = reach + 2
        guard let (p, q) = clipSegment(a, b, minX: Double(box.x) - margin, minY: Double(box.y) - margin,
                                       maxX: Double(box.maxX) + margin, maxY: Double(box.maxY) + margin) else { return }
        // Walk along the major axis; `steep` swaps the roles of x and y.
        let steep = abs(q.y - p.y) > abs(q.x - p.x)
        let (u0, v0, u1, v1) = steep ? (p.y, p.x, q.y, q.x) : (p.x, p.y, q.x, q.y)
        let (uLo, uHi) = (min(u0, u1), max(u0, u1))
        let du = u1 - u0, dv = v1 - v0
        let lengthSquared = du * du + dv * dv
        let (majorLo, majorHi) = steep ? (box.y, box.maxY) : (box.x, box.maxX)
        let (minorLo, minorHi) = steep ? (box.x, box.maxX) : (box.y, box.maxY)
        let first = max(majorLo, Int((uLo - reach - 0.5).rounded(.up)))
        let last = min(majorHi - 1, Int((uHi + reach - 0.5).rounded(.down)))
        guard first <= last else { return }
        for i in first...last {
            let cu = Double(i) + 0.5
            // The part of the segment within `reach` of this column (or row) bounds the other axis.
            var lo = max(cu - reach, uLo), hi = min(cu + reach, uHi)
            if lo > hi { lo = min(max(cu, uLo), uHi); hi = lo }
            let va = du == 0 ? v0 : v0 + (lo - u0) * dv / du
            let vb = du == 0 ? v1 : v0 + (hi - u0) * dv / du
            let jFirst = max(minorLo, Int((min(va, vb) - reach - 0.5).rounded(.up)))
            let jLast = min(minorHi - 1, Int((max(va, vb) + reach - 0.5).rounded(.down)))
            guard jFirst <= jLast else { continue }
            for j in jFirst...jLast {
                let cv = Double(j) + 0.5
                // Distance from the pixel centre (cu, cv) to the segment.
                var t = lengthSquared > 0 ? ((cu - u0) * du + (cv - v0) * dv) / lengthSquared : 0
                t = min(max(t, 0), 1)
                let eu = cu - (u0 + t * du), ev = cv - (v0 + t * dv)
                let c = reach - (eu * eu + ev * ev).squareRoot()
                guard c > 0 else { continue }
                let (x, y) = steep ? (j, i) : (i, j)
                let k = (y - box.y) * box.width + (x - box.x)
                let value = Float(min(c, 1))
                if value > cov[k] { cov[k] = value }
            }
        }
    }

    /// Liang-Barsky clipping of segment a-b to a rectangle; nil when nothing of it is inside.
    static func clipSegment(_ a: (x: Double, y: Double), _ b: (x: Double, y: Double),
                            minX: Double, minY: Double, maxX: Double, maxY: Double)
        -> ((x: Double, y: Double), (x: Double, y: Double))? {
        let dx = b.x - a.x, dy = b.y - a.y
        guard dx.isFinite && dy.isFinite else { return nil }
        var t0 = 0.0, t1 = 1.0
        for (p, q) in [(-dx, a.x - minX), (dx, maxX - a.x), (-dy, a.y - minY), (dy, maxY - a.y)] {
            if p == 0 {
                if q < 0 { return nil }
            } else {
                let r = q / p
                if p < 0 { t0 = max(t0, r) } else { t1 = min(t1, r) }
                if t0 > t1 { return nil }
            }
        }
        return ((a.x + t0 * dx, a.y + t0 * dy), (a.x + t1 * dx, a.y + t1 * dy))
    }
}
