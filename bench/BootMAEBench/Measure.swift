import Foundation
import ViT

// Shared by every mode: timing, FLOP counts, and the JSON-lines protocol that bench/compare drives.

func median(_ xs: [Double]) -> Double { let s = xs.sorted(); return s[s.count / 2] }

/// Multiply-adds ×2 of one image's forward pass (linear layers and attention matmuls).
func flopsPerImage(_ c: ViTConfig) -> Double {
    let (t, d, h) = (Double(c.numTokens), Double(c.embedDim), Double(c.mlpHidden))
    let patch = 2 * Double(c.numPatches) * Double(c.patchDim) * d
    let block = 2 * t * d * 3 * d + 2 * 2 * t * t * d + 2 * t * d * d + 2 * 2 * t * d * h
    return patch + Double(c.depth) * block
}

struct Timing {
    /// Seconds per timed call.
    var times: [Double]
    /// Minor page faults per timed call: memory handed back to the kernel and faulted in again.
    var faultsPerCall: Double
    var medianSeconds: Double { median(times) }
}

/// Seconds per call of `body`: one untimed call first (another engine may have just evicted our
/// caches), then timed calls until `seconds` have passed and at least `minIterations` ran.
func timeRuns(seconds: Double, minIterations: Int, _ body: () throws -> Void) rethrows -> Timing {
    try body()
    var times: [Double] = []
    let faults0 = minorFaults()
    let start = DispatchTime.now().uptimeNanoseconds
    while times.count < minIterations || Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < seconds {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }
    return Timing(times: times, faultsPerCall: Double(minorFaults() - faults0) / Double(times.count))
}

/// Minor page faults of this process so far.
func minorFaults() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_minflt
}

/// VmHWM / VmRSS of this process in KiB (Linux; empty elsewhere).
func memoryStatus() -> [String: Any] {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return [:] }
    var out: [String: Any] = [:]
    for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") || line.hasPrefix("VmRSS:") {
        let parts = line.split(separator: " ", omittingEmptySubsequences: true)
        if parts.count >= 2, let kib = Int(parts[1]) { out[line.hasPrefix("VmHWM") ? "vm_hwm_kib" : "vm_rss_kib"] = kib }
    }
    return out
}

/// Writes one JSON object as one line, unbuffered, so a driving process sees it at once.
func emitJSON(_ object: [String: Any]) {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
    FileHandle.standardOutput.write(data + Data("\n".utf8))
}

/// Worker loop: announces `ready`, then answers each stdin line (words separated by spaces) with
/// one JSON line until EOF or `quit`. A failing command answers {"event": "error"} and the loop goes on.
func serveCommands(ready: [String: Any], _ handle: ([String]) throws -> [String: Any]) {
    emitJSON(ready.merging(["event": "ready"]) { a, _ in a })
    while let line = readLine() {
        let words = line.split(separator: " ").map(String.init)
        guard let command = words.first else { continue }
        if command == "quit" { break }
        do { emitJSON(try handle(words)) } catch { emitJSON(["event": "error", "message": "\(error)"]) }
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// `--name value` options and bare `--flag`s of the machine-readable modes.
struct Options {
    let arguments: [String]

    func string(_ name: String) throws -> String? {
        guard let i = arguments.firstIndex(of: name) else { return nil }
        guard i + 1 < arguments.count else { throw BenchError("\(name) needs a value") }
        return arguments[i + 1]
    }

    func int(_ name: String, default value: Int) throws -> Int {
        guard let s = try string(name) else { return value }
        guard let v = Int(s), v > 0 else { throw BenchError("\(name) must be a positive integer, got '\(s)'") }
        return v
    }

    func double(_ name: String, default value: Double) throws -> Double {
        guard let s = try string(name) else { return value }
        guard let v = Double(s), v >= 0 else { throw BenchError("\(name) must be a non-negative number, got '\(s)'") }
        return v
    }

    func flag(_ name: String) -> Bool { arguments.contains(name) }
}

/// Parses a worker command's numeric argument with an error that names it.
func argument<T: LosslessStringConvertible>(_ words: [String], _ index: Int, _ name: String) throws -> T {
    guard index < words.count, let v = T(words[index]) else {
        throw BenchError("'\(words.first ?? "")' needs <\(name)> as argument \(index)")
    }
    return v
}
