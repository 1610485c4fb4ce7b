import Foundation
import Checkpoint
import Objectives
import ViT

/// A training run's folder: config and recipe as JSON, the rolling checkpoint, metrics as JSON lines,
/// plots and results. Every file but the metrics log is written atomically.
public struct RunDirectory: Sendable {
    public let url: URL
    /// Held while this process trains in the folder (see `RunLock`); nil for read-only use.
    let lock: RunLock?

    public enum Mode: Sendable { case fresh, resume, overwrite }

    public struct RunError: Error, CustomStringConvertible {
        public let description: String
    }

    public static let checkpointName = "checkpoint.safetensors"

    /// The files a run writes, and the measurements of its model: cleared by --overwrite, and
    /// when a fresh run takes over a folder whose earlier start failed before its first checkpoint.
    static let runFiles = [checkpointName, "metrics.jsonl", "recipe.json", "config.json", "result.json", "history.json",
                           "loss.png", "eval.json", "eval-random.json", "knn.json", "linprobe.json"]

    /// Opens (resume) or creates (fresh/overwrite) the folder, and locks it for this process, so
    /// a second trainer started on the same folder stops instead of mixing two runs. A fresh run
    /// refuses a folder that holds a run (a checkpoint or a result), so nothing is ever
    /// overwritten by accident; the leftovers of a start that failed before its first checkpoint
    /// (unreadable images, say) are not a run, and a fresh run replaces them rather than leaving
    /// a folder that neither a fresh run nor --resume accepts.
    public init(_ path: String, mode: Mode) throws {
        url = URL(fileURLWithPath: path)
        let fm = FileManager.default
        let hasCheckpoint = fm.fileExists(atPath: url.appendingPathComponent(Self.checkpointName).path)
        let hasRun = hasCheckpoint || fm.fileExists(atPath: url.appendingPathComponent("result.json").path)
        switch mode {
        case .resume where !hasCheckpoint:
            if let trainer = RunLock.trainer(in: url) { throw RunError(description: trainer.beforeFirstCheckpoint(path)) }
            throw RunError(description: "\(path) has no checkpoint to resume from (expected \(Self.checkpointName)); start a new run without --resume")
        case .fresh where hasRun:
            throw RunError(description: "\(path) already holds a run; pass --resume to continue it or --overwrite to start over")
        default:
            break
        }
        do { try fm.createDirectory(at: url, withIntermediateDirectories: true) } catch {
            throw RunError(description: "cannot create run folder \(path): \(error.localizedDescription)")
        }
        lock = try RunLock(folder: url, path: path)
        // A trainer killed while writing (SIGKILL, a power cut) leaves its temporary file; the lock
        // says no one else writes here now.
        AtomicFile.removeLeftovers(in: url)
        if mode != .resume {
            for name in Self.runFiles { try? fm.removeItem(at: url.appendingPathComponent(name)) }
        }
    }

    /// An existing folder opened only to read what a run left there (metrics, results), whatever
    /// state the run is in: nothing is checked, created or locked.
    public init(reading path: String) {
        url = URL(fileURLWithPath: path)
        lock = nil
    }

    public func file(_ name: String) -> URL { url.appendingPathComponent(name) }

    /// True when the run trained to its last step: its result.json says it did not stop early.
    public var isFinished: Bool { result?["stoppedEarly"] as? Bool == false }

    /// The images an earlier invocation of this run skipped as unreadable (from its result.json).
    public var earlierUnreadableImages: [String] { result?["unreadableImages"] as? [String] ?? [] }

    /// result.json as written at the end of the last invocation.
    var result: [String: Any]? {
        guard let data = try? Data(contentsOf: file("result.json")) else { return nil }
        return try? JSONSerialization.jsonObject(with: data) as? [String: Any]
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

    /// Drops the metrics.jsonl lines of steps after `step` (and any line cut short): what a run
    /// logged after its last checkpoint before it was killed, which the resumed run logs again, so
    /// the file and loss.png hold each step once. Rewritten atomically, only when something goes.
    public func dropMetrics(after step: Int) {
        guard let text = try? String(contentsOf: file("metrics.jsonl"), encoding: .utf8) else { return }
        let lines = text.split(separator: "\n")
        let kept = lines.filter { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return false }
            return ((object["step"] as? NSNumber)?.intValue ?? 0) <= step
        }
        guard kept.count != lines.count else { return }
        try? AtomicFile.write(Data(kept.map { $0 + "\n" }.joined().utf8), to: file("metrics.jsonl"))
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
        if FileManager.default.fileExists(atPath: checkpoint.path) { return try SafeTensorsFile(contentsOf: checkpoint) }
        let weights = dir.appendingPathComponent(ModelDirectory.weightsName)
        // A run whose trainer has not saved yet is neither: say so rather than "no model.safetensors".
        if !FileManager.default.fileExists(atPath: weights.path), let trainer = RunLock.trainer(in: dir) {
            throw RunDirectory.RunError(description: trainer.beforeFirstCheckpoint(path))
        }
        return try SafeTensorsFile(contentsOf: weights)
    }

    /// The whole pretraining network of a run folder (its checkpoint) or of an export.
    public static func network(_ path: String) throws -> PretrainingNetwork {
        let dir = URL(fileURLWithPath: path)
        return try PretrainingDirectory.network(config: try PretrainingDirectory.readConfig(dir), weights: try weights(path), ignoring: ["optim."])
    }

    /// The objective options the pretraining run at `path` trained with (its recipe.json
    /// `objective_options`), which must be `objective`'s; nil for a model directory (an export
    /// keeps no recipe.json), measured with the objective's defaults.
    public static func trainingOptions(_ path: String, objective: String) throws -> (any ObjectiveOptions)? {
        let run = RunDirectory(reading: path)
        guard FileManager.default.fileExists(atPath: run.file("recipe.json").path) else { return nil }
        let recipe = try run.readJSON(PretrainRecipe.self, from: "recipe.json")
        guard recipe.objective == objective else {
            throw RunDirectory.RunError(description: "\(run.file("recipe.json").path) is a recipe for \(recipe.objective), "
                                        + "but the run's config.json is a \(objective) network")
        }
        return recipe.objectiveOptions
    }

    /// The encoder (with its final norm, or fc_norm + head for classifiers) of a run folder or model
    /// directory. A pretraining network's is the one its objective serves (iBOT: the teacher).
    public static func encoder(_ path: String) throws -> VisionTransformer {
        let dir = URL(fileURLWithPath: path)
        if try PretrainingDirectory.isPretraining(dir) {
            return try PretrainingDirectory.network(config: try PretrainingDirectory.readConfig(dir), weights: try weights(path),
                                                    ignoring: ["optim."]).encoder
        }
        return try ModelDirectory.encoder(config: try ModelDirectory.readConfig(dir), weights: try weights(path), extraIgnored: ["optim."])
    }
}

/// An exclusive `flock` on `<run>/.lock`, held from opening a run folder for training until the
/// process ends or lets go of it. The kernel drops it with the process, so a crash never leaves a
/// stale lock behind. The file holds the holder's process id, so that commands which only read a
/// run (export, a refused --resume) can say a trainer is still at work without taking the lock,
/// which would make a trainer starting at that instant fail.
final class RunLock: @unchecked Sendable {
    private let descriptor: Int32

    /// Throws when another process holds the lock (or the folder does not take a lock file).
    init(folder: URL, path: String) throws {
        let fd = open(folder.appendingPathComponent(".lock").path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw RunDirectory.RunError(description: "cannot write in run folder \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw RunDirectory.RunError(description: "another bootmae-train process is training in \(path); wait for it, "
                                        + "or stop it first (SIGTERM saves its checkpoint)")
        }
        descriptor = fd
        let pid = Array("\(getpid())\n".utf8)
        if ftruncate(fd, 0) == 0 { _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) } }
    }

    deinit { close(descriptor) }

    /// The trainer recorded in `folder`'s lock file while that process is alive; nil when there is
    /// none (no lock file, or its process has ended: the kernel released its lock with it). A pid
    /// reused since by another program does not count: the process must be a bootmae-train (its
    /// name in /proc; the kernel keeps 15 characters of it, "bootmae-train-0…" for a pinned copy).
    static func trainer(in folder: URL) -> Trainer? {
        guard let text = try? String(contentsOf: folder.appendingPathComponent(".lock"), encoding: .utf8),
              let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0,
              kill(pid, 0) == 0 || errno == EPERM,
              let name = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8),
              name.hasPrefix("bootmae-train") else { return nil }
        return Trainer(pid: pid)
    }

    struct Trainer {
        let pid: Int32
        /// Why a folder whose trainer has not yet saved holds no checkpoint, and what to do.
        func beforeFirstCheckpoint(_ path: String) -> String {
            "\(path) holds no checkpoint yet: another bootmae-train process (pid \(pid)) is training in it and has not saved "
                + "its first one (it saves every --checkpoint-every steps, at the end, and on SIGTERM); wait for it, or stop it "
                + "with SIGTERM, which saves a checkpoint"
        }
    }
}
