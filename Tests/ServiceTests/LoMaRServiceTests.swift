import XCTest
import Foundation
import Tensor
import ViT
import ImageKit
@testable import Service
import Objectives
import TestSupport

/// LoMaR models served: a pretraining directory (the official model's fixture weights), whose RPE-only
/// encoder's embeddings equal the in-process encoder's and whose reconstructions come window by window
/// in the usual figure, and a fine-tuned classifier (the official fine-tune model's fixture), whose
/// classifications are the official model's.
final class LoMaRServiceTests: XCTestCase {
    static let service: Service = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lomar-service-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        let dest = dir.appendingPathComponent("lomar")
        try! FileManager.default.createDirectory(at: dest, withIntermediateDirectories: true)
        for file in ["config.json", "model.safetensors"] {
            try! FileManager.default.copyItem(at: Fixtures.url("pretrain/lomar_tiny/\(file)"), to: dest.appendingPathComponent(file))
        }
        try! Fixtures.installModel("encoders/lomar_rpe_finetune", as: "lomar-cls", in: dir)
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

    /// `/v1/classifications` of the LoMaR fine-tune fixture ties the served classifier to the official
    /// model (junchen14/LoMaR models_vit_rp.py, global pool + fc_norm + head): tools/reference/
    /// make_lomar_fixtures.py ran it on two committed photos (a PNG and a JPEG) after Pillow's decode
    /// and timm's eval transform, and the served scores are the softmax of its logits. The model input
    /// is checked on the way, so a failure says whether the preprocessing or the model differs.
    func testClassificationsAreTheOfficialFineTuneModels() throws {
        let io = try Fixtures.file("encoders/lomar_rpe_finetune/io.safetensors")
        let photos = try JSONDecoder().decode([String].self, from: Data(try XCTUnwrap(io.metadata["photos"]).utf8))
        XCTAssertEqual(photos.count, 2)
        let bytes = try photos.map { try Data(contentsOf: Fixtures.url("images/\($0)")) }
        let model = try Self.service.registry.model("lomar-cls")
        XCTAssertEqual(model.encoder.config.relativePosition, .irpeProductK)
        XCTAssertNil(model.encoder.parameters["pos_embed"])
        let inputs = try bytes.flatMap { model.preprocessor.tensorCHW(try ImageDecoder.decode($0)) }
        XCTAssertLessThanOrEqual(relativeError(Tensor(shape: [2, 3, 32, 32], data: inputs), try io.tensor("photo_inputs")), 1e-6,
                                 "the server's model input against Pillow + timm's eval transform")

        let (status, response) = try post("/v1/classifications", ["model": "lomar-cls", "input": bytes.map { $0.base64EncodedString() }, "top_k": 5])
        XCTAssertEqual(status, 200)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
        let data = try XCTUnwrap(json["data"] as? [[String: Any]])
        XCTAssertEqual(data.count, 2)
        let expected = try io.tensor("photo_probs")   // softmax of the official logits, (2, 5)
        let classes = try XCTUnwrap(model.config.labels)
        XCTAssertEqual(expected.shape, [2, classes.count])
        var worst = 0.0
        for (i, item) in data.enumerated() {
            let labels = try XCTUnwrap(item["labels"] as? [[String: Any]])
            XCTAssertEqual(labels.count, classes.count)
            for entry in labels {
                let c = try XCTUnwrap(classes.firstIndex(of: try XCTUnwrap(entry["label"] as? String)))
                let score = try XCTUnwrap(entry["score"] as? NSNumber).doubleValue
                worst = max(worst, abs(score - Double(expected.data[i * classes.count + c])))
            }
        }
        print("LoMaR fine-tune: served scores vs softmax of the official logits, max abs diff \(worst)")
        XCTAssertLessThanOrEqual(worst, 1e-4, "served scores against softmax of models_vit_rp.py's logits")
    }
}
