import Foundation

/// One setting of a training step to compare: its name and what switches the step to it.
struct StepVariant {
    let name: String
    let setUp: () -> Void
}

/// Alternates variants of a step (A B A B …) in this process, `rounds` times, and prints each
/// round's img/s and minor page faults per step, then per variant the median img/s, the rounds'
/// spread (min–max), CPU ms and faults per step: the only fair comparison on a shared machine.
/// The first variant is the reference of the ratios.
func compareVariants(_ title: String, batch: Int, threads: Int, step: () -> Void, _ variants: [StepVariant],
                     rounds: Int, seconds: Double) {
    var rates = [[Double]](repeating: [], count: variants.count), cpu = rates, faults = rates
    for round in 0..<rounds {
        var line = "round \(round):"
        for (k, v) in variants.enumerated() {
            v.setUp()
            let faults0 = minorFaults()
            var steps = 0
            let t = timeMedians(seconds: seconds) { step(); steps += 1 }
            rates[k].append(Double(batch) / t.wall)
            cpu[k].append(t.cpu)
            // The warm-up step is counted too: a variant's first step after a switch pays its own page faults.
            faults[k].append(Double(minorFaults() - faults0) / Double(steps))
            line += String(format: "  %@ %6.1f img/s %6.0f flt", v.name as NSString, Double(batch) / t.wall, faults[k].last!)
        }
        print(line)
    }
    print("\(title) batch \(batch), \(threads) thread(s), median over \(rounds) rounds (spread = min–max of the rounds):")
    for (k, v) in variants.enumerated() {
        print("  " + v.name.padding(toLength: 24, withPad: " ", startingAt: 0)
              + String(format: " %6.1f img/s (%6.1f–%6.1f)  cpu %7.1f ms/step  %6.0f faults/step  ratio %.3f",
                       median(rates[k]), rates[k].min()!, rates[k].max()!, median(cpu[k]) * 1e3, median(faults[k]),
                       median(rates[k]) / median(rates[0])))
    }
    let memory = memoryStatus()
    if let hwm = memory["vm_hwm_kib"] as? Int { print(String(format: "  peak RSS %.0f MiB", Double(hwm) / 1024)) }
}
