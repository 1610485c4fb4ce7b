import Foundation
import Objectives
import Tensor
import ViT

/// Where one whole training step's time goes: the step's phases (BootMAE: masks, encoder, both
/// decoders, momentum encoder, losses, backward passes, AdamW, EMA; iBOT: masks, teacher and student
/// forward, loss, student backward, clipping, AdamW, teacher EMA and centres), timed by the phase markers the step
/// calls, wall and process-CPU ms, medians over the runs. Runs the whole batch on one network
/// (ops split over the threads), so the phases are sequential and their times add up.
func stepBreakdown(_ mode: TrainStepMode, seconds: Double) {
    var samples: [String: (wall: [Double], cpu: [Double])] = [:]
    var order: [String] = []
    func run(record: Bool) {
        var (wall, cpu) = (Clock.wall(), Clock.cpu())
        func mark(_ phase: String) {
            let (w, c) = (Clock.wall(), Clock.cpu())
            if record {
                if samples[phase] == nil { samples[phase] = ([], []); order.append(phase) }
                samples[phase]!.wall.append(w - wall)
                samples[phase]!.cpu.append(c - cpu)
            }
            (wall, cpu) = (w, c)
        }
        var rng = SeededRandom(seed: 0, stream: UInt64(mode.steps))
        mode.network.parameters.zeroGrads()
        mark("zero gradients")
        let report = mode.network.trainStep(mode.batch, rng: &rng, options: mode.options, clock: mode.clock, phase: mark)
        mode.update(report, phase: mark)
    }
    run(record: false)
    let start = Clock.wall()
    var runs = 0
    while Clock.wall() - start < seconds || runs < 5 { run(record: true); runs += 1 }
    let rows = order.map { ($0, median(samples[$0]!.wall), median(samples[$0]!.cpu)) }
    let (wallTotal, cpuTotal) = (rows.reduce(0) { $0 + $1.1 }, rows.reduce(0) { $0 + $1.2 })
    print("\(mode.name) step breakdown, batch \(mode.batch.count), \(mode.threads) thread(s), one network, \(runs) runs (median ms)")
    for (phase, w, c) in rows {
        print("  " + phase.padding(toLength: 30, withPad: " ", startingAt: 0)
              + String(format: " wall %8.2f  cpu %8.2f  %5.1f%%", w * 1e3, c * 1e3, 100 * w / wallTotal))
    }
    print("  " + "total".padding(toLength: 30, withPad: " ", startingAt: 0)
          + String(format: " wall %8.2f  cpu %8.2f  (%.1f img/s)", wallTotal * 1e3, cpuTotal * 1e3, Double(mode.batch.count) / wallTotal))
}
