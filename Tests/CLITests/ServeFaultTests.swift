import XCTest
import Foundation
import TestSupport

/// `bootmae-serve` under faults (issue 24): damaged model directories and clients that go away.
final class ServeFaultTests: XCTestCase {

    /// A models folder with a good encoder and one damaged copy of it; `damage` edits the copy.
    func modelsFolder(damage: (URL) throws -> Void) throws -> (root: URL, broken: URL) {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("serve-faults-\(UUID())")
        for name in ["good", "broken"] {
            let dest = root.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: dest, withIntermediateDirectories: true)
            for file in ["config.json", "model.safetensors"] {
                try FileManager.default.copyItem(at: Fixtures.url("encoders/timm_qkv_cls/\(file)"), to: dest.appendingPathComponent(file))
            }
        }
        let broken = root.appendingPathComponent("broken")
        try damage(broken)
        return (root, broken)
    }

    static func truncate(_ url: URL, keeping: (Int) -> Int) throws {
        let bytes = try Data(contentsOf: url)
        try bytes.prefix(keeping(bytes.count)).write(to: url)
    }

    /// Each damaged file stops the server at start-up (exit 2) with a message naming the file and
    /// what is wrong with it, even though another model would load: a replica never reports ready
    /// without a model its clients ask for (as Triton with its default --exit-on-error, and TEI).
    func testADamagedModelDirectoryStopsTheStartNamingTheFile() throws {
        let cases: [(String, (URL) throws -> Void, file: String, reason: String)] = [
            ("safetensors header cut", { try Self.truncate($0.appendingPathComponent("model.safetensors")) { _ in 40 } },
             "model.safetensors", "the file is truncated"),
            ("safetensors data cut", { try Self.truncate($0.appendingPathComponent("model.safetensors")) { $0 - 1000 } },
             "model.safetensors", "the file is truncated: tensor"),
            ("empty safetensors", { try Self.truncate($0.appendingPathComponent("model.safetensors")) { _ in 0 } },
             "model.safetensors", "shorter than its 8-byte header length"),
            ("config.json garbage", { try Data("{\"img_size\": 32, garbage".utf8).write(to: $0.appendingPathComponent("config.json")) },
             "config.json", "not valid JSON"),
            ("weights missing", { try FileManager.default.removeItem(at: $0.appendingPathComponent("model.safetensors")) },
             "model.safetensors", "cannot read"),
        ]
        let serve = try BuiltExecutable("bootmae-serve")
        for (name, damage, file, reason) in cases {
            let (root, broken) = try modelsFolder(damage: damage)
            defer { try? FileManager.default.removeItem(at: root) }
            let result = try serve.run(["--models-dir", root.path, "--port", "0"])
            XCTAssertEqual(result.status, 2, "\(name): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("cannot load model broken"), "\(name): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(broken.appendingPathComponent(file).path), "\(name): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(reason), "\(name): \(result.stderr)")
            XCTAssertFalse(result.stderr.contains("ready on"), "\(name): \(result.stderr)")
        }
    }

    /// Open file descriptors of a process (Linux /proc).
    static func openDescriptors(_ pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// A raw connection that sends `bytes` and then closes without reading the answer.
    static func sendAndHangUp(port: Int, _ bytes: [UInt8], reset: Bool) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if reset {  // RST instead of FIN: the server's next write fails with ECONNRESET
            var linger = Foundation.linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Foundation.linger>.size))
        }
        close(fd)
    }

    /// Clients that hang up halfway through a body, or right after sending a whole batch of images
    /// (before the answer, with FIN or RST), cost the server nothing beyond their own work: it stays
    /// ready, answers the next client correctly, and holds no more descriptors than before.
    func testClientsThatHangUpMidRequestCostOnlyTheirOwnWork() throws {
        let models = try ServeCommandTests.modelsFolder()
        defer { try? FileManager.default.removeItem(at: models) }
        let server = try ServeCommandTests.RunningServer(arguments: ["--models-dir", models.path, "--default-model", "encoder", "--threads", "1"])
        defer { _ = server.stop() }
        let pid = server.process.processIdentifier
        let png = try Data(contentsOf: Fixtures.url("images/rgb.png")).base64EncodedString()
        let embed = ServeCommandTests.post("/v1/embeddings", json: ["input": [String](repeating: png, count: 8)])
        XCTAssertEqual(try ServeCommandTests.exchange(port: server.port, embed).status, 200)
        let baseline = Self.openDescriptors(pid)

        for round in 0..<12 {
            switch round % 3 {
            case 0:  // half a body, then gone
                Self.sendAndHangUp(port: server.port, Array(embed.prefix(embed.count / 2)), reset: false)
            case 1:  // a whole batch of work, then gone before the answer
                Self.sendAndHangUp(port: server.port, embed, reset: false)
            default:
                Self.sendAndHangUp(port: server.port, embed, reset: true)
            }
        }
        // Others are served as before, with the right answer.
        let answer = try ServeCommandTests.exchange(port: server.port, embed)
        XCTAssertEqual(answer.status, 200)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any])
        XCTAssertEqual((json["data"] as? [Any])?.count, 8)
        XCTAssertEqual(try ServeCommandTests.exchange(port: server.port, Array("GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)).status, 200)
        // Every hung-up connection is closed once its own work is done (the batch still runs).
        let deadline = Date().addingTimeInterval(20)
        var open = Self.openDescriptors(pid)
        while open > baseline && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.1)
            open = Self.openDescriptors(pid)
        }
        XCTAssertLessThanOrEqual(open, baseline, "descriptors: \(baseline) before, \(open) after the hung-up clients")
        XCTAssertEqual(server.stop(), 0, "drains and exits cleanly")
    }
}
