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
    return maxRef == 0 ? maxDiff : maxDiff / maxRef
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
