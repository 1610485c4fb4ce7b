import Foundation

/// Progress for long loops: a redrawn bar on a terminal, plain periodic lines otherwise (logs, CI).
public final class ProgressReporter: @unchecked Sendable {
    let interactive: Bool
    let logEvery: TimeInterval
    var lastLog = Date.distantPast
    let lock = NSLock()

    public init(interactive: Bool = isatty(STDERR_FILENO) != 0, logEvery: TimeInterval = 30) {
        self.interactive = interactive
        self.logEvery = logEvery
    }

    /// `fraction` of the whole job done; `text` the current numbers.
    public func update(label: String, done: Int, total: Int, text: String, eta: TimeInterval?) {
        lock.lock(); defer { lock.unlock() }
        let etaText = eta.map { " ETA " + Self.duration($0) } ?? ""
        if interactive {
            let width = 24
            let filled = total > 0 ? min(width, width * done / total) : 0
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            FileHandle.standardError.write(Data("\r\u{1B}[2K\(label) \(bar) \(done)/\(total) \(text)\(etaText)".utf8))
        } else if Date().timeIntervalSince(lastLog) >= logEvery || done == total {
            lastLog = Date()
            FileHandle.standardError.write(Data("\(label) \(done)/\(total) \(text)\(etaText)\n".utf8))
        }
    }

    /// A line that stays (ends the bar's line first on a terminal).
    public func log(_ line: String) {
        lock.lock(); defer { lock.unlock() }
        FileHandle.standardError.write(Data(((interactive ? "\r\u{1B}[2K" : "") + line + "\n").utf8))
    }

    public static func duration(_ seconds: TimeInterval) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}

/// The images a training loop's loaders skipped as unreadable: each is logged once, when first
/// skipped, and the run's result lists them (a skip must never go unnoticed).
public final class UnreadableImages {
    public private(set) var names: [String]
    private var reported: Set<String>

    /// `earlier`: the images an earlier invocation of the same run skipped (they stay listed, and
    /// are not logged again).
    public init(earlier: [String] = []) {
        names = earlier
        reported = Set(earlier)
    }

    /// Logs the samples `loader` skipped that were not reported yet.
    public func report(_ loader: BatchLoader, to progress: ProgressReporter) {
        guard loader.skipped > 0 else { return }
        for sample in loader.skippedSamples where reported.insert(sample.name).inserted {
            names.append(sample.name)
            progress.log("warning: skipped an unreadable image: \(sample.name): \(sample.reason)")
        }
    }

    /// The names for a result file; nil (no key) when every image was read.
    public var listed: [String]? { names.isEmpty ? nil : names }
}

/// Set by SIGINT/SIGTERM handlers, polled by training loops between steps.
public final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false
    public init() {}
    public var isSet: Bool { lock.lock(); defer { lock.unlock() }; return stopped }
    public func set() { lock.lock(); stopped = true; lock.unlock() }
}
