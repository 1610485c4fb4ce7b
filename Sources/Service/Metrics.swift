import Foundation

/// A small Prometheus registry: labelled counters, gauges and histograms, rendered in the text
/// exposition format for GET /metrics.
public final class Metrics: @unchecked Sendable {
    private let lock = NSLock()
    private var counters: [String: [String: Double]] = [:]
    private var gauges: [String: [String: Double]] = [:]
    private var histograms: [String: [String: Histogram]] = [:]
    private var help: [String: (type: String, text: String)] = [:]

    struct Histogram {
        let bounds: [Double]
        var counts: [Int]
        var sum = 0.0
        var count = 0
        init(bounds: [Double]) { self.bounds = bounds; counts = Array(repeating: 0, count: bounds.count) }
        mutating func observe(_ v: Double) {
            for (i, b) in bounds.enumerated() where v <= b { counts[i] += 1 }
            sum += v; count += 1
        }
    }

    public static let latencyBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
    public static let batchBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128]

    public init() {}

    public func describe(_ name: String, type: String, _ text: String) {
        lock.lock(); help[name] = (type, text); lock.unlock()
    }

    static func key(_ labels: [(String, String)]) -> String {
        labels.map { "\($0.0)=\"\($0.1.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n"))\"" }
            .joined(separator: ",")
    }

    public func increment(_ name: String, _ labels: [(String, String)] = [], by value: Double = 1) {
        lock.lock(); counters[name, default: [:]][Self.key(labels), default: 0] += value; lock.unlock()
    }

    public func set(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
        lock.lock(); gauges[name, default: [:]][Self.key(labels)] = value; lock.unlock()
    }

    /// Drops one labelled series of a gauge (an info metric whose labels changed).
    public func remove(_ name: String, _ labels: [(String, String)]) {
        lock.lock()
        gauges[name]?[Self.key(labels)] = nil
        if gauges[name]?.isEmpty == true { gauges[name] = nil }
        lock.unlock()
    }

    public func observe(_ name: String, _ labels: [(String, String)] = [], _ value: Double, buckets: [Double] = Metrics.latencyBuckets) {
        lock.lock()
        let k = Self.key(labels)
        var h = histograms[name]?[k] ?? Histogram(bounds: buckets)
        h.observe(value)
        histograms[name, default: [:]][k] = h
        lock.unlock()
    }

    public func render() -> String {
        lock.lock(); defer { lock.unlock() }
        var out = ""
        func header(_ name: String, _ fallback: String) {
            let h = help[name]
            out += "# HELP \(name) \(h?.text ?? name)\n# TYPE \(name) \(h?.type ?? fallback)\n"
        }
        func braces(_ k: String) -> String { k.isEmpty ? "" : "{\(k)}" }
        for name in counters.keys.sorted() {
            header(name, "counter")
            for (k, v) in counters[name]!.sorted(by: { $0.key < $1.key }) { out += "\(name)\(braces(k)) \(format(v))\n" }
        }
        for name in gauges.keys.sorted() {
            header(name, "gauge")
            for (k, v) in gauges[name]!.sorted(by: { $0.key < $1.key }) { out += "\(name)\(braces(k)) \(format(v))\n" }
        }
        for name in histograms.keys.sorted() {
            header(name, "histogram")
            for (k, h) in histograms[name]!.sorted(by: { $0.key < $1.key }) {
                let sep = k.isEmpty ? "" : ","
                for (b, c) in zip(h.bounds, h.counts) { out += "\(name)_bucket{\(k)\(sep)le=\"\(format(b))\"} \(c)\n" }
                out += "\(name)_bucket{\(k)\(sep)le=\"+Inf\"} \(h.count)\n\(name)_sum\(braces(k)) \(format(h.sum))\n\(name)_count\(braces(k)) \(h.count)\n"
            }
        }
        return out
    }

    func format(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
    }

    /// Resident set size of this process, from /proc/self/statm.
    public static func residentBytes() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Double(fields[1]) else { return 0 }
        return pages * Double(sysconf(Int32(_SC_PAGESIZE)))
    }
}
