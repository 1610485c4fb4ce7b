import XCTest
import Foundation
import TestSupport

/// `bootmae-serve --watch-models` and `--model-control` as a user runs them: the built executable,
/// real HTTP, model directories replaced, broken, added and removed on disk while clients send requests.
final class LiveModelsCommandTests: XCTestCase {
    /// The server with its log in a file, so the test can read what it said at any time.
    final class Server: @unchecked Sendable {
        let process = Process()
        let logURL = FileManager.default.temporaryDirectory.appendingPathComponent("live-serve-\(UUID()).log")
        var port = 0

        init(_ arguments: [String]) throws {
            _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
            process.executableURL = try BuiltExecutable("bootmae-serve").url
            process.arguments = ["--port", "0"] + arguments
            process.standardError = try FileHandle(forWritingTo: logURL)
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            let ready = try Self.wait(seconds: 30) { [self] in
                log.range(of: #"ready on http://127\.0\.0\.1:(\d+)"#, options: .regularExpression).map { Int(log[$0].split(separator: ":").last!)! }
            }
            guard let ready else { process.terminate(); throw NSError(domain: "serve", code: 2, userInfo: [NSLocalizedDescriptionKey: log]) }
            port = ready
        }

        var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

        func stop() -> Int32 {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            try? FileManager.default.removeItem(at: logURL)
            return process.terminationStatus
        }

        /// Polls `probe` every 50 ms until it gives a value or `seconds` pass.
        static func wait<T>(seconds: Double, _ probe: () throws -> T?) throws -> T? {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if let value = try probe() { return value }
                Thread.sleep(forTimeInterval: 0.05)
            }
            return try probe()
        }

        func request(_ method: String, _ path: String, key: String? = nil, json: Any? = nil) throws -> (status: Int, headers: [String: String], json: [String: Any]?) {
            var head = "\(method) \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + (key.map { "Authorization: Bearer \($0)\r\n" } ?? "")
            var body: [UInt8] = []
            if let json {
                body = [UInt8](try JSONSerialization.data(withJSONObject: json))
                head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n"
            }
            let r = try ServeCommandTests.exchange(port: port, Array((head + "\r\n").utf8) + body)
            return (r.status, r.headers, (try? JSONSerialization.jsonObject(with: Data(r.body))) as? [String: Any])
        }

        func version(_ id: String, key: String? = nil) -> String? {
            (try? request("GET", "/v1/models/\(id)", key: key))?.json?["model_version"] as? String
        }
    }

    let photo = try! Data(contentsOf: Fixtures.url("images/photo_512x384.jpg")).base64EncodedString()

    static func modelsFolder(_ models: [String: String]) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("live-cli-\(UUID())")
        for (name, fixture) in models { try Fixtures.installModel(fixture, as: name, in: dir) }
        return dir
    }


    func embed(_ server: Server, _ model: String) throws -> (status: Int, version: String?, header: String?, first: Double?) {
        let r = try server.request("POST", "/v1/embeddings", json: ["model": model, "input": photo])
        let first = ((r.json?["data"] as? [[String: Any]])?.first?["embedding"] as? [NSNumber])?.first?.doubleValue
        return (r.status, r.json?["model_version"] as? String, r.headers["x-model-version"], first)
    }

    func testWatchedFolderReplacesAddsAndRemovesModelsWithoutARestart() throws {
        let dir = try Self.modelsFolder(["m": "encoders/timm_qkv_cls", "other": "encoders/bootmae_qv"])
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try Server(["--models-dir", dir.path, "--default-model", "other", "--watch-models", "--watch-interval-ms", "100"])
        defer { _ = server.stop() }
        let before = try embed(server, "m")
        XCTAssertEqual(before.status, 200)
        let v1 = try XCTUnwrap(before.version)
        XCTAssertEqual(before.header, v1)
        XCTAssertEqual(server.version("m"), v1)

        // Clients keep asking while the directory is replaced.
        final class Answers: @unchecked Sendable {
            let lock = NSLock()
            var all: [(Int, String?)] = []
            var stop = false
        }
        let answers = Answers()
        let clients = DispatchGroup()
        nonisolated(unsafe) let test = self
        for _ in 0..<2 {
            DispatchQueue.global().async(group: clients) {
                while true {
                    answers.lock.lock(); let stop = answers.stop; answers.lock.unlock()
                    if stop { break }
                    let e = try? test.embed(server, "m")
                    answers.lock.lock(); answers.all.append((e?.status ?? -1, e?.version)); answers.lock.unlock()
                }
            }
        }
        Thread.sleep(forTimeInterval: 0.3)
        let replaced = Date()
        try Fixtures.installModel("encoders/timm_qkv_avg_head", as: "m", in: dir)
        let v2 = try Server.wait(seconds: 10) { server.version("m").flatMap { $0 == v1 ? nil : $0 } }
        let pickup = Date().timeIntervalSince(replaced)
        Thread.sleep(forTimeInterval: 0.3)
        answers.lock.lock(); answers.stop = true; answers.lock.unlock()
        XCTAssertEqual(clients.wait(timeout: .now() + 20), .success)
        XCTAssertNotNil(v2, "the replaced model was not picked up: \(server.log)")
        XCTAssertLessThan(pickup, 5, "picked up \(pickup) s after the change")
        XCTAssertTrue(answers.all.allSatisfy { $0.0 == 200 }, "\(answers.all.filter { $0.0 != 200 })")
        XCTAssertTrue(answers.all.allSatisfy { $0.1 == v1 || $0.1 == v2 })
        let after = try embed(server, "m")
        XCTAssertEqual(after.version, v2)
        XCTAssertEqual(after.header, v2)
        XCTAssertNotEqual(after.first, before.first, "new weights, new outputs")

        // A broken replacement (weights cut in half, written in place): logged with the file, old version serves.
        let weights = dir.appendingPathComponent("m/model.safetensors")
        let bytes = try Data(contentsOf: weights)
        try bytes.prefix(bytes.count / 2).write(to: weights)
        let error = try Server.wait(seconds: 10) { server.log.split(separator: "\n").first { $0.contains("error: cannot load model m") } }
        XCTAssertNotNil(error, server.log)
        XCTAssertTrue(error?.contains(weights.path) ?? false, "\(error ?? "")")
        XCTAssertEqual(try embed(server, "m").version, v2)

        // Added, then removed.
        try Fixtures.installModel("encoders/timm_qkv_cls", as: "n", in: dir)
        XCTAssertEqual(try Server.wait(seconds: 10) { server.version("n") }, v1, "the same weights as m had: the same version")
        try FileManager.default.removeItem(at: dir.appendingPathComponent("n"))
        XCTAssertNotNil(try Server.wait(seconds: 10) { try server.request("GET", "/v1/models/n").status == 404 ? true : nil })

        let metrics = String(decoding: try ServeCommandTests.exchange(port: server.port, Array("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)).body, as: UTF8.self)
        XCTAssertTrue(metrics.contains("bootmae_model_info{model=\"m\",version=\"\(v2!)\"} 1"), metrics)
        XCTAssertTrue(metrics.contains("bootmae_model_loads_total{model=\"m\",result=\"failure\",trigger=\"watch\"} 1"), metrics)
        XCTAssertTrue(metrics.contains("bootmae_model_unloads_total{model=\"n\",result=\"success\",trigger=\"watch\"} 1"), metrics)
        XCTAssertEqual(server.stop(), 0)
    }

    func testModelControlIsOffByDefaultAndBehindTheAPIKey() throws {
        let dir = try Self.modelsFolder(["m": "encoders/timm_qkv_cls", "other": "encoders/bootmae_qv"])
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            let plain = try Server(["--models-dir", dir.path, "--default-model", "other"])
            defer { _ = plain.stop() }
            XCTAssertEqual(try plain.request("POST", "/v1/models/m/load").status, 404)
            XCTAssertEqual(try plain.request("POST", "/v1/models/m/unload").status, 404)
            XCTAssertEqual(try plain.request("GET", "/v1/models/m").status, 200)
        }
        let server = try Server(["--models-dir", dir.path, "--default-model", "other", "--model-control", "--api-key", "k"])
        defer { _ = server.stop() }
        let v1 = try XCTUnwrap(server.version("m", key: "k"))
        try Fixtures.installModel("encoders/timm_qkv_avg_head", as: "m", in: dir)
        XCTAssertEqual(try server.request("POST", "/v1/models/m/load").status, 401)
        XCTAssertEqual(try server.request("POST", "/v1/models/m/load", key: "wrong").status, 401)
        XCTAssertEqual(server.version("m", key: "k"), v1, "no watcher: unchanged until loaded")
        let loaded = try server.request("POST", "/v1/models/m/load", key: "k")   // no body, no Content-Length
        XCTAssertEqual(loaded.status, 200)
        let v2 = try XCTUnwrap(loaded.json?["model_version"] as? String)
        XCTAssertNotEqual(v2, v1)
        XCTAssertEqual(loaded.headers["x-model-version"], v2)
        XCTAssertEqual(server.version("m", key: "k"), v2)
        XCTAssertEqual(try server.request("GET", "/v1/models/m/load", key: "k").status, 405)

        try Data("{}".utf8).write(to: dir.appendingPathComponent("m/config.json"))
        let broken = try server.request("POST", "/v1/models/m/load", key: "k")
        XCTAssertEqual(broken.status, 422)
        let message = (broken.json?["error"] as? [String: Any])?["message"] as? String ?? ""
        XCTAssertTrue(message.contains(dir.appendingPathComponent("m").path) && message.hasSuffix("version \(v2) keeps serving"), message)
        XCTAssertEqual(server.version("m", key: "k"), v2)

        XCTAssertEqual(try server.request("POST", "/v1/models/other/unload", key: "k").status, 409)
        XCTAssertEqual(try server.request("POST", "/v1/models/m/unload", key: "k").json?["status"] as? String, "unloaded")
        XCTAssertEqual(try server.request("GET", "/v1/models/m", key: "k").status, 404)
        XCTAssertEqual(try server.request("POST", "/v1/models/nothing/load", key: "k").status, 404)
        XCTAssertTrue(server.log.contains("unloaded m version \(v2) (api)"), server.log)
        XCTAssertEqual(server.stop(), 0)
    }
}
