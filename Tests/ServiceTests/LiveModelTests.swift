import XCTest
import Foundation
@testable import Service
import Checkpoint
import TestSupport

/// Models that change while the service runs: the folder watcher's polls (driven by hand here, so
/// nothing depends on timing) and the control API, in process. CLITests run the same with the binary.
extension ServiceTests {
    final class Log: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []
        func add(_ line: String) { lock.lock(); lines.append(line); lock.unlock() }
        var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
    }

    /// A models folder of fixtures (name → fixture folder) and a service on it.
    func liveService(_ models: [String: String], defaultModel: String, control: Bool = false, maxDelay: TimeInterval = 0.002)
        throws -> (dir: URL, service: Service, log: Log) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("live-models-\(UUID())")
        for (name, fixture) in models { try Fixtures.installModel(fixture, as: name, in: dir) }
        let log = Log()
        var options = Service.Options()
        options.modelControl = control
        options.log = { log.add($0) }
        let registry = try ModelRegistry(directory: dir.path, defaultModel: defaultModel)
        registry.warmUp()
        let service = Service(registry: registry, limits: .init(maxBatch: 16, maxDelay: maxDelay, maxQueue: 256), options: options)
        service.markReady()
        return (dir, service, log)
    }


    func poll(_ service: Service) { service.loader.sync { service.loader.poll() } }

    func version(_ service: Service, _ id: String) -> String? { try? service.registry.model(id).version }

    func embedding(_ service: Service, _ model: String) -> (status: Int, version: String?, header: String?, values: [Float]) {
        let r = call("POST", "/v1/embeddings", json: ["model": model, "input": png.base64EncodedString()], service: service)
        let values = ((r.json?["data"] as? [[String: Any]])?.first?["embedding"] as? [NSNumber])?.map(\.floatValue) ?? []
        return (r.status, r.json?["model_version"] as? String, r.response.headers.first { $0.0 == "X-Model-Version" }?.1, values)
    }

    func testTheVersionIsTheWeightsDigest() throws {
        let (dir, service, _) = try liveService(["m": "encoders/timm_qkv_cls"], defaultModel: "m")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try service.registry.model("m")
        // SHA-256 itself: FIPS 180-4's examples.
        var abc = SHA256()
        abc.update(Array("abc".utf8))
        XCTAssertEqual(SHA256.hex(abc.finish()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        var long = SHA256()
        for piece in ["abcdbcdecdefdefgefghfghighij", "hijkijkljklmklmnlmnomnopnopq"] { long.update(Array(piece.utf8)) }
        XCTAssertEqual(SHA256.hex(long.finish()), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        var empty = SHA256()
        XCTAssertEqual(SHA256.hex(empty.finish()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        var whole = SHA256()
        whole.update(Array(try Data(contentsOf: dir.appendingPathComponent("m/model.safetensors"))))
        XCTAssertEqual(model.weightsSHA256, SHA256.hex(whole.finish()))
        XCTAssertEqual(model.version, String(model.weightsSHA256.prefix(12)))

        // Every answer says it: JSON field and header; the model card; an info metric.
        let e = embedding(service, "m")
        XCTAssertEqual(e.status, 200)
        XCTAssertEqual(e.version, model.version)
        XCTAssertEqual(e.header, model.version)
        let card = call("GET", "/v1/models/m", service: service)
        XCTAssertEqual(card.json?["model_version"] as? String, model.version)
        XCTAssertEqual(card.json?["weights_sha256"] as? String, model.weightsSHA256)
        let listed = (call("GET", "/v1/models", service: service).json?["data"] as? [[String: Any]])?.first
        XCTAssertEqual(listed?["model_version"] as? String, model.version)
        let metrics = String(decoding: call("GET", "/metrics", service: service).response.body, as: UTF8.self)
        XCTAssertTrue(metrics.contains("bootmae_model_info{model=\"m\",version=\"\(model.version)\"} 1"), metrics)
        XCTAssertTrue(metrics.contains("bootmae_model_loads_total{model=\"m\",result=\"success\",trigger=\"startup\"} 1"), metrics)
    }

    /// A directory replaced on disk is served after two polls that see the same files, with its new
    /// version and new outputs; requests running across the swap all succeed, each answered whole by
    /// one version (its values are that version's).
    func testReplacedModelIsServedAndRequestsAcrossTheSwapSucceed() throws {
        let (dir, service, log) = try liveService(["m": "encoders/timm_qkv_cls", "other": "encoders/bootmae_qv"], defaultModel: "other",
                                                  maxDelay: 0.02)
        defer { try? FileManager.default.removeItem(at: dir) }
        let old = embedding(service, "m")
        poll(service)
        try Fixtures.installModel("encoders/bootmae_qv", as: "m", in: dir)
        poll(service)
        XCTAssertEqual(version(service, "m"), old.version, "one poll has seen the change: not settled yet")

        // Clients keep sending while the next poll swaps the model.
        final class Answers: @unchecked Sendable {
            let lock = NSLock()
            var all: [(status: Int, version: String?, values: [Float])] = []
            var stop = false
        }
        let answers = Answers()
        let clients = DispatchGroup()
        nonisolated(unsafe) let test = self
        for _ in 0..<3 {
            DispatchQueue.global().async(group: clients) {
                while true {
                    answers.lock.lock(); let stop = answers.stop; answers.lock.unlock()
                    if stop { break }
                    let e = test.embedding(service, "m")
                    answers.lock.lock(); answers.all.append((e.status, e.version, e.values)); answers.lock.unlock()
                }
            }
        }
        Thread.sleep(forTimeInterval: 0.3)
        poll(service)
        Thread.sleep(forTimeInterval: 0.3)
        answers.lock.lock(); answers.stop = true; answers.lock.unlock()
        XCTAssertEqual(clients.wait(timeout: .now() + 20), .success)

        let new = embedding(service, "m")
        XCTAssertEqual(new.status, 200)
        XCTAssertNotEqual(new.version, old.version)
        XCTAssertEqual(new.version, version(service, "m"))
        XCTAssertNotEqual(new.values, old.values, "new weights, new outputs")
        XCTAssertEqual(new.values, embedding(service, "other").values, "the same weights as the fixture it was replaced with")
        XCTAssertGreaterThan(answers.all.count, 3)
        // Batches of several images round differently from batch 1 (the split over cores), so "the
        // same" is within 1e-5 of the largest value; the two versions differ by far more.
        func close(_ a: [Float], _ b: [Float]) -> Bool {
            a.count == b.count && zip(a, b).map { abs($0 - $1) }.max()! <= 1e-5 * b.map(abs).max()!
        }
        XCTAssertFalse(close(old.values, new.values))
        for a in answers.all {
            XCTAssertEqual(a.status, 200)
            if a.version == old.version { XCTAssertTrue(close(a.values, old.values), "old version, old values") } else {
                XCTAssertEqual(a.version, new.version)
                XCTAssertTrue(close(a.values, new.values), "new version, new values")
            }
        }
        XCTAssertTrue(answers.all.contains { $0.version == old.version } && answers.all.contains { $0.version == new.version },
                      "requests ran on both sides of the swap")
        XCTAssertTrue(log.all.contains { $0.contains("loaded m version \(new.version!) (replacing version \(old.version!))") }, "\(log.all)")
        let metrics = String(decoding: call("GET", "/metrics", service: service).response.body, as: UTF8.self)
        XCTAssertTrue(metrics.contains("bootmae_model_info{model=\"m\",version=\"\(new.version!)\"} 1"))
        XCTAssertFalse(metrics.contains("version=\"\(old.version!)\""), "the old version's info series is gone")
        XCTAssertTrue(metrics.contains("bootmae_model_loads_total{model=\"m\",result=\"success\",trigger=\"watch\"} 1"))
    }

    /// A replacement that does not load is logged with the file's name and counted; the old
    /// version keeps serving, and is not retried until the files change again.
    func testBrokenReplacementKeepsTheOldModel() throws {
        let (dir, service, log) = try liveService(["m": "encoders/timm_qkv_cls", "other": "encoders/bootmae_qv"], defaultModel: "other")
        defer { try? FileManager.default.removeItem(at: dir) }
        let old = embedding(service, "m")
        let weights = dir.appendingPathComponent("m/model.safetensors")
        let bytes = try Data(contentsOf: weights)
        try bytes.prefix(bytes.count / 2).write(to: weights)
        poll(service); poll(service)
        let after = embedding(service, "m")
        XCTAssertEqual(after.status, 200)
        XCTAssertEqual(after.version, old.version)
        XCTAssertEqual(after.values, old.values)
        let errors = log.all.filter { $0.hasPrefix("error:") }
        XCTAssertEqual(errors.count, 1, "\(log.all)")
        XCTAssertTrue(errors[0].contains(weights.path) && errors[0].contains("version \(old.version!) keeps serving"), errors[0])
        poll(service); poll(service)
        XCTAssertEqual(log.all.filter { $0.hasPrefix("error:") }.count, 1, "an unchanged broken directory is not retried")
        let metrics = String(decoding: call("GET", "/metrics", service: service).response.body, as: UTF8.self)
        XCTAssertTrue(metrics.contains("bootmae_model_loads_total{model=\"m\",result=\"failure\",trigger=\"watch\"} 1"), metrics)

        // Mended: served again (the same weights, so the same version).
        try bytes.write(to: weights)
        poll(service); poll(service)
        XCTAssertEqual(embedding(service, "m").version, old.version)
        XCTAssertTrue(log.all.last?.contains("loaded m version \(old.version!)") ?? false, "\(log.all)")
    }

    /// A directory added is served, one removed is not; the default model's removal is refused
    /// (logged) and it keeps serving; a folder without config.json is not a model.
    func testAddedAndRemovedDirectories() throws {
        let (dir, service, log) = try liveService(["m": "encoders/timm_qkv_cls"], defaultModel: "m")
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertEqual(embedding(service, "new").status, 404)
        try Fixtures.installModel("encoders/bootmae_qv", as: "new", in: dir)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("notes"), withIntermediateDirectories: true)
        poll(service)
        XCTAssertEqual(embedding(service, "new").status, 404, "not settled yet")
        poll(service)
        XCTAssertEqual(embedding(service, "new").status, 200)
        XCTAssertEqual(service.registry.models.keys.sorted(), ["m", "new"])

        try FileManager.default.removeItem(at: dir.appendingPathComponent("new"))
        poll(service); poll(service)
        let gone = call("POST", "/v1/embeddings", json: ["model": "new", "input": png.base64EncodedString()], service: service)
        XCTAssertEqual(gone.status, 404)
        XCTAssertEqual((gone.json?["error"] as? [String: Any])?["message"] as? String, "model 'new' does not exist; available: m")
        XCTAssertTrue(log.all.contains { $0.hasPrefix("unloaded new version") }, "\(log.all)")

        try FileManager.default.removeItem(at: dir.appendingPathComponent("m"))
        poll(service); poll(service)
        XCTAssertEqual(embedding(service, "m").status, 200, "the default model stays")
        XCTAssertTrue(log.all.contains { $0.contains("the directory of model m is gone, but model 'm' is the default model") }, "\(log.all)")
    }

    /// POST /v1/models/{id}/load and /unload: reload with a new version, a broken directory refused
    /// with the file named, unknown and invalid names, and the default and last models kept.
    func testControlAPI() throws {
        let (dir, service, _) = try liveService(["m": "encoders/timm_qkv_cls", "other": "encoders/bootmae_qv"], defaultModel: "other", control: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let old = try XCTUnwrap(version(service, "m"))
        try Fixtures.installModel("encoders/timm_qkv_avg_head", as: "m", in: dir)
        let loaded = call("POST", "/v1/models/m/load", service: service)
        XCTAssertEqual(loaded.status, 200)
        let new = try XCTUnwrap(loaded.json?["model_version"] as? String)
        XCTAssertNotEqual(new, old)
        XCTAssertEqual(loaded.response.headers.first { $0.0 == "X-Model-Version" }?.1, new)
        XCTAssertEqual(loaded.json?["capabilities"] as? [String], ["embed", "classify"])
        XCTAssertEqual(embedding(service, "m").version, new)
        poll(service); poll(service)
        XCTAssertEqual(version(service, "m"), new, "the watcher does not reload what the API loaded")

        // Broken: 422 naming the file; the loaded version keeps serving.
        try Data("{not json".utf8).write(to: dir.appendingPathComponent("m/config.json"))
        let broken = call("POST", "/v1/models/m/load", service: service)
        XCTAssertEqual(broken.status, 422)
        let error = try XCTUnwrap(broken.json?["error"] as? [String: Any])
        XCTAssertEqual(error["code"] as? String, "model_load_failed")
        XCTAssertTrue((error["message"] as? String ?? "").contains(dir.appendingPathComponent("m/config.json").path), "\(error)")
        XCTAssertTrue((error["message"] as? String ?? "").hasSuffix("version \(new) keeps serving"), "\(error)")
        XCTAssertEqual(embedding(service, "m").version, new)

        for (id, status, code) in [("nothing", 404, "model_directory_not_found"), (".hidden", 400, "invalid_model_id"), ("..", 400, "invalid_model_id")] {
            let r = call("POST", "/v1/models/\(id)/load", service: service)
            XCTAssertEqual(r.status, status, id)
            XCTAssertEqual((r.json?["error"] as? [String: Any])?["code"] as? String, code, id)
        }

        XCTAssertFalse(ModelLoader.isModelName("a/b"), "a decoded %2F is not a directory name")
        // Unload: the default refused, then m, then the last one refused.
        let unload = { (id: String) in self.call("POST", "/v1/models/\(id)/unload", service: service) }
        XCTAssertEqual(unload("other").status, 409)
        XCTAssertEqual((unload("other").json?["error"] as? [String: Any])?["code"] as? String, "default_model")
        let done = unload("m")
        XCTAssertEqual(done.status, 200)
        XCTAssertEqual(done.json?["status"] as? String, "unloaded")
        XCTAssertEqual(done.json?["model_version"] as? String, new)
        XCTAssertEqual(embedding(service, "m").status, 404)
        XCTAssertEqual(unload("m").status, 404)
        poll(service); poll(service)
        XCTAssertEqual(embedding(service, "m").status, 404, "an unloaded directory stays unloaded while it is unchanged")
        XCTAssertEqual(call("POST", "/v1/models/m/load", service: service).status, 422, "its config.json is still broken")
        try Fixtures.installModel("encoders/timm_qkv_cls", as: "m", in: dir)
        XCTAssertEqual(call("POST", "/v1/models/m/load", service: service).json?["model_version"] as? String, old)

        // Off by default: the routes do not exist.
        XCTAssertFalse(ServiceTests.service.routes.contains { $0.pattern.hasSuffix("/load") || $0.pattern.hasSuffix("/unload") })
        XCTAssertTrue(service.routes.contains { $0.pattern == "/v1/models/{id}/load" && !$0.requiresBody })
    }
}
