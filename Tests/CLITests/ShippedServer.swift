import XCTest
import Foundation
import Tensor
import ViT
import ImageKit
import TestSupport

/// The repository's `models/` served by the real `bootmae-serve` with nothing but a models folder and
/// a port, as the README's run command does, and the committed Fashion-MNIST test images
/// (Tests/Fixtures/fmnist) the shipped models are checked on. Shared by the shipped-model test classes.
final class ShippedServer {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../..").standardized
    static let modelsDirectory = repository.appendingPathComponent("models")

    /// Tests/Fixtures/fmnist/expected.json: the images, their labels and the classifier's recorded answers.
    struct Expectations: Decodable {
        struct Image: Decodable {
            let file: String
            let label: String        // the dataset's label
            let expected: String     // the shipped classifier's top-1, recorded at export
        }
        let images: [Image]
    }

    let expectations: Expectations
    /// The image files' bytes, in `expectations.images` order.
    let images: [Data]
    let server: ServeCommandTests.RunningServer

    init() throws {
        let data = try Data(contentsOf: Fixtures.url("fmnist/expected.json"))
        expectations = try JSONDecoder().decode(Expectations.self, from: data)
        images = try expectations.images.map { try Data(contentsOf: Fixtures.url("fmnist/\($0.file)")) }
        server = try ServeCommandTests.RunningServer(arguments: ["--models-dir", Self.modelsDirectory.path])
    }

    var port: Int { server.port }

    /// The images' bytes in base64, as a JSON request carries them.
    var base64Images: [String] { images.map { $0.base64EncodedString() } }

    /// The embeddings of an `/v1/embeddings` answer, in order (empty where the answer has none).
    static func embeddings(_ json: [String: Any]) -> [[Float]] {
        (json["data"] as? [[String: Any]] ?? []).map { ($0["embedding"] as? [NSNumber] ?? []).map(\.floatValue) }
    }

    /// `images` as the server prepares them for a model of config `c` (decode, gray or RGB, resize,
    /// normalize), one batch: what an in-process reference runs on.
    static func modelInput(_ images: [Data], config c: ViTConfig) throws -> Tensor {
        let preprocessor = ImagePreprocessor(imageSize: c.imgSize, channels: c.inChans, mean: c.mean, std: c.std, cropPct: c.cropPct ?? 1)
        let planes = try images.map { preprocessor.tensorCHW(try ImageDecoder.decode($0)) }
        return Tensor(shape: [images.count, c.inChans, c.imgSize, c.imgSize], data: planes.flatMap { $0 })
    }

    /// Stops the server; its exit status (0: drained and exited cleanly).
    func stop() -> Int32 { server.stop() }

    /// A JSON POST preferring a JSON answer; the answer's status and body (empty when it is not a JSON object).
    func call(_ path: String, _ body: [String: Any]) throws -> (status: Int, json: [String: Any]) {
        let r = try ServeCommandTests.exchange(port: port, ServeCommandTests.post(path, json: body, extra: "Accept: application/json\r\n"))
        return (r.status, (try? JSONSerialization.jsonObject(with: Data(r.body))) as? [String: Any] ?? [:])
    }

    /// A GET; the answer's status and JSON body.
    func get(_ path: String) throws -> (status: Int, json: [String: Any]) {
        let r = try ServeCommandTests.exchange(port: port, Array("GET \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
        return (r.status, (try? JSONSerialization.jsonObject(with: Data(r.body))) as? [String: Any] ?? [:])
    }

    /// `/v1/models`' cards by id.
    func modelCards() throws -> [String: [String: Any]] {
        let answer = try get("/v1/models")
        XCTAssertEqual(answer.status, 200)
        let cards = try XCTUnwrap(answer.json["data"] as? [[String: Any]])
        return Dictionary(uniqueKeysWithValues: cards.compactMap { card in (card["id"] as? String).map { ($0, card) } })
    }
}

/// A test class that serves `models/` for each test (a fresh server, stopped and checked for a clean
/// exit afterwards).
class ShippedServerTestCase: XCTestCase {
    var shipped: ShippedServer!

    override func setUpWithError() throws {
        shipped = try ShippedServer()
    }

    override func tearDown() {
        if let shipped { XCTAssertEqual(shipped.stop(), 0) }
    }
}
