import XCTest
import Foundation
import TestSupport

/// `bootmae-serve` as a new user meets it: started from any directory.
final class ServeFirstUseTests: XCTestCase {
    /// The OpenAPI document is built into the binary: served from any working directory, equal to
    /// the repository's openapi.yaml; --openapi still overrides it, and a path that cannot be read
    /// stops the start (exit 2) naming it, instead of a server whose /openapi.yaml answers 404.
    func testTheOpenAPIDocumentIsBuiltIn() throws {
        let models = try ServeCommandTests.modelsFolder()
        defer { try? FileManager.default.removeItem(at: models) }
        let elsewhere = FileManager.default.temporaryDirectory.appendingPathComponent("serve-cwd-\(UUID())")
        try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: elsewhere) }

        let process = Process()
        process.executableURL = try BuiltExecutable("bootmae-serve").url
        process.arguments = ["--models-dir", models.path, "--port", "0", "--threads", "1"]
        process.currentDirectoryURL = elsewhere
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "BOOTMAE_OPENAPI")
        process.environment = environment
        let log = Pipe()
        process.standardError = log
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer { process.terminate(); process.waitUntilExit() }
        var text = "", port = 0
        let deadline = Date().addingTimeInterval(30)
        while port == 0 && Date() < deadline {
            let chunk = log.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
            if let range = text.range(of: #"ready on http://127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                port = Int(text[range].split(separator: ":").last!)!
            }
        }
        XCTAssertNotEqual(port, 0, text)
        XCTAssertFalse(text.contains("openapi"), "no warning about a missing file: \(text)")
        let spec = try ServeCommandTests.exchange(port: port, Array("GET /openapi.yaml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
        XCTAssertEqual(spec.status, 200)
        let repository = try Data(contentsOf: Fixtures.url("../../openapi.yaml"))
        XCTAssertEqual(Data(spec.body), repository, "the built-in document is the repository's openapi.yaml")

        let missing = try BuiltExecutable("bootmae-serve").run(["--models-dir", models.path, "--port", "0", "--openapi", "/nonexistent/spec.yaml"])
        XCTAssertEqual(missing.status, 2, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("--openapi /nonexistent/spec.yaml cannot be read"), missing.stderr)
        XCTAssertTrue(missing.stderr.contains("built-in openapi.yaml"), missing.stderr)
    }

    /// A second server on a port in use stops at once with the bind error (exit 2), before it loads
    /// any model; the first keeps serving.
    func testAPortInUseFailsBeforeAnyModelLoads() throws {
        let models = try ServeCommandTests.modelsFolder()
        defer { try? FileManager.default.removeItem(at: models) }
        let first = try ServeCommandTests.RunningServer(arguments: ["--models-dir", models.path, "--threads", "1"])
        defer { _ = first.stop() }
        let second = try BuiltExecutable("bootmae-serve").run(["--models-dir", models.path, "--port", String(first.port), "--threads", "1"])
        XCTAssertEqual(second.status, 2, second.stderr)
        XCTAssertTrue(second.stderr.contains("cannot listen on 127.0.0.1:\(first.port)"), second.stderr)
        XCTAssertTrue(second.stderr.contains("Address already in use"), second.stderr)
        XCTAssertFalse(second.stderr.contains("loaded "), "no model loads first: \(second.stderr)")
        let health = try ServeCommandTests.exchange(port: first.port, Array("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
        XCTAssertEqual(health.status, 200)
    }

    /// A body over the limit gets a 413 that says how to send less for the kind of body sent (JSON:
    /// raw or multipart bodies skip base64's third; a raw image: shrink it; multipart: fewer parts)
    /// and where the limits are; /v1/models lists the body limit with the others.
    func testA413SaysHowToSendLessAndTheLimitsAreListed() throws {
        let models = try ServeCommandTests.modelsFolder()
        defer { try? FileManager.default.removeItem(at: models) }
        let server = try ServeCommandTests.RunningServer(arguments: ["--models-dir", models.path, "--max-body-bytes", "1000", "--threads", "1"])
        defer { _ = server.stop() }
        let png = try Data(contentsOf: Fixtures.url("images/rgb.png")).base64EncodedString()
        let declared = try ServeCommandTests.exchange(port: server.port, ServeCommandTests.post("/v1/embeddings", json: ["input": png]))
        let chunk = Array(repeating: UInt8(ascii: "a"), count: 1500)
        let chunked = try ServeCommandTests.exchange(port: server.port, Array(("POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5dc\r\n").utf8) + chunk + Array("\r\n0\r\n\r\n".utf8))
        for response in [declared, chunked] {
            XCTAssertEqual(response.status, 413)
            let message = String(decoding: response.body, as: UTF8.self)
            for text in ["larger than the limit of 1000 bytes", "base64, a third larger", "multipart/form-data", "GET /v1/models", "max_body_bytes"] {
                XCTAssertTrue(message.contains(text), "\(text): \(message)")
            }
        }
        // A raw image body is one image already: the advice is to shrink it; multipart: fewer parts.
        let raw = try ServeCommandTests.exchange(port: server.port, Array(("POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
            + "Content-Length: 5000\r\nConnection: close\r\n\r\n").utf8))
        let parts = try ServeCommandTests.exchange(port: server.port, Array(("POST /v1/embeddings HTTP/1.1\r\nHost: x\r\n"
            + "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n").utf8))
        for (response, expected) in [(raw, "shrink it before sending"), (parts, "send fewer or smaller images per request")] {
            XCTAssertEqual(response.status, 413)
            let message = String(decoding: response.body, as: UTF8.self)
            for text in ["larger than the limit of 1000 bytes", expected, "max_body_bytes"] {
                XCTAssertTrue(message.contains(text), "\(text): \(message)")
            }
            XCTAssertFalse(message.contains("base64"), message)
        }
        let list = try ServeCommandTests.exchange(port: server.port, Array("GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(list.body)) as? [String: Any])
        let limits = try XCTUnwrap(((json["data"] as? [[String: Any]])?.first)?["limits"] as? [String: Any])
        XCTAssertEqual(limits["max_body_bytes"] as? Int, 1000)
    }
}
