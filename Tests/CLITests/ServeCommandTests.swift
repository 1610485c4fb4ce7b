import XCTest
import Foundation
import Tensor
import ViT
import Checkpoint
import ImageKit
import TestSupport

/// `bootmae-serve` run as a user would: the built executable on an ephemeral loopback port, real
/// HTTP over a socket, real photographs and fixture models.
final class ServeCommandTests: XCTestCase {

    /// A models folder from fixtures: a classifier, a pretraining network and a plain encoder.
    static func modelsFolder() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("serve-models-\(UUID())")
        for (name, fixture) in [("classifier", "encoders/timm_qkv_avg_head"), ("bootmae", "pretrain/bootmae_tiny"), ("encoder", "encoders/timm_qkv_cls")] {
            let dest = dir.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: dest, withIntermediateDirectories: true)
            for file in ["config.json", "model.safetensors"] {
                try FileManager.default.copyItem(at: Fixtures.url("\(fixture)/\(file)"), to: dest.appendingPathComponent(file))
            }
        }
        return dir
    }

    final class RunningServer {
        let process = Process()
        var port = 0
        let log = Pipe()

        init(arguments: [String], environment: [String: String] = [:]) throws {
            process.executableURL = try BuiltExecutable("bootmae-serve").url
            process.arguments = ["--port", "0"] + arguments
            if !environment.isEmpty {
                process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
            }
            process.standardError = log
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            // The server logs "ready on http://127.0.0.1:PORT" once it listens.
            var text = ""
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                let chunk = log.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
                if let range = text.range(of: #"ready on http://127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                    port = Int(text[range].split(separator: ":").last!)!
                    return
                }
            }
            process.terminate()
            throw NSError(domain: "serve", code: 2, userInfo: [NSLocalizedDescriptionKey: "server did not become ready: \(text)"])
        }

        func stop() -> Int32 {
            process.terminate()   // SIGTERM: drain, then exit
            process.waitUntilExit()
            return process.terminationStatus
        }
    }

    /// One raw HTTP exchange: writes `request`, reads until the peer closes or `Content-Length` is met.
    static func exchange(port: Int, _ request: [UInt8]) throws -> (status: Int, headers: [String: String], body: [UInt8]) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var tv = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0 else { throw NSError(domain: "serve", code: 3) }
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }
            sent += n
        }
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            data += buffer[0..<n]
            if let end = find(Array("\r\n\r\n".utf8), in: data) {
                let head = String(decoding: data[0..<end], as: UTF8.self)
                let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                    .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                if data.count >= end + 4 + length { break }
            }
        }
        guard let end = find(Array("\r\n\r\n".utf8), in: data) else { throw NSError(domain: "serve", code: 4, userInfo: [NSLocalizedDescriptionKey: "no response"]) }
        let lines = String(decoding: data[0..<end], as: UTF8.self).split(separator: "\r\n")
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { headers[parts[0].lowercased()] = parts[1].trimmingCharacters(in: .whitespaces) }
        }
        return (Int(lines[0].split(separator: " ")[1])!, headers, Array(data[(end + 4)...]))
    }

    static func find(_ needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
        return nil
    }

    static func post(_ path: String, json: Any, extra: String = "") -> [UInt8] {
        let body = try! JSONSerialization.data(withJSONObject: json)
        return Array("POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\(extra)Connection: close\r\n\r\n".utf8) + body
    }

    func testEndpointsOverHTTPAndBadInputsAndDrain() throws {
        let models = try Self.modelsFolder()
        defer { try? FileManager.default.removeItem(at: models) }
        let server = try RunningServer(arguments: ["--models-dir", models.path, "--default-model", "encoder", "--max-body-bytes", "2000000",
                                                   "--openapi", URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                                                    .appendingPathComponent("../../openapi.yaml").standardized.path])
        let port = server.port
        let photo = try Data(contentsOf: Fixtures.url("images/photo_512x384.jpg"))

        // Embeddings over HTTP equal the in-process encoder's.
        let r = try Self.exchange(port: port, Self.post("/v1/embeddings", json: ["input": photo.base64EncodedString()]))
        XCTAssertEqual(r.status, 200)
        XCTAssertNotNil(r.headers["x-request-id"])
        let json = try JSONSerialization.jsonObject(with: Data(r.body)) as! [String: Any]
        let served = ((json["data"] as! [[String: Any]])[0]["embedding"] as! [NSNumber]).map(\.floatValue)
        let encoder = try ModelDirectory.loadEncoder(models.appendingPathComponent("encoder"))
        let c = encoder.config
        let input = ImagePreprocessor(imageSize: c.imgSize, channels: c.inChans, mean: c.mean, std: c.std).tensorCHW(try ImageDecoder.decode(photo))
        XCTAssertLessThanOrEqual(relativeError(Tensor(shape: [1, served.count], data: served),
                                               encoder.embed(Tensor(shape: [1, 3, 32, 32], data: input))), 1e-6)

        // Classification and reconstruction.
        XCTAssertEqual(try Self.exchange(port: port, Self.post("/v1/classifications", json: ["model": "classifier", "input": photo.base64EncodedString()])).status, 200)
        let png = try Self.exchange(port: port, Self.post("/v1/reconstructions", json: ["model": "bootmae", "input": photo.base64EncodedString()]))
        XCTAssertEqual(png.status, 200)
        XCTAssertEqual(png.headers["content-type"], "image/png")
        XCTAssertNoThrow(try ImageDecoder.decode(png.body))

        // The bad-input matrix: each gets its documented status, and the server keeps serving.
        let truncated = try Data(contentsOf: Fixtures.url("images/truncated.jpg")).base64EncodedString()
        let cases: [(String, [UInt8], Int)] = [
            ("truncated image", Self.post("/v1/embeddings", json: ["input": truncated]), 400),
            ("bad base64", Self.post("/v1/embeddings", json: ["input": "%%%"]), 400),
            ("wrong content type", Array("POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 3\r\nConnection: close\r\n\r\na,b".utf8), 415),
            ("oversized body", Array("POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\n\r\n".utf8), 413),
            ("huge headers", Array("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 40000))\r\n\r\n".utf8), 431),
            ("CL + TE", Array("POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".utf8), 400),
            ("unknown route", Array("GET /v2/nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8), 404),
            ("wrong method", Array("DELETE /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8), 405),
        ]
        for (name, request, status) in cases {
            let response = try Self.exchange(port: port, request)
            XCTAssertEqual(response.status, status, name)
            if status >= 400, !response.body.isEmpty {
                let error = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any]
                XCTAssertNotNil((error?["error"] as? [String: Any])?["message"], "\(name): error envelope")
            }
        }
        XCTAssertEqual(try Self.exchange(port: port, Array("GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)).status, 200)
        let spec = try Self.exchange(port: port, Array("GET /openapi.yaml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
        XCTAssertEqual(spec.status, 200)
        XCTAssertTrue(String(decoding: spec.body, as: UTF8.self).hasPrefix("openapi: 3"))

        // SIGTERM drains and exits cleanly.
        XCTAssertEqual(server.stop(), 0)
    }

    func testAPIKeyGuardsV1Routes() throws {
        let models = try Self.modelsFolder()
        defer { try? FileManager.default.removeItem(at: models) }
        let server = try RunningServer(arguments: ["--models-dir", models.path, "--api-key", "s3cret"])
        defer { _ = server.stop() }
        let open = try Self.exchange(port: server.port, Array("GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
        XCTAssertEqual(open.status, 401)
        XCTAssertEqual(open.headers["www-authenticate"], "Bearer")
        let authorized = try Self.exchange(port: server.port, Array("GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\nConnection: close\r\n\r\n".utf8))
        XCTAssertEqual(authorized.status, 200)
        XCTAssertEqual(try Self.exchange(port: server.port, Array("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)).status, 200)
        // A repeated Authorization line is not a second chance: the lines combine and fail the check.
        let twice = try Self.exchange(port: server.port, Array(("GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
            + "Authorization: Bearer s3cret\r\nConnection: close\r\n\r\n").utf8))
        XCTAssertEqual(twice.status, 401)
        // Neither is a repeated Content-Type.
        let types = try Self.exchange(port: server.port, Array(("POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n"
            + "Content-Type: text/csv\r\nContent-Type: image/png\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc").utf8))
        XCTAssertEqual(types.status, 415)
        let withParameters = try Self.exchange(port: server.port, Array(("POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n"
            + "Content-Type: application/json; charset=utf-8\r\nContent-Type: image/png\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}").utf8))
        XCTAssertEqual(withParameters.status, 415)
    }

    func testAPIKeyFromTheEnvironment() throws {
        let models = try Self.modelsFolder()
        defer { try? FileManager.default.removeItem(at: models) }
        let server = try RunningServer(arguments: ["--models-dir", models.path], environment: ["BOOTMAE_API_KEY": "from-env"])
        defer { _ = server.stop() }
        let request = { (auth: String) in Array("GET /v1/models HTTP/1.1\r\nHost: x\r\n\(auth)Connection: close\r\n\r\n".utf8) }
        XCTAssertEqual(try Self.exchange(port: server.port, request("")).status, 401)
        XCTAssertEqual(try Self.exchange(port: server.port, request("Authorization: Bearer from-env\r\n")).status, 200)
    }

    func testBrokenModelsFolderIsAClearStartupError() throws {
        let result = try BuiltExecutable("bootmae-serve").run(["--models-dir", "/nonexistent/models", "--port", "0"])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.stderr.contains("/nonexistent/models"), result.stderr)
    }

    func testBadPrecisionIsAClearUsageError() throws {
        for (value, says) in [("fp16", "fp32 or bf16"), ("no-such-model=bf16", "no-such-model")] {
            let result = try BuiltExecutable("bootmae-serve").run(["--models-dir", try Self.modelsFolder().path, "--port", "0", "--precision", value])
            XCTAssertNotEqual(result.status, 0, value)
            XCTAssertTrue(result.stderr.contains(says), result.stderr)
        }
    }
}
