import Foundation
import Training

/// Wall and process CPU time. On a shared machine the wall time of a step swings with other
/// people's load; the CPU time (all our threads) mostly measures our own work, so both are shown.
struct Clock {
    static func wall() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    static func cpu() -> Double { ProcessCPUTime.seconds() }
}

/// Medians of wall and CPU seconds of `body` over at least `seconds` (and `minRuns` runs), after one warm-up.
func timeMedians(seconds: Double, minRuns: Int = 3, _ body: () -> Void) -> (wall: Double, cpu: Double) {
    body()
    var walls: [Double] = [], cpus: [Double] = []
    let start = Clock.wall()
    while Clock.wall() - start < seconds || walls.count < minRuns {
        let (w0, c0) = (Clock.wall(), Clock.cpu())
        body()
        walls.append(Clock.wall() - w0)
        cpus.append(Clock.cpu() - c0)
    }
    return (median(walls), median(cpus))
}
