import Foundation
import XCTest
import ImageKit
@testable import Plot

final class PlotTests: XCTestCase {
    /// Loss-like curves: a noisy, decaying train loss logged every step and a smoother validation
    /// loss every 250 steps.
    static func lossCurves(steps: Int = 5000) -> LinePlot {
        var state: UInt64 = 0x9E3779B97F4A7C15
        func noise() -> Double {  // xorshift, deterministic
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Double(state >> 11) / Double(1 << 53) - 0.5
        }
        let train = (0..<steps).map { step -> (x: Double, y: Double) in
            let t = Double(step)
            return (t, (2.3 * exp(-t / 600) + 0.04 + 0.03 * exp(-t / 3000)) * (1 + 0.25 * noise()))
        }
        let validation = stride(from: 0, through: steps, by: 250).map { step -> (x: Double, y: Double) in
            let t = Double(step)
            return (t, 2.3 * exp(-t / 650) + 0.06 + 0.05 * exp(-t / 3000))
        }
        return LinePlot(title: "BootMAE pretraining loss (ViT-S/16)", xLabel: "step", yLabel: "loss",
                        series: [.init(name: "train", points: train), .init(name: "validation", points: validation)],
                        logY: true)
    }

    func testRenderingIsDeterministic() throws {
        let plot = Self.lossCurves()
        let first = try plot.png(), second = try plot.png()
        XCTAssertEqual(first, second)
        XCTAssertEqual(Array(first.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        XCTAssertEqual(try ImageDecoder.decode(first), plot.render())
    }

    func testDimensions() {
        var plot = Self.lossCurves(steps: 300)
        for (w, h) in [(800, 480), (640, 360), (1600, 960), (120, 80), (1, 1)] {
            plot.width = w
            plot.height = h
            let image = plot.render()
            XCTAssertEqual([image.width, image.height, image.channels], [w, h, 3])
        }
    }

    func testHorizontalSeriesFillsTheMiddleRow() {
        let red = RGB(hex: 0xd62728)
        var plot = LinePlot(series: [.init(name: "", points: (0...10).map { (Double($0), 1.0) }, color: red)])
        plot.yRange = 0...2
        let layout = plot.makeLayout()
        let image = plot.render()
        let plotArea = layout.plot
        let middle = plotArea.y + plotArea.height / 2
        let dataColumns = Int(layout.column(0).rounded(.up)) + 2..<Int(layout.column(10)) - 2
        XCTAssertGreaterThan(dataColumns.count, 600)
        for x in stride(from: dataColumns.lowerBound, to: dataColumns.upperBound, by: 7) {
            XCTAssertEqual(pixel(image, x, middle), red, "column \(x)")
            XCTAssertNotEqual(pixel(image, x, middle - 5), red, "column \(x)")
            XCTAssertNotEqual(pixel(image, x, middle + 5), red, "column \(x)")
        }
        XCTAssertEqual(layout.yTicks.first?.value, 0)
        XCTAssertEqual(layout.yTicks.last?.value, 2)
    }

    func testLegendHoldsSwatchesAndNames() throws {
        let plot = Self.lossCurves(steps: 2000)
        let layout = plot.makeLayout()
        let box = try XCTUnwrap(plot.legendBox(layout))
        XCTAssertEqual(box.intersection(layout.plot), box, "legend inside the plot area")
        let image = plot.render()
        var text = 0, swatches = [0, 0]
        for y in box.y..<box.maxY {
            for x in box.x..<box.maxX {
                let p = pixel(image, x, y)
                if p == LinePlot.textColor { text += 1 }
                for k in 0..<2 where p == plot.color(ofSeries: k) { swatches[k] += 1 }
            }
        }
        // "train" + "validation" are 15 glyphs of several pixels each.
        XCTAssertGreaterThan(text, 100)
        XCTAssertGreaterThan(swatches[0], 20)
        XCTAssertGreaterThan(swatches[1], 20)
        // The decaying curves leave the upper right corner free.
        XCTAssertEqual(box.maxX, layout.plot.maxX - 10)
        XCTAssertEqual(box.y, layout.plot.y + 10)
        // Without names there is no legend.
        var unnamed = plot
        for k in unnamed.series.indices { unnamed.series[k].name = "" }
        XCTAssertNil(unnamed.legendBox(unnamed.makeLayout()))
    }

    func testLogAxisTicksAtDecades() {
        let values = stride(from: -3.0, through: 0, by: 0.01).map { pow(10, $0) }
        let plot = LinePlot(series: [.init(name: "loss", y: values)], logY: true)
        let layout = plot.makeLayout()
        XCTAssertEqual(layout.yTicks.map(\.label), ["0.001", "0.01", "0.1", "1"])
        for (tick, exponent) in zip(layout.yTicks, -3...0) {
            XCTAssertEqual(tick.value, pow(10, Double(exponent)), accuracy: 1e-12 * tick.value)
            XCTAssertEqual(tick.position, Double(exponent))
        }
        // Decades are equally spaced on the canvas, with 2...9 minor lines in between.
        let rows = layout.yTicks.map { layout.row($0.position) }
        for k in 2..<rows.count {
            XCTAssertEqual(rows[k - 1] - rows[k], rows[k - 2] - rows[k - 1], accuracy: 1e-9)
        }
        XCTAssertEqual(layout.yMinorTicks.filter { $0 > -3 && $0 < 0 }.count, 24)

        // Many decades: labels switch to 1eN and are thinned out.
        let wide = LinePlot(series: [.init(name: "", y: [1e-12, 1, 1e9])], logY: true).makeLayout()
        XCTAssertTrue(wide.yTicks.allSatisfy { $0.label.hasPrefix("1e") }, "\(wide.yTicks.map(\.label))")
        XCTAssertLessThanOrEqual(wide.yTicks.count, 12)
        XCTAssertTrue(wide.yTicks.allSatisfy { $0.position == $0.position.rounded() })

        // Less than a decade: 1-2-5 ticks.
        let narrow = LinePlot(series: [.init(name: "", y: [0.15, 0.9])], logY: true).makeLayout()
        XCTAssertEqual(narrow.yTicks.map(\.label), ["0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"])
        // Two decades: 1-2-5 ticks, other multiples as minor grid lines.
        let twoDecades = LinePlot(series: [.init(name: "", y: [0.03, 2.5])], logY: true).makeLayout()
        XCTAssertEqual(twoDecades.yTicks.map(\.label), ["0.05", "0.1", "0.2", "0.5", "1", "2"])
        XCTAssertFalse(twoDecades.yMinorTicks.isEmpty)
    }

    func testNonFiniteAndEmptyInputsDoNotCrash() {
        let nan = Double.nan, inf = Double.infinity
        let noisy = LinePlot.Series(name: "noisy", points: [(0, 1), (1, nan), (2, 3), (inf, 4), (3, -inf), (4, 2), (nan, nan)])
        let layout = LinePlot(series: [noisy]).makeLayout()
        XCTAssertTrue(layout.hasData)
        XCTAssertEqual(layout.paths[0].count, 3, "NaN and infinite points are left out")
        XCTAssertLessThan(layout.x.hi, 4.5)
        XCTAssertGreaterThan(layout.y.lo, 0.5)

        let cases: [LinePlot] = [
            LinePlot(),
            LinePlot(title: "nothing", xLabel: "x", yLabel: "y", series: [.init(name: "empty", points: [])]),
            LinePlot(series: [.init(name: "all NaN", y: [nan, nan, inf])], logY: true),
            LinePlot(series: [.init(name: "non-positive on log axis", y: [0, -1, -2])], logY: true),
            LinePlot(series: [.init(name: "single", points: [(3, 3)])]),
            LinePlot(series: [.init(name: "single", points: [(3, 3)])], logY: true),
            LinePlot(series: [.init(name: "flat zero", y: [0, 0, 0])]),
            LinePlot(series: [noisy, .init(name: "", points: []), .init(name: "huge", y: [1e300, -1e300])]),
            LinePlot(series: [.init(name: "tiny span", y: [1, 1 + 1e-15, 1])]),
        ]
        for plot in cases {
            let image = plot.render()
            XCTAssertEqual([image.width, image.height], [800, 480])
        }
        let empty = LinePlot(series: [.init(name: "empty", points: [])])
        XCTAssertFalse(empty.makeLayout().hasData)
        XCTAssertNil(LinePlot().legendBox(LinePlot().makeLayout()))
        // The "no data" note is drawn in the middle of the plot area.
        let layoutOfEmpty = empty.makeLayout(), image = empty.render()
        let plotArea = layoutOfEmpty.plot
        var note = 0
        for y in (plotArea.y + plotArea.height / 2 - 10)..<(plotArea.y + plotArea.height / 2 + 10) {
            for x in (plotArea.x + plotArea.width / 2 - 40)..<(plotArea.x + plotArea.width / 2 + 40)
            where pixel(image, x, y) == LinePlot.noDataColor {
                note += 1
            }
        }
        XCTAssertGreaterThan(note, 50)

        // Explicit ranges that exclude all data, or are unusable, still render.
        var clipped = LinePlot(series: [noisy])
        clipped.xRange = 100...200
        clipped.yRange = -1e308...1e308
        _ = clipped.render()
        clipped.yRange = 0...1
        clipped.xRange = nil
        clipped.series.append(.init(name: "far out", y: [1e305, -1e305, 0.5, 1e307, -1e307, 0.5, 1e300]))
        _ = clipped.render()
        clipped.yRange = 5...5
        clipped.logY = true
        _ = clipped.render()
    }

    /// 100k points are reduced to at most four per pixel column before drawing (this is timed by
    /// eye only; it takes milliseconds).
    func testHundredThousandPointsAreDecimated() {
        var state: UInt64 = 12345
        let y = (0..<100_000).map { i -> Double in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return 1 / (1 + Double(i) / 1000) + Double(state >> 40) / Double(1 << 24) * 0.1
        }
        let plot = LinePlot(title: "100k", series: [.init(name: "dense", y: y)])
        let layout = plot.makeLayout()
        XCTAssertLessThanOrEqual(layout.paths[0].count, 4 * (layout.plot.width + 1))
        XCTAssertGreaterThan(layout.paths[0].count, layout.plot.width)
        let image = plot.render()
        XCTAssertEqual(image.width, 800)
    }

    func testDecimationKeepsTheEnvelope() {
        let points: [(x: Double, y: Double)] = [(0.1, 5), (0.2, 1), (0.5, 9), (0.9, 4), (1.2, 3), (1.5, 7), (2.5, 2)]
        let kept = LinePlot.decimated(points)
        XCTAssertEqual(kept.map(\.y), [5, 1, 9, 4, 3, 7, 2])
        let dense = (0..<1000).map { i -> (x: Double, y: Double) in (x: 10 + Double(i) / 1000, y: Double((i * 37 + 50) % 101)) }
        let column = LinePlot.decimated(dense)
        XCTAssertEqual(column.count, 4)
        XCTAssertEqual(column.first?.y, dense.first?.y)
        XCTAssertEqual(column.last?.y, dense.last?.y)
        XCTAssertEqual(Set(column.map { $0.y }), Set([0, 100, dense[0].y, dense[999].y]))
    }

    func testNiceTicksAndLabels() {
        XCTAssertEqual(Ticks.linear(lo: 0, hi: 1, count: 5).map(\.label), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"])
        XCTAssertEqual(Ticks.linear(lo: -0.3, hi: 10.4, count: 5).map(\.label), ["0", "2", "4", "6", "8", "10"])
        XCTAssertEqual(Ticks.linear(lo: -120, hi: 4900, count: 5).map(\.label), ["0", "1000", "2000", "3000", "4000"])
        XCTAssertEqual(Ticks.linear(lo: 0.0123, hi: 0.0177, count: 5).map(\.label), ["0.013", "0.014", "0.015", "0.016", "0.017"])
        XCTAssertEqual(Ticks.linear(lo: -1.1, hi: 1.1, count: 4).map(\.label), ["-1.0", "-0.5", "0.0", "0.5", "1.0"])
        XCTAssertEqual(Ticks.linear(lo: 0, hi: 5e7, count: 5).map(\.label), ["0", "1e7", "2e7", "3e7", "4e7", "5e7"])
        XCTAssertEqual(Ticks.linear(lo: 0, hi: 2.5e-5, count: 5).map(\.label), ["0", "5e-6", "1.0e-5", "1.5e-5", "2.0e-5", "2.5e-5"])
        for (span, count) in [(1.0, 5), (7.3, 4), (0.0042, 6), (123456.0, 8)] {
            let step = Ticks.niceStep(span: span, count: count)
            let mantissa = step / pow(10, log10(step).rounded(.down))
            XCTAssertTrue([1, 2, 5, 10].contains { abs(mantissa - $0) < 1e-9 }, "\(step)")
        }
        XCTAssertEqual(Ticks.fixed(-0.0001, decimals: 2), "0.00")
        XCTAssertEqual(Ticks.fixed(0.05, decimals: 2), "0.05")
        XCTAssertEqual(Ticks.fixed(-12.5, decimals: 1), "-12.5")
        XCTAssertEqual(Ticks.scientific(9.99e6, significantExponent: 4), "9.99e6")
        XCTAssertEqual(Ticks.scientific(9.999e6, significantExponent: 5), "1.00e7")
        XCTAssertEqual(Ticks.scientific(-0.00025, significantExponent: -5), "-2.5e-4")
    }

    func testFontCoversPrintableASCII() {
        let font = BitmapFont.standard
        var seen = Set<[UInt8]>()
        for code in 33...126 {
            let rows = Array(font.rows(of: Unicode.Scalar(UInt8(code))))
            XCTAssertEqual(rows.count, 9)
            XCTAssertTrue(rows.contains { $0 != 0 }, "glyph \(code) is blank")
            XCTAssertTrue(rows.allSatisfy { $0 < 32 }, "glyph \(code) wider than 5 pixels")
            XCTAssertTrue(seen.insert(rows).inserted, "glyph \(code) repeats another glyph")
        }
        XCTAssertTrue(font.rows(of: " ").allSatisfy { $0 == 0 })
        XCTAssertEqual(Array(font.rows(of: "é")), BitmapFont.missingGlyph)
        XCTAssertEqual(font.width(of: ""), 0)
        XCTAssertEqual(font.width(of: "A"), 5)
        XCTAssertEqual(font.width(of: "loss", scale: 2), (4 * 6 - 1) * 2)

        // Drawn text: 'I' is a vertical bar with serifs; a vertical 'I' is the same turned.
        var canvas = Canvas(width: 20, height: 20)
        canvas.text("I", at: (2, 3), color: .black)
        XCTAssertEqual(canvas[4, 3], .black)
        XCTAssertEqual(canvas[4, 6], .black)
        XCTAssertEqual(canvas[2, 6], .white)
        canvas = Canvas(width: 20, height: 20)
        canvas.text("L", at: (0, 0), color: .black, scale: 2, vertical: true)
        // 'L' is a column plus a bottom bar; turned counter-clockwise the column lies along the
        // bottom edge of its 18 x 10 box and the bar runs up the right side.
        XCTAssertEqual(canvas[0, 9], .black)
        XCTAssertEqual(canvas[13, 9], .black)
        XCTAssertEqual(canvas[13, 0], .black)
        XCTAssertEqual(canvas[5, 2], .white)
    }

    func testCanvasLines() {
        var canvas = Canvas(width: 40, height: 20)
        canvas.line(from: (2, 10), to: (38, 10), color: .black, width: 2)
        for x in 3..<37 {
            XCTAssertEqual(canvas[x, 9], .black)
            XCTAssertEqual(canvas[x, 10], .black)
            XCTAssertEqual(canvas[x, 8], .white)
            XCTAssertEqual(canvas[x, 11], .white)
        }
        // Diagonal lines are anti-aliased: some pixels are in between.
        canvas = Canvas(width: 40, height: 40)
        canvas.line(from: (1, 3), to: (37, 29), color: .black, width: 1.5)
        let levels = Set(canvas.pixels)
        XCTAssertTrue(levels.contains(0) && levels.contains(255) && levels.count > 5)
        // Far-away and non-finite coordinates are clipped, not crashed on.
        canvas.line(from: (-1e9, -1e9), to: (1e9, 1e9), color: .black, width: 3)
        XCTAssertEqual(canvas[20, 20], .black)
        canvas.line(from: (-1e300, -1e300), to: (1e300, 1e300), color: .black, width: 3)
        canvas.line(from: (-.greatestFiniteMagnitude, 0), to: (.greatestFiniteMagnitude, 1), color: .black, width: 3)
        canvas.polyline([(0, 0), (.nan, 4), (.infinity, 5)], color: .black, width: 2)
        canvas.clip = PixelRect(x: 0, y: 0, width: 5, height: 5)
        canvas.fill(RGB(gray: 7))
        XCTAssertEqual(canvas[4, 4], RGB(gray: 7))
        XCTAssertNotEqual(canvas[5, 5], RGB(gray: 7))
    }

    /// Writes the loss-curve example to $BOOTMAE_PLOT_EXAMPLE (e.g. /tmp/plot-example.png) for a look.
    func testExampleChart() throws {
        var plot = Self.lossCurves(steps: 20000)
        let bytes = try plot.png()
        XCTAssertGreaterThan(bytes.count, 1000)
        if let path = ProcessInfo.processInfo.environment["BOOTMAE_PLOT_EXAMPLE"] {
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            plot.logY = false
            plot.title = "Linear axis"
            let schedule = (0...20).map { i -> Double in 1.5 * cos(Double(i) / 20 * Double.pi / 2) }
            plot.series.append(.init(name: "lr x 1000", x: (0...20).map { Double($0) * 1000 }, y: schedule))
            try Data(plot.png()).write(to: URL(fileURLWithPath: path.replacingOccurrences(of: ".png", with: "-linear.png")))
        }
    }

    private func pixel(_ image: Image, _ x: Int, _ y: Int) -> RGB {
        RGB(image[x: x, y: y, channel: 0], image[x: x, y: y, channel: 1], image[x: x, y: y, channel: 2])
    }
}
