import Foundation
import Checkpoint
import Plot

extension RunDirectory {
    /// Draws the named metrics of metrics.jsonl against the step as `loss.png` (log scale).
    public func writeLossPlot(keys: [String], title: String, file name: String = "loss.png") throws {
        let rows = readMetrics()
        var series: [LinePlot.Series] = []
        for key in keys {
            let points = rows.compactMap { row -> (x: Double, y: Double)? in
                guard let step = (row["step"] as? NSNumber)?.doubleValue, let y = (row[key] as? NSNumber)?.doubleValue else { return nil }
                return (step, y)
            }
            if !points.isEmpty { series.append(LinePlot.Series(name: key.replacingOccurrences(of: "_", with: " "), points: points)) }
        }
        var plot = LinePlot(title: title, xLabel: "step", yLabel: "loss", series: series)
        plot.logY = true
        try AtomicFile.write(Data(try plot.png()), to: file(name))
    }
}
