import Foundation
import Checkpoint
import ViT

/// A training run's folder: config and recipe as JSON, the rolling checkpoint, metrics as JSON lines,
/// plots and results. Every file but the metrics log is written atomically.
public struct RunDirectory: Sendable {
    public let url: URL

    public enum Mode: Sendable { case fresh, resume, overwrite }

    public struct RunError: Error, CustomStringConvertible {
        public let description: String
    }

    public static let checkpointName = "checkpoint.safetensors"

    /// The files a run writes (cleared by --overwrite, and when a fresh run takes over a folder
    /// whose earlier run stopped before its first checkpoint).
    static let runFiles = [checkpointName, "metrics.jsonl", "recipe.json", "config.json", "result.json", "history.json"]

    /// Opens (resume) or creates (fresh/overwrite) the folder. A fresh run refuses a folder that
    /// holds a run (a checkpoint or a result), so nothing is ever overwritten by accident; the
    /// leftovers of a start that failed before its first checkpoint (a bad --data, say) are not
    /// a run, and a fresh run replaces them rather than leaving a folder that neither a fresh
    /// run nor --resume accepts.
    public init(_ path: String, mode: Mode) throws {
        url = URL(fileURLWithPath: path)
        let fm = FileManager.default
        let hasRun = fm.fileExists(atPath: url.appendingPathComponent(Self.checkpointName).path)
            || fm.fileExists(atPath: url.appendingPathComponent("result.json").path)
        switch mode {
        case .resume:
            guard fm.fileExists(atPath: url.appendingPathComponent(Self.checkpointName).path) else {
                throw RunError(description: "\(path) has no checkpoint to resume from (expected \(Self.checkpointName)); start a new run without --resume")
            }
        case .fresh:
            if hasRun {
                throw RunError(description: "\(path) already holds a run; pass --resume to continue it or --overwrite to start over")
            }
            for name in Self.runFiles { try? fm.removeItem(at: url.appendingPathComponent(name)) }
        case .overwrite:
            for name in Self.runFiles { try? fm.removeItem(at: url.appendingPathComponent(name)) }
        }
        do { try fm.createDirectory(at: url, withIntermediateDirectories: true) } catch {
            throw RunError(description: "cannot create run folder \(path): \(error.localizedDescription)")
        }
    }

    /// An existing folder opened only to read what a run left there (metrics, results), whatever
    /// state the run is in: nothing is checked or created.
    public init(reading path: String) {
        url = URL(fileURLWithPath: path)
    }

    public func file(_ name: String) -> URL { url.appendingPathComponent(name) }

    /// True when the run trained to its last step: its result.json says it did not stop early.
    public var isFinished: Bool {
        guard let data = try? Data(contentsOf: file("result.json")),
              let result = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return false }
        return result["stoppedEarly"] as? Bool == false
    }

    public func writeJSON<T: Encodable>(_ value: T, to name: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(value), to: file(name))
    }

    public func readJSON<T: Decodable>(_ type: T.Type, from name: String) throws -> T {
        do { return try JSONDecoder().decode(type, from: Data(contentsOf: file(name))) } catch {
            throw RunError(description: "cannot read \(file(name).path): \(error)")
        }
    }

    /// Appends one JSON object as a line to metrics.jsonl.
    public func appendMetrics(_ fields: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]) else { return }
        appendLine(data, to: "metrics.jsonl")
    }

    /// Appends `line` and a newline to the folder's file `name`, creating it; best effort (logs
    /// must never stop a training run).
    func appendLine(_ line: Data, to name: String) {
        let url = file(name)
        if !FileManager.default.fileExists(atPath: url.path) { _ = FileManager.default.createFile(atPath: url.path, contents: nil) }
        guard let handle = try? FileHandle(forWritingTo: url) else { return }
        defer { try? handle.close() }
        _ = try? handle.seekToEnd()
        try? handle.write(contentsOf: line + Data("\n".utf8))
    }

    /// Every line of metrics.jsonl as a dictionary.
    public func readMetrics() -> [[String: Any]] {
        guard let text = try? String(contentsOf: file("metrics.jsonl"), encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }
}

/// A model to read weights from: a run folder (its training checkpoint, optimizer state ignored)
/// or a model directory (its model.safetensors).
public enum ModelSource {
    public static func weights(_ path: String) throws -> SafeTensorsFile {
        let dir = URL(fileURLWithPath: path)
        let checkpoint = dir.appendingPathComponent(RunDirectory.checkpointName)
        return try SafeTensorsFile(contentsOf: FileManager.default.fileExists(atPath: checkpoint.path) ? checkpoint
                                   : dir.appendingPathComponent(ModelDirectory.weightsName))
    }

    /// The encoder (with its final norm, or fc_norm + head for classifiers) of a run folder or model directory.
    public static func encoder(_ path: String) throws -> VisionTransformer {
        try ModelDirectory.encoder(config: try ModelDirectory.readConfig(URL(fileURLWithPath: path)), weights: try weights(path),
                                   extraIgnored: ["optim."])
    }
}

/// A recipe that names its dataset (pretraining and fine-tuning recipes).
public protocol DatasetRecipe: Codable {
    var data: String { get set }
}

extension PretrainRecipe: DatasetRecipe {}
extension FinetuneRecipe: DatasetRecipe {}

extension RunDirectory {
    /// The saved recipe of a run being resumed. `movedData`, the dataset's new place when it was
    /// moved, replaces the recorded path, in recipe.json too, so later resumes find it.
    public func resumedRecipe<Recipe: DatasetRecipe>(_ type: Recipe.Type, data movedData: String?) throws -> Recipe {
        var recipe = try readJSON(type, from: "recipe.json")
        if let movedData {
            guard FileSystem.kind(movedData) == .directory else {
                throw RunError(description: "--data \(movedData) is not a folder; the run's dataset was \(recipe.data)")
            }
            recipe.data = URL(fileURLWithPath: movedData).standardizedFileURL.path
            try writeJSON(recipe, to: "recipe.json")
        }
        return recipe
    }
}
