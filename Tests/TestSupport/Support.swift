import Foundation
import Tensor
import Checkpoint

/// Committed reference data written by tools/reference/make_fixtures.py (PyTorch).
public enum Fixtures {
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    public static func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }

    public static func file(_ relative: String) throws -> SafeTensorsFile {
        try SafeTensorsFile(contentsOf: url(relative))
    }

    /// Writes a fixture's model directory as `name` in `dir` the way a deployment should: into a
    /// hidden folder, then one rename (replacing what was there).
    public static func installModel(_ fixture: String, as name: String, in dir: URL) throws {
        let fm = FileManager.default
        let staging = dir.appendingPathComponent(".staging-\(UUID())")
        try fm.createDirectory(at: staging, withIntermediateDirectories: true)
        for file in ["config.json", "model.safetensors"] {
            try fm.copyItem(at: url("\(fixture)/\(file)"), to: staging.appendingPathComponent(file))
        }
        let target = dir.appendingPathComponent(name)
        if fm.fileExists(atPath: target.path) {
            let old = dir.appendingPathComponent(".old-\(UUID())")
            try fm.moveItem(at: target, to: old)
            try fm.moveItem(at: staging, to: target)
            try fm.removeItem(at: old)
        } else {
            try fm.moveItem(at: staging, to: target)
        }
    }
}

/// max|a − b| / max|b|: the error relative to the reference tensor's scale. Elementwise relative
/// error is meaningless where the reference crosses zero; this is the norm every tolerance here uses.
public func relativeError(_ a: Tensor, _ reference: Tensor) -> Float {
    precondition(a.count == reference.count, "compare: \(a.shape) vs \(reference.shape)")
    var maxDiff: Float = 0, maxRef: Float = 0
    for i in 0..<a.count {
        maxDiff = max(maxDiff, abs(a.data[i] - reference.data[i]))
        maxRef = max(maxRef, abs(reference.data[i]))
    }
    if !maxDiff.isFinite { return .infinity }
    let error = maxRef == 0 ? maxDiff : maxDiff / maxRef
    // BOOTMAE_REPORT_ERRORS=1 swift test … prints every comparison, for closing notes and debugging.
    if ProcessInfo.processInfo.environment["BOOTMAE_REPORT_ERRORS"] != nil { reportedErrors.record(error) }
    return error
}

/// The largest relative error seen in this process (printed at exit when reporting is on).
public let reportedErrors = ErrorReport()

public final class ErrorReport: @unchecked Sendable {
    private let lock = NSLock()
    public private(set) var worst: Float = 0
    public private(set) var count = 0
    private var registered = false
    func record(_ e: Float) {
        lock.lock(); defer { lock.unlock() }
        worst = max(worst, e); count += 1
        if !registered {
            registered = true
            atexit { FileHandle.standardError.write(Data("relative errors: \(reportedErrors.count) comparisons, worst \(reportedErrors.worst)\n".utf8)) }
        }
    }
}

extension SafeTensorsFile {
    /// A scalar stored in the file's metadata (the fixtures keep eps, heads, ... there).
    public func meta(_ key: String) -> Double? { metadata[key].flatMap(Double.init) }
}

/// Copies `<prefix><name>` tensors of a fixture into the parameters (fixtures hold extra keys,
/// so this is not the strict checkpoint loader).
public func loadParameters(_ params: ParameterList, from file: SafeTensorsFile, prefix: String,
                           stripping strip: String = "") throws {
    for (name, p) in params.entries {
        let local = name.hasPrefix(strip) ? String(name.dropFirst(strip.count)) : name
        p.value = try file.tensor(prefix + local).reshaped(p.shape)
    }
}
