import Foundation
import Checkpoint
import Objectives

/// What a model directory is made of, as `stat` sees it: device, inode, size and modification
/// time of each file that decides its answers. A file replaced, rewritten or touched changes it.
public struct ModelFiles: Equatable, Sendable {
    struct Stamp: Equatable, Sendable {
        let device: UInt64
        let inode: UInt64
        let size: Int64
        let seconds: Int
        let nanoseconds: Int
    }

    static let names = [ModelDirectory.configName, ModelDirectory.weightsName, ReconstructionErrorCalibration.fileName, FeatureBank.fileName]

    /// File name → stamp; a file that is missing has none.
    let stamps: [String: Stamp]

    /// The stamps of `directory`'s files; nil when it holds no config.json (it is not a model).
    init?(directory: URL) {
        var stamps: [String: Stamp] = [:]
        for name in Self.names {
            var s = stat()
            guard stat(directory.appendingPathComponent(name).path, &s) == 0 else { continue }
            stamps[name] = Stamp(device: UInt64(s.st_dev), inode: UInt64(s.st_ino), size: Int64(s.st_size),
                                 seconds: Int(s.st_mtim.tv_sec), nanoseconds: Int(s.st_mtim.tv_nsec))
        }
        guard stamps[ModelDirectory.configName] != nil else { return nil }
        self.stamps = stamps
    }

    /// Every model directory under `root` (hidden entries left out) with its files; nil when
    /// `root` cannot be listed.
    static func scan(_ root: URL) -> [String: ModelFiles]? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: root.path) else { return nil }
        var out: [String: ModelFiles] = [:]
        for name in entries where !name.hasPrefix(".") {
            if let files = ModelFiles(directory: root.appendingPathComponent(name)) { out[name] = files }
        }
        return out
    }
}

/// Loads, reloads and unloads models while the server runs: for the control API
/// (`POST /v1/models/{id}/load|unload`) and for the watcher of the models folder (`watch(every:)`).
///
/// Threads: everything here runs on one serial queue, `queue` (never an I/O thread, a handler
/// thread or the compute thread), so loads never overlap and the watcher's state needs no lock.
/// A model is read, packed and hashed on that queue, warmed up by one forward pass on the compute
/// thread (a `Batcher` task: the kernels' thread settings are the compute thread's), and only
/// then swapped into the registry under its lock. Requests that looked up the old model before
/// the swap, and the batcher's jobs (each holds its `LoadedModel`), finish on the old weights;
/// the old model is freed when the last of them is answered.
public final class ModelLoader: @unchecked Sendable {
    public enum Trigger: String, Sendable { case startup, watch, api }

    let registry: ModelRegistry
    let batcher: Batcher
    let metrics: Metrics
    let log: @Sendable (String) -> Void
    let queue = DispatchQueue(label: "bootmae.model-loader", qos: .utility)

    // Owned by `queue`.
    /// What each directory held when it was last loaded, refused or unloaded (nil: nothing there).
    private var settled: [String: ModelFiles]
    /// A change seen by the last poll and not yet acted on: acted on when the next poll sees the same.
    private var pending: [String: ModelFiles?] = [:]
    private var timer: DispatchSourceTimer?
    private var folderUnreadable = false

    init(registry: ModelRegistry, batcher: Batcher, metrics: Metrics, log: @escaping @Sendable (String) -> Void) {
        self.registry = registry
        self.batcher = batcher
        self.metrics = metrics
        self.log = log
        settled = registry.models.mapValues(\.files)
        metrics.describe("bootmae_model_info", type: "gauge", "The served models: 1 per model and version (the first 12 hex digits of its weights' SHA-256)")
        metrics.describe("bootmae_model_loads_total", type: "counter", "Model loads by trigger (startup, watch, api) and result (success, failure)")
        metrics.describe("bootmae_model_unloads_total", type: "counter", "Model unloads by trigger (watch, api) and result (success, refused)")
        metrics.describe("bootmae_model_load_seconds", type: "histogram", "Time to read, pack, hash and warm up a model")
        for (id, model) in registry.models {
            metrics.increment("bootmae_model_loads_total", [("model", id), ("result", "success"), ("trigger", Trigger.startup.rawValue)])
            metrics.set("bootmae_model_info", [("model", id), ("version", model.version)], 1)
        }
    }

    // MARK: Control API

    /// Loads (or reloads) the model directory `id` of the models folder and answers on the loader queue.
    public func load(_ id: String, completion: @escaping @Sendable (Result<LoadedModel, APIError>) -> Void) {
        queue.async { [self] in
            do { completion(.success(try loadNow(id, trigger: .api))) } catch let e as APIError { completion(.failure(e)) } catch {
                completion(.failure(internalError("loading", id, error)))
            }
        }
    }

    /// Takes `id` out of service and answers on the loader queue.
    public func unload(_ id: String, completion: @escaping @Sendable (Result<LoadedModel, APIError>) -> Void) {
        queue.async { [self] in
            do { completion(.success(try unloadNow(id, trigger: .api))) } catch let e as APIError { completion(.failure(e)) } catch {
                completion(.failure(internalError("unloading", id, error)))
            }
        }
    }

    /// A failure that is not the client's: the cause goes to the log, the answer says where to look
    /// (as `Service.guarded` does for the other routes).
    private func internalError(_ action: String, _ id: String, _ error: Error) -> APIError {
        log("error: \(action) model '\(id)': \(error)")
        return APIError(status: 500, type: "server_error", code: "internal_error",
                        message: "internal error while \(action) model '\(id)'; the server log has the details")
    }

    /// Runs `body` on the loader queue after everything queued before it (tests).
    func sync<T>(_ body: () throws -> T) rethrows -> T { try queue.sync(execute: body) }

    /// A directory name the control API accepts: one path segment, not hidden (as the folder scan).
    static func isModelName(_ id: String) -> Bool {
        !id.isEmpty && !id.hasPrefix(".") && !id.contains("/") && !id.contains("\0") && id.utf8.count <= 255
    }

    func loadNow(_ id: String, trigger: Trigger) throws -> LoadedModel {
        dispatchPrecondition(condition: .onQueue(queue))
        guard Self.isModelName(id) else {
            throw APIError.invalid("'\(id)' is not a model directory name (one path segment that does not start with '.')",
                                   param: "id", code: "invalid_model_id")
        }
        let dir = registry.root.appendingPathComponent(id)
        guard let files = ModelFiles(directory: dir) else {
            throw APIError.notFound("no model directory '\(id)' in the models folder: "
                                    + "\(dir.appendingPathComponent(ModelDirectory.configName).path) does not exist", code: "model_directory_not_found")
        }
        let start = Date()
        let previous = try? registry.model(id)
        let model: LoadedModel
        do {
            model = try ModelRegistry.load(dir, precisions: registry.precisions)
        } catch {
            settled[id] = files
            metrics.increment("bootmae_model_loads_total", [("model", id), ("result", "failure"), ("trigger", trigger.rawValue)])
            let outcome = previous.map { "version \($0.version) keeps serving" } ?? "it is not served"
            log("error: \(error); \(outcome)")
            throw APIError(status: 422, type: "invalid_request_error", code: "model_load_failed", message: "\(error); \(outcome)", param: "id")
        }
        warmUp(model)
        registry.install(model)
        settled[id] = model.files
        let seconds = Date().timeIntervalSince(start)
        metrics.increment("bootmae_model_loads_total", [("model", id), ("result", "success"), ("trigger", trigger.rawValue)])
        metrics.observe("bootmae_model_load_seconds", [("model", id)], seconds)
        if let previous, previous.version != model.version { metrics.remove("bootmae_model_info", [("model", id), ("version", previous.version)]) }
        metrics.set("bootmae_model_info", [("model", id), ("version", model.version)], 1)
        log("loaded \(id) version \(model.version)" + (previous.map { " (replacing version \($0.version))" } ?? "")
            + (model.precisionNote.map { ", \(model.kernel.precision.rawValue) (\(model.requestedPrecision.rawValue) asked; \($0))" } ?? "")
            + " in \(String(format: "%.2f", seconds)) s (\(trigger.rawValue))")
        return model
    }

    func unloadNow(_ id: String, trigger: Trigger) throws -> LoadedModel {
        dispatchPrecondition(condition: .onQueue(queue))
        let model: LoadedModel
        do {
            model = try registry.remove(id)
        } catch let e as APIError {
            if e.status == 409 { metrics.increment("bootmae_model_unloads_total", [("model", id), ("result", "refused"), ("trigger", trigger.rawValue)]) }
            throw e
        }
        // An unloaded directory stays unloaded until its files change (or it is loaded again).
        settled[id] = ModelFiles(directory: registry.root.appendingPathComponent(id))
        metrics.increment("bootmae_model_unloads_total", [("model", id), ("result", "success"), ("trigger", trigger.rawValue)])
        metrics.remove("bootmae_model_info", [("model", id), ("version", model.version)])
        log("unloaded \(id) version \(model.version) (\(trigger.rawValue))")
        return model
    }

    /// One forward pass on the compute thread between batches, waited for here (bounded).
    private func warmUp(_ model: LoadedModel) {
        let done = DispatchSemaphore(value: 0)
        do {
            try batcher.schedule(deadline: Date().addingTimeInterval(60), run: { model.warmUp(); done.signal() }, expire: { done.signal() })
            _ = done.wait(timeout: .now() + 120)
        } catch {
            log("warning: \(model.id): no warm-up (the queue is full); its first batch pays for it")
        }
    }

    // MARK: Watching the models folder

    /// Polls the models folder every `interval` seconds on the loader queue (a Dispatch timer) and
    /// acts on a directory added, changed or removed once two polls in a row see it the same.
    public func watch(every interval: TimeInterval) {
        queue.async { [self] in
            guard timer == nil else { return }
            let source = DispatchSource.makeTimerSource(queue: queue)
            let step = DispatchTimeInterval.milliseconds(max(1, Int(interval * 1000)))
            source.schedule(deadline: .now() + step, repeating: step, leeway: .milliseconds(max(1, Int(interval * 100))))
            source.setEventHandler { [weak self] in self?.poll() }
            timer = source
            source.resume()
            log("watching \(registry.root.path) for model changes every \(Int(interval * 1000)) ms")
        }
    }

    /// One look at the folder (also called directly by tests, on the queue).
    func poll() {
        dispatchPrecondition(condition: .onQueue(queue))
        // A folder that cannot be listed (a remount, a permission change) unloads nothing.
        guard let seen = ModelFiles.scan(registry.root) else {
            if !folderUnreadable { log("error: cannot list \(registry.root.path); models stay as they are") }
            folderUnreadable = true
            return
        }
        folderUnreadable = false
        for name in Set(seen.keys).union(settled.keys).union(pending.keys).sorted() {
            let now = seen[name]
            if now == settled[name] { pending[name] = nil; continue }
            guard let waiting = pending[name], waiting == now else { pending[name] = .some(now); continue }
            pending[name] = nil
            if now != nil {
                _ = try? loadNow(name, trigger: .watch)   // a failure is logged and counted there
            } else if (try? registry.model(name)) != nil {
                do { _ = try unloadNow(name, trigger: .watch) } catch {
                    log("error: the directory of model \(name) is gone, but \((error as? APIError)?.message ?? "\(error)")")
                }
                settled[name] = nil
            } else {
                settled[name] = nil
            }
        }
    }
}
