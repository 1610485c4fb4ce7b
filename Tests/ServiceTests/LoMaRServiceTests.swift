import XCTest
import Foundation
import Tensor
import ViT
import ImageKit
@testable import Service
import Objectives
import TestSupport

/// A LoMaR pretraining directory (the official model's fixture weights) served on its own: its
/// RPE-only encoder's embeddings equal the in-process encoder's, and reconstructions come window by
/// window in the usual figure.
final class LoMaRServiceTests: XCTestCase {
    static let service: Service = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lomar-service-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        let dest = dir.appendingPathComponent("lomar")
        try! FileManager.default.createDirectory(at: dest, withIntermediateDirectories: true)
        for file in ["config.json", "model.safetensors"] {
            try! FileManager.default.copyItem(at: Fixtures.url("pretrain/lomar_tiny/\(file)"), to: dest.appendingPathComponent(file))
        }
        let registry = try! ModelRegistry(directory: dir.path, defaultModel: "lomar")
        registry.warmUp()
        let s = Service(registry: registry, limits: .init(maxBatch: 4, maxDelay: 0.002, maxQueue: 16), options: Service.Options())
        s.markReady()
        return s
    }()

    let photo = try! Data(contentsOf: Fixtures.url("images/photo_512x384.jpg"))

    func post(_ path: String, _ json: [String: Any], headers: [String: String] = [:]) throws -> (status: Int, response: ServiceResponse) {
        var h = headers
        h["content-type"] = "application/json"
        let r = try Self.service.respond(to: ServiceRequest(method: "POST", path: path, query: [:], headers: h,
                                                            body: [UInt8](try JSONSerialization.data(withJSONObject: json))))
        return (r.status, r)
    }

    func testEmbeddingsAndReconstructions() throws {
        let model = try Self.service.registry.model("lomar")
        XCTAssertEqual(model.encoder.config.relativePosition, .irpeProductK)
        let (status, response) = try post("/v1/embeddings", ["model": "lomar", "input": photo.base64EncodedString()])
        XCTAssertEqual(status, 200)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
        let served = try XCTUnwrap((json["data"] as? [[String: Any]])?.first?["embedding"] as? [NSNumber]).map(\.floatValue)
        let input = model.preprocessor.tensorCHW(try ImageDecoder.decode(photo))
        let expected = model.encoder.embed(Tensor(shape: [1, 3, 32, 32], data: input))
        XCTAssertLessThanOrEqual(relativeError(Tensor(shape: [1, served.count], data: served), expected), 1e-5)

        let (s2, figure) = try post("/v1/reconstructions", ["model": "lomar", "input": photo.base64EncodedString(), "seed": 3])
        XCTAssertEqual(s2, 200)
        let strip = try ImageDecoder.decode(figure.body)
        XCTAssertGreaterThan(strip.width, 4 * strip.height)
    }
}
