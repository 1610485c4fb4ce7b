#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import ImageKit

/// A line chart (for example training and validation loss against step), rendered without any
/// outside dependency: 1-2-5 ticks, light grid, legend, optional log10 y axis.
///
///     var plot = LinePlot(title: "Pretraining loss", xLabel: "step", yLabel: "loss", logY: true)
///     plot.series.append(.init(name: "train", points: trainLoss))
///     try writeFile(plot.png())
///
/// Points whose x or y is NaN or infinite (or y <= 0 on a log axis) are left out and their
/// neighbours joined; series without points still appear in the legend; a chart without any
/// point says "no data". Long series are reduced to the first, last, lowest and highest point of
/// each pixel column before drawing, which draws the same picture as all points.
public struct LinePlot: Sendable {
    public struct Series: Sendable {
        /// Legend text; series with an empty name are left out of the legend.
        public var name: String
        public var points: [(x: Double, y: Double)]
        /// nil: the `palette` colour for the series' position.
        public var color: RGB?

        public init(name: String, points: [(x: Double, y: Double)], color: RGB? = nil) {
            self.name = name
            self.points = points
            self.color = color
        }

        /// A series from parallel x and y arrays (the shorter one decides the length).
        public init(name: String, x: [Double], y: [Double], color: RGB? = nil) {
            self.init(name: name, points: zip(x, y).map { (x: $0, y: $1) }, color: color)
        }

        /// A series at x = 0, 1, 2, ...
        public init(name: String, y: [Double], color: RGB? = nil) {
            self.init(name: name, points: y.enumerated().map { (x: Double($0), y: $1) }, color: color)
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    /// A log10 y axis (for losses spanning decades).
    public var logY: Bool
    /// Image size in pixels.
    public var width: Int
    public var height: Int
    /// Fixed axis ranges; nil picks the data's range plus a small margin.
    public var xRange: ClosedRange<Double>?
    public var yRange: ClosedRange<Double>?
    /// Stroke width of the series in pixels at text scale 1 (it grows with the text scale).
    public var lineWidth: Double = 2
    /// Size of the bitmap text (1 = 7 px capitals); nil scales with the image (1 up to ~1400x840).
    public var textScale: Int?
    /// Colours for series without their own, by series index (cycled).
    public var palette: [RGB] = RGB.tab10

    public init(title: String = "", xLabel: String = "", yLabel: String = "", series: [Series] = [],
                logY: Bool = false, width: Int = 800, height: Int = 480) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
        self.logY = logY
        self.width = width
        self.height = height
    }

    /// The colour series `index` is drawn in.
    public func color(ofSeries index: Int) -> RGB {
        series[index].color ?? (palette.isEmpty ? RGB(hex: 0x1f77b4) : palette[index % palette.count])
    }

    /// The chart as an RGB image of `width` x `height`.
    public func render() -> Image {
        let layout = makeLayout()
        var canvas = Canvas(width: width, height: height)
        draw(layout, on: &canvas)
        return canvas.image
    }

    /// The chart as PNG file bytes.
    public func png() throws(ImageError) -> [UInt8] {
        try PNGEncoder.encode(render())
    }

    // MARK: - Layout

    static let textColor = RGB(gray: 0x26)
    static let tickLabelColor = RGB(gray: 0x40)
    static let frameColor = RGB(gray: 0x59)
    static let gridColor = RGB(gray: 0xe6)
    static let minorGridColor = RGB(gray: 0xf3)
    static let legendBorder = RGB(gray: 0xcc)
    static let noDataColor = RGB(gray: 0x99)
    static let tickLength = 5
    static let outerPadding = 12

    /// Everything `render` places, worked out before drawing.
    struct Layout {
        var plot: PixelRect
        var scale: Int
        /// Axis ranges; for a log axis `y` is in log10 units.
        var x: (lo: Double, hi: Double)
        var y: (lo: Double, hi: Double)
        var xTicks: [Tick]
        var yTicks: [Tick]
        var yMinorTicks: [Double]
        /// Per series, the points to draw in canvas coordinates (decimated).
        var paths: [[(x: Double, y: Double)]]
        var hasData: Bool

        func column(_ value: Double) -> Double {
            Double(plot.x) + (value - x.lo) / (x.hi - x.lo) * Double(plot.width)
        }

        func row(_ axisValue: Double) -> Double {
            Double(plot.y) + (y.hi - axisValue) / (y.hi - y.lo) * Double(plot.height)
        }
    }

    var effectiveTextScale: Int {
        textScale.map { max(1, $0) } ?? max(1, min(width / 700, height / 420))
    }

    /// The finite points of each series in axis units (log10 y on a log axis).
    func axisPoints() -> [[(x: Double, y: Double)]] {
        series.map { s in
            var out: [(x: Double, y: Double)] = []
            out.reserveCapacity(s.points.count)
            for p in s.points where p.x.isFinite && p.y.isFinite {
                if logY {
                    if p.y > 0 { out.append((p.x, log10(p.y))) }
                } else {
                    out.append(p)
                }
            }
            return out
        }
    }

    /// `explicit` when it is usable, else the data's range widened by `margin` of its span
    /// (degenerate ranges are opened up first).
    static func range(_ values: (lo: Double, hi: Double)?, explicit: (lo: Double, hi: Double)?, margin: Double,
                      logAxis: Bool) -> (lo: Double, hi: Double) {
        if let e = explicit, e.lo.isFinite, e.hi.isFinite, e.lo < e.hi { return e }
        guard var (lo, hi) = values else { return (0, 1) }
        if let e = explicit {  // a half-usable explicit range keeps its usable end
            if e.lo.isFinite && e.lo < hi { lo = e.lo }
            if e.hi.isFinite && e.hi > lo { hi = e.hi }
            if lo < hi && (e.lo.isFinite || e.hi.isFinite) {
                let pad = (hi - lo) * margin
                return (e.lo.isFinite ? lo : lo - pad, e.hi.isFinite ? hi : hi + pad)
            }
        }
        if hi - lo <= abs(hi) * 1e-12 {
            let half = logAxis ? 0.5 : (lo == 0 ? 1 : abs(lo) * 0.1)
            return (lo - half, hi + half)
        }
        let pad = (hi - lo) * margin
        return (lo - pad, hi + pad)
    }

    func makeLayout() -> Layout {
        precondition(width > 0 && height > 0, "plot size must be positive, got \(width)x\(height)")
        let font = BitmapFont.standard
        let s = effectiveTextScale
        let cap = font.capHeight * s
        let points = axisPoints()

        var xMin = Double.infinity, xMax = -Double.infinity, yMin = Double.infinity, yMax = -Double.infinity
        for list in points {
            for p in list {
                xMin = min(xMin, p.x); xMax = max(xMax, p.x)
                yMin = min(yMin, p.y); yMax = max(yMax, p.y)
            }
        }
        let hasData = xMin <= xMax
        let xRangeData = hasData ? (lo: xMin, hi: xMax) : nil
        let yRangeData = hasData ? (lo: yMin, hi: yMax) : nil
        let explicitY: (lo: Double, hi: Double)? = yRange.map { r in
            logY ? (lo: r.lowerBound > 0 ? log10(r.lowerBound) : -.infinity, hi: r.upperBound > 0 ? log10(r.upperBound) : -.infinity)
                 : (lo: r.lowerBound, hi: r.upperBound)
        }
        let xAxis = Self.range(xRangeData, explicit: xRange.map { ($0.lowerBound, $0.upperBound) }, margin: 0.02, logAxis: false)
        let yAxis = Self.range(yRangeData, explicit: explicitY, margin: 0.05, logAxis: logY)

        // Vertical layout first: it does not depend on the tick labels.
        let pad = Self.outerPadding
        let top = title.isEmpty ? pad + cap / 2 + 4 : pad + 2 * cap + pad
        var bottom = Self.tickLength + 5 + cap + pad
        if !xLabel.isEmpty { bottom += 10 + font.lineHeight(scale: s) }
        let plotHeight = max(1, height - top - bottom)

        let yTarget = max(3, plotHeight / (25 + 20 * s))
        let (yTicks, yMinor) = logY ? Ticks.logarithmic(lo: yAxis.lo, hi: yAxis.hi, count: yTarget)
                                    : (Ticks.linear(lo: yAxis.lo, hi: yAxis.hi, count: yTarget), [])
        let yLabelWidth = yTicks.map { font.width(of: $0.label, scale: s) }.max() ?? 0
        var left = pad + yLabelWidth + 5 + Self.tickLength
        if !yLabel.isEmpty { left += font.lineHeight(scale: s) + 10 }

        // The last x label may stick out to the right of the plot: make room once the labels are known.
        var right = pad + 8
        var xTicks: [Tick] = []
        for _ in 0..<2 {
            let plotWidth = max(1, width - left - right)
            var target = max(2, plotWidth / (60 + 40 * s))
            while true {
                xTicks = Ticks.linear(lo: xAxis.lo, hi: xAxis.hi, count: target)
                let widest = xTicks.map { font.width(of: $0.label, scale: s) }.max() ?? 0
                let spacing = xTicks.count > 1 ? (xTicks[1].position - xTicks[0].position) / (xAxis.hi - xAxis.lo) * Double(plotWidth) : .infinity
                if spacing >= Double(widest + 12 * s) || target <= 1 { break }
                target -= 1
            }
            guard let last = xTicks.last else { break }
            let overhang = Double(font.width(of: last.label, scale: s)) / 2
                - (xAxis.hi - last.position) / (xAxis.hi - xAxis.lo) * Double(plotWidth)
            let needed = Int(overhang.rounded(.up)) + 4
            if needed <= right { break }
            right = needed
        }

        let plot = PixelRect(x: left, y: top, width: max(1, width - left - right), height: plotHeight)
        var layout = Layout(plot: plot, scale: s, x: xAxis, y: yAxis, xTicks: xTicks, yTicks: yTicks,
                            yMinorTicks: yMinor, paths: [], hasData: hasData)
        layout.paths = points.map { list in
            Self.decimated(list.map { (x: layout.column($0.x), y: layout.row($0.y)) })
        }
        return layout
    }

    /// Keeps, of each run of consecutive points in the same pixel column, the first, the lowest,
    /// the highest and the last (in their original order): the line through them covers the same
    /// pixels as the line through all of them.
    static func decimated(_ points: [(x: Double, y: Double)]) -> [(x: Double, y: Double)] {
        let valid = points.filter { $0.x.isFinite && $0.y.isFinite }
        guard valid.count > 4 else { return valid }
        var out: [(x: Double, y: Double)] = []
        var i = 0
        while i < valid.count {
            let column = valid[i].x.rounded(.down)
            var j = i, low = i, high = i
            while j + 1 < valid.count && valid[j + 1].x.rounded(.down) == column {
                j += 1
                if valid[j].y < valid[low].y { low = j }
                if valid[j].y > valid[high].y { high = j }
            }
            var previous = -1
            for k in [i, min(low, high), max(low, high), j] where k != previous {
                out.append(valid[k])
                previous = k
            }
            i = j + 1
        }
        return out
    }

    // MARK: - Drawing

    func draw(_ layout: Layout, on canvas: inout Canvas) {
        let font = BitmapFont.standard
        let s = layout.scale, cap = font.capHeight * s
        let plot = layout.plot

        if !title.isEmpty {
            // Twice the text size when it fits, else the text size, shortened if need be.
            let room = width - 8
            let titleScale = font.width(of: title, scale: 2 * s) <= room ? 2 * s : s
            let text = Self.fitted(title, width: room, scale: titleScale)
            let w = font.width(of: text, scale: titleScale)
            let x = min(max(4, plot.x + (plot.width - w) / 2), max(4, width - w - 4))
            canvas.text(text, at: (x, Self.outerPadding + (2 * s - titleScale) * font.capHeight / 2), color: Self.textColor,
                        scale: titleScale)
        }

        // Grid.
        func gridRow(_ axisValue: Double) -> Int { min(plot.maxY - 1, max(plot.y, Int(layout.row(axisValue).rounded(.down)))) }
        func gridColumn(_ value: Double) -> Int { min(plot.maxX - 1, max(plot.x, Int(layout.column(value).rounded(.down)))) }
        for p in layout.yMinorTicks {
            canvas.fill(x: plot.x, y: gridRow(p), width: plot.width, height: 1, color: Self.minorGridColor)
        }
        for t in layout.yTicks {
            canvas.fill(x: plot.x, y: gridRow(t.position), width: plot.width, height: 1, color: Self.gridColor)
        }
        for t in layout.xTicks {
            canvas.fill(x: gridColumn(t.position), y: plot.y, width: 1, height: plot.height, color: Self.gridColor)
        }

        // Data, clipped to the plot area.
        canvas.clip = plot
        let stroke = lineWidth * Double(s)
        for (index, path) in layout.paths.enumerated() where !path.isEmpty {
            let dot = path.count == 1  // a lone point would be invisible at line width
            canvas.polyline(path, color: color(ofSeries: index), width: dot ? max(stroke, 2) * 3 : stroke)
        }
        canvas.clip = nil

        // Frame, ticks and tick labels.
        canvas.rect(x: plot.x - 1, y: plot.y - 1, width: plot.width + 2, height: plot.height + 2, color: Self.frameColor)
        let tickLength = Self.tickLength
        for t in layout.yTicks {
            let y = gridRow(t.position)
            canvas.fill(x: plot.x - 1 - tickLength, y: y, width: tickLength, height: 1, color: Self.frameColor)
            let w = font.width(of: t.label, scale: s)
            let labelY = min(max(0, y - (cap - 1) / 2), height - cap)
            canvas.text(t.label, at: (plot.x - 1 - tickLength - 5 - w, labelY), color: Self.tickLabelColor, scale: s)
        }
        let xLabelTop = plot.maxY + 1 + tickLength + 5
        for t in layout.xTicks {
            let x = gridColumn(t.position)
            canvas.fill(x: x, y: plot.maxY + 1, width: 1, height: tickLength, color: Self.frameColor)
            let w = font.width(of: t.label, scale: s)
            let labelX = min(max(0, x - (w - 1) / 2), width - w)
            canvas.text(t.label, at: (labelX, xLabelTop), color: Self.tickLabelColor, scale: s)
        }

        // Axis titles.
        if !xLabel.isEmpty {
            let text = Self.fitted(xLabel, width: width - 8, scale: s)
            let w = font.width(of: text, scale: s)
            let x = min(max(4, plot.x + (plot.width - w) / 2), max(4, width - w - 4))
            canvas.text(text, at: (x, xLabelTop + cap + 10), color: Self.textColor, scale: s)
        }
        if !yLabel.isEmpty {
            let text = Self.fitted(yLabel, width: plot.height + 2 * Self.outerPadding, scale: s)
            let h = font.width(of: text, scale: s)
            canvas.text(text, at: (Self.outerPadding, max(0, plot.y + (plot.height - h) / 2)), color: Self.textColor,
                        scale: s, vertical: true)
        }

        if layout.hasData {
            drawLegend(layout, on: &canvas)
        } else {
            let note = "no data"
            let w = font.width(of: note, scale: 2 * s)
            canvas.text(note, at: (plot.x + (plot.width - w) / 2, plot.y + (plot.height - 2 * cap) / 2), color: Self.noDataColor,
                        scale: 2 * s)
        }
    }

    /// The legend's box for this layout and where it goes: the plot corner (upper right, upper left,
    /// lower right, lower left) that hides the fewest data pixels. nil without named series.
    func legendBox(_ layout: Layout) -> PixelRect? {
        let entries = series.filter { !$0.name.isEmpty }
        guard !entries.isEmpty else { return nil }
        let font = BitmapFont.standard
        let s = layout.scale, cap = font.capHeight * s
        let padding = 8 * s, gap = 6 * s, swatch = 24 * s
        let textWidth = entries.map { font.width(of: legendText($0.name, layout), scale: s) }.max() ?? 0
        let w = padding + swatch + gap + textWidth + padding
        let h = 2 * padding + entries.count * cap + (entries.count - 1) * gap
        let plot = layout.plot, inset = 10
        let candidates = [
            PixelRect(x: plot.maxX - inset - w, y: plot.y + inset, width: w, height: h),
            PixelRect(x: plot.x + inset, y: plot.y + inset, width: w, height: h),
            PixelRect(x: plot.maxX - inset - w, y: plot.maxY - inset - h, width: w, height: h),
            PixelRect(x: plot.x + inset, y: plot.maxY - inset - h, width: w, height: h),
        ]
        // Count path samples (every ~2 px along each segment) under each candidate.
        var hidden = [Int](repeating: 0, count: candidates.count)
        for path in layout.paths where !path.isEmpty {
            func sample(_ x: Double, _ y: Double) {
                for (k, c) in candidates.enumerated()
                where x >= Double(c.x) - 2 && x < Double(c.maxX) + 2 && y >= Double(c.y) - 2 && y < Double(c.maxY) + 2 {
                    hidden[k] += 1
                }
            }
            sample(path[0].x, path[0].y)
            for k in 1..<max(1, path.count) {
                let a = path[k - 1], b = path[k]
                let length = max(abs(b.x - a.x), abs(b.y - a.y))  // may be huge with a fixed range
                let steps = length.isFinite ? Int(min(2000, max(1, (length / 2).rounded(.up)))) : 2000
                for step in 1...steps {
                    let t = Double(step) / Double(steps)
                    sample(a.x + (b.x - a.x) * t, a.y + (b.y - a.y) * t)
                }
            }
        }
        let best = hidden.indices.min { hidden[$0] < hidden[$1] }!
        return candidates[best]
    }

    /// A series name as the legend shows it: shortened to fit in the plot area.
    func legendText(_ name: String, _ layout: Layout) -> String {
        Self.fitted(name, width: layout.plot.width - 20 - 2 * 8 * layout.scale - 30 * layout.scale, scale: layout.scale)
    }

    /// `text`, or as much of it as fits in `width` pixels followed by "...".
    static func fitted(_ text: String, width: Int, scale: Int) -> String {
        let font = BitmapFont.standard
        guard font.width(of: text, scale: scale) > width else { return text }
        var scalars = Array(text.unicodeScalars)
        while !scalars.isEmpty && font.width(of: String(String.UnicodeScalarView(scalars)) + "...", scale: scale) > width {
            scalars.removeLast()
        }
        return scalars.isEmpty ? "" : String(String.UnicodeScalarView(scalars)) + "..."
    }

    func drawLegend(_ layout: Layout, on canvas: inout Canvas) {
        guard let box = legendBox(layout) else { return }
        let font = BitmapFont.standard
        let s = layout.scale, cap = font.capHeight * s
        let padding = 8 * s, gap = 6 * s, swatch = 24 * s
        canvas.clip = layout.plot
        canvas.fill(x: box.x, y: box.y, width: box.width, height: box.height, color: .white)
        canvas.rect(x: box.x, y: box.y, width: box.width, height: box.height, color: Self.legendBorder)
        var rowTop = box.y + padding
        for (index, entry) in series.enumerated() where !entry.name.isEmpty {
            let middle = Double(rowTop + cap / 2)  // on a pixel edge: a 2 px swatch stays sharp
            canvas.line(from: (Double(box.x + padding), middle), to: (Double(box.x + padding + swatch), middle),
                        color: color(ofSeries: index), width: max(2, lineWidth * Double(s)))
            canvas.text(legendText(entry.name, layout), at: (box.x + padding + swatch + gap, rowTop), color: Self.textColor, scale: s)
            rowTop += cap + gap
        }
        canvas.clip = nil
    }
}
