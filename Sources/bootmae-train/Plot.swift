import ArgumentParser
import Foundation
import Checkpoint
import Plot
import Training

/// `bootmae-train plot`: one metric of several runs on one chart, to compare them at a glance.
struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Plot a metric from the metrics.jsonl of one or more run folders into one PNG.",
        discussion: """
            Examples: --metric loss (pretraining or fine-tuning loss), --metric test_top1 --x epoch \
            (fine-tuning accuracy per epoch), --metric pixel_loss --smooth 20.
            """)

    @Argument(help: "Run folders.")
    var runs: [String]

    @Option(help: "The metrics.jsonl field to plot (e.g. loss, pixel_loss, feature_loss, test_top1, lr).")
    var metric: String = "loss"

    @Option(help: "The x axis: step or epoch.")
    var x: String = "epoch"

    @Option(help: "Legend names, comma-separated, one per run (default: the folder names).")
    var labels: String?

    @Option(help: "Average each point with the N before it (noisy per-step losses).")
    var smooth: Int = 1

    @Flag(help: "Logarithmic y axis.")
    var logY = false

    @Option(help: "Chart title (default: the metric).")
    var title: String?

    @Option(help: "PNG file to write.")
    var out: String

    func validate() throws {
        guard !runs.isEmpty else { throw ValidationError("name at least one run folder") }
        guard ["step", "epoch"].contains(x) else { throw ValidationError("--x must be step or epoch") }
        guard smooth >= 1 else { throw ValidationError("--smooth must be at least 1") }
        if let labels, labels.split(separator: ",").count != runs.count {
            throw ValidationError("--labels names \(labels.split(separator: ",").count) runs but \(runs.count) were given")
        }
    }

    func run() throws {
        let names = labels.map { $0.split(separator: ",").map(String.init) } ?? runs.map { URL(fileURLWithPath: $0).lastPathComponent }
        var series: [LinePlot.Series] = []
        for (path, name) in zip(runs, names) {
            guard FileManager.default.fileExists(atPath: path + "/metrics.jsonl") else {
                throw fail("error: \(path) has no metrics.jsonl (is it a run folder?)", code: 1)
            }
            let rows = RunDirectory(reading: path).readMetrics()
            let points = rows.compactMap { row -> (x: Double, y: Double)? in
                guard let xv = (row[x] as? NSNumber)?.doubleValue, let yv = (row[metric] as? NSNumber)?.doubleValue, yv.isFinite else { return nil }
                return (xv, yv)
            }
            guard !points.isEmpty else { throw fail("error: \(path)/metrics.jsonl has no '\(metric)' values", code: 1) }
            series.append(LinePlot.Series(name: name, points: Self.movingAverage(points, window: smooth)))
        }
        var plot = LinePlot(title: title ?? metric.replacingOccurrences(of: "_", with: " "), xLabel: x,
                            yLabel: metric.replacingOccurrences(of: "_", with: " "), series: series)
        plot.logY = logY
        do { try AtomicFile.write(Data(try plot.png()), to: URL(fileURLWithPath: out)) } catch {
            throw fail("error: cannot write \(out): \(error)", code: 1)
        }
        print(out)
    }

    /// Each y replaced by the mean of itself and the window − 1 points before it.
    static func movingAverage(_ points: [(x: Double, y: Double)], window: Int) -> [(x: Double, y: Double)] {
        guard window > 1 else { return points }
        var sum = 0.0
        return points.indices.map { i in
            sum += points[i].y
            if i >= window { sum -= points[i - window].y }
            return (points[i].x, sum / Double(min(i + 1, window)))
        }
    }
}
