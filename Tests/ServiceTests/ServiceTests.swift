import XCTest
import Foundation
import Tensor
import ViT
import Checkpoint
import ImageKit
@testable import Service
import Objectives
import TestSupport

/// The service in process (no sockets): every endpoint with real photographs and fixture models.
final class ServiceTests: XCTestCase {
    static let modelsDir: URL = {
        // A models folder assembled from fixtures: a classifier, a pretraining network, an encoder.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("service-models-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for (name, fixture) in [("classifier", "encoders/timm_qkv_avg_head"), ("bootmae", "pretrain/bootmae_tiny"), ("encoder", "encoders/bootmae_qv")] {
            let dest = dir.appendingPathComponent(name)
            try! FileManager.default.createDirectory(at: dest, withIntermediateDirectories: true)
            for file in ["config.json", "model.safetensors"] {
                try! FileManager.default.copyItem(at: Fixtures.url("\(fixture)/\(file)"), to: dest.appendingPathComponent(file))
            }
        }
        return dir
    }()

    static let service = makeService(maxDelay: 0.002)
    /// Waits long enough for a batch to fill that concurrent requests coalesce even on a loaded machine.
    static let patientService = makeService(maxDelay: 0.5)

    static func makeService(maxDelay: TimeInterval) -> Service {
        var options = Service.Options()
        options.maxImagesPerRequest = 8
        let registry = try! ModelRegistry(directory: modelsDir.path, defaultModel: "encoder")
        registry.warmUp()
        let s = Service(registry: registry, limits: .init(maxBatch: 4, maxDelay: maxDelay, maxQueue: 64), options: options)
        s.markReady()
        return s
    }

    let photo = try! Data(contentsOf: Fixtures.url("images/photo_512x384.jpg"))
    let png = try! Data(contentsOf: Fixtures.url("images/rgb.png"))

    /// Sends a request through the route table and waits for the response.
    func call(_ method: String, _ path: String, json: [String: Any]? = nil, body: [UInt8] = [], contentType: String? = nil,
              query: [String: String] = [:], headers: [String: String] = [:], service: Service = ServiceTests.service) -> (status: Int, json: [String: Any]?, response: ServiceResponse) {
        var h = headers
        var payload = body
        if let json {
            payload = [UInt8](try! JSONSerialization.data(withJSONObject: json))
            h["content-type"] = "application/json"
        }
        if let contentType { h["content-type"] = contentType }
        let r = try! service.respond(to: ServiceRequest(method: method, path: path, query: query, headers: h, body: payload))
        return (r.status, try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any], r)
    }

    func testEmbeddingsEqualTheInProcessEncoder() throws {
        let (status, json, _) = call("POST", "/v1/embeddings", json: ["model": "encoder", "input": [photo.base64EncodedString(), "data:image/png;base64," + png.base64EncodedString()], "pooling": "mean"])
        XCTAssertEqual(status, 200)
        let data = try XCTUnwrap(json?["data"] as? [[String: Any]])
        XCTAssertEqual(data.count, 2)
        let served = (data[0]["embedding"] as! [NSNumber]).map(\.floatValue)
        let model = try Self.service.registry.model("encoder")
        let input = model.preprocessor.tensorCHW(try ImageDecoder.decode(photo))
        let expected = model.encoder.embed(Tensor(shape: [1, 3, 32, 32], data: input), pooling: .mean)
        XCTAssertLessThanOrEqual(relativeError(Tensor(shape: [1, served.count], data: served), expected), 1e-6)
        XCTAssertEqual((json?["usage"] as? [String: Any])?["images"] as? Int, 2)
    }

    func testBase64FormatAndNormalizeAndRawBody() throws {
        let (status, json, _) = call("POST", "/v1/embeddings", body: [UInt8](photo), contentType: "image/jpeg",
                                     query: ["encoding_format": "base64", "normalize": "true"])
        XCTAssertEqual(status, 200)
        let b64 = try XCTUnwrap((json?["data"] as? [[String: Any]])?.first?["embedding"] as? String)
        let bytes = try XCTUnwrap(Data(base64Encoded: b64))
        let values = bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        XCTAssertEqual(values.count, 32)
        XCTAssertEqual(values.reduce(0) { $0 + $1 * $1 }, 1, accuracy: 1e-5)
    }

    func testMultipartUpload() throws {
        let boundary = "XyZ123"
        var body = Data()
        for (name, data, type) in [("a.jpg", photo, "image/jpeg"), ("b.png", png, "image/png")] {
            body += Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(name)\"\r\nContent-Type: \(type)\r\n\r\n".utf8)
            body += data + Data("\r\n".utf8)
        }
        body += Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nencoder\r\n--\(boundary)--\r\n".utf8)
        let (status, json, _) = call("POST", "/v1/embeddings", body: [UInt8](body), contentType: "multipart/form-data; boundary=\(boundary)")
        XCTAssertEqual(status, 200, "\(String(describing: json))")
        XCTAssertEqual((json?["data"] as? [Any])?.count, 2)
    }

    func testClassificationTopKIsClampedAndSorted() throws {
        let (status, json, _) = call("POST", "/v1/classifications", json: ["model": "classifier", "input": photo.base64EncodedString(), "top_k": 50])
        XCTAssertEqual(status, 200)
        let labels = try XCTUnwrap(((json?["data"] as? [[String: Any]])?.first?["labels"]) as? [[String: Any]])
        XCTAssertEqual(labels.count, 5, "clamped to the number of labels")
        let scores = labels.map { ($0["score"] as! NSNumber).doubleValue }
        XCTAssertEqual(scores, scores.sorted(by: >))
        XCTAssertEqual(scores.reduce(0, +), 1, accuracy: 1e-6)
        // The head's argmax agrees with the in-process model.
        let model = try Self.service.registry.model("classifier")
        let input = Tensor(shape: [1, 3, 32, 32], data: model.preprocessor.tensorCHW(try ImageDecoder.decode(photo)))
        let logits = try XCTUnwrap(model.encoder.classify(model.encoder.pool(model.encoder.forward(input).0)))
        XCTAssertEqual(labels[0]["label"] as? String, model.config.labels![CrossEntropy.argmax(logits)[0]])
    }

    func testModelWithoutHeadCannotClassify() {
        let (status, json, _) = call("POST", "/v1/classifications", json: ["model": "encoder", "input": png.base64EncodedString()])
        XCTAssertEqual(status, 400)
        XCTAssertEqual((json?["error"] as? [String: Any])?["code"] as? String, "model_cannot_classify")
        XCTAssertTrue(((json?["error"] as? [String: Any])?["message"] as? String ?? "").contains("classifier"))
    }

    func testReconstructionPNGAndJSON() throws {
        let (status, _, response) = call("POST", "/v1/reconstructions", json: ["model": "bootmae", "input": photo.base64EncodedString(), "seed": 3])
        XCTAssertEqual(status, 200)
        XCTAssertTrue(response.headers.contains { $0 == ("Content-Type", "image/png") })
        let strip = try ImageDecoder.decode(response.body)
        XCTAssertEqual(strip.height, 32 * 6)   // 32 px model, auto scale 6
        XCTAssertGreaterThan(strip.width, 4 * strip.height)
        let (s2, json, _) = call("POST", "/v1/reconstructions", json: ["model": "bootmae", "input": photo.base64EncodedString(), "mask": [0, 1, 2, 9, 63], "stats": "visible"],
                                 headers: ["accept": "application/json"])
        XCTAssertEqual(s2, 200)
        XCTAssertEqual(json?["mask"] as? [Int], [0, 1, 2, 9, 63])
        XCTAssertEqual(json?["stats"] as? String, "visible")
        XCTAssertEqual(json?["masking"] as? String, "explicit")
        XCTAssertTrue(json?["seed"] is NSNull)
        XCTAssertNotNil((json?["psnr"] as? NSNumber)?.doubleValue)
        XCTAssertEqual(((json?["images"] as? [String: Any])?.keys.sorted()), ["composite", "heatmap", "masked", "original", "reconstruction", "strip"])
    }

    /// Query options apply to a JSON body too (the body's own win); a request that names no model
    /// runs on the only model able to do what it asks when the default model cannot.
    func testQueryOptionsAndCapableDefaults() throws {
        let input = png.base64EncodedString()
        XCTAssertEqual(call("POST", "/v1/embeddings", json: ["input": input], query: ["model": "classifier"]).json?["model"] as? String, "classifier")
        XCTAssertEqual(call("POST", "/v1/embeddings", json: ["input": input, "model": "bootmae"], query: ["model": "classifier"]).json?["model"] as? String,
                       "bootmae")
        let classified = call("POST", "/v1/classifications", json: ["input": input])
        XCTAssertEqual(classified.status, 200, "\(classified.json ?? [:])")
        XCTAssertEqual(classified.json?["model"] as? String, "classifier")
        XCTAssertEqual(call("POST", "/v1/reconstructions", json: ["input": input]).status, 200)
        XCTAssertEqual(call("POST", "/v1/embeddings", json: ["input": input]).json?["model"] as? String, "encoder", "embeddings keep the default")
    }

    /// Data URIs as browsers write them: any case in the scheme, parameters after the media type.
    func testDataURIForms() {
        let b64 = png.base64EncodedString()
        for uri in ["DATA:IMAGE/PNG;BASE64,\(b64)", "data:image/png;name=a.png;base64,\(b64)", "data:;base64,\(b64)"] {
            XCTAssertEqual(call("POST", "/v1/embeddings", json: ["input": uri]).status, 200, String(uri.prefix(40)))
        }
    }

    /// Content negotiation by q-value; a tie goes to JSON only when the client names it.
    func testAcceptPreference() {
        XCTAssertFalse(Service.prefersJSON(nil))
        XCTAssertFalse(Service.prefersJSON("*/*"))
        XCTAssertFalse(Service.prefersJSON("image/png"))
        XCTAssertFalse(Service.prefersJSON("application/json;q=0.1, image/png"))
        XCTAssertTrue(Service.prefersJSON("application/json"))
        XCTAssertTrue(Service.prefersJSON("application/json, image/png"))
        XCTAssertTrue(Service.prefersJSON("application/*"))
        XCTAssertTrue(Service.prefersJSON("image/png;q=0.5, application/json;q=0.9"))
    }

    func testBearerSchemeIsCaseInsensitive() {
        XCTAssertEqual(Service.bearerToken("Bearer abc"), "abc")
        XCTAssertEqual(Service.bearerToken("bearer abc"), "abc")
        XCTAssertEqual(Service.bearerToken("BEARER  abc"), "abc")
        XCTAssertNil(Service.bearerToken("Basic abc"))
        XCTAssertNil(Service.bearerToken(nil))
    }

    func testMaskRatioOutsideZeroToOneIsRefused() {
        for ratio in [0.0, 1.0, -0.2, 1.5] {
            let r = call("POST", "/v1/reconstructions", json: ["model": "bootmae", "input": png.base64EncodedString(), "mask_ratio": ratio])
            XCTAssertEqual(r.status, 400, "\(ratio)")
            let message = ((r.json?["error"] as? [String: Any])?["message"] as? String) ?? ""
            XCTAssertTrue(message.contains("above 0 and below 1") && message.contains("64 patches"), message)
        }
    }

    /// The service hides as many patches as the trainer would at the same share (MAE's rule: ⌊N·(1 − r)⌋
    /// visible). At 0.6 of 64 patches rounding the masked share would hide 38; the trainer hides 39.
    func testMaskRatioHidesWhatTheTrainerHides() {
        for (ratio, expected) in [(0.6, 39), (0.75, 48), (0.001, 1), (0.999, 63)] {
            let r = call("POST", "/v1/reconstructions", json: ["model": "bootmae", "input": png.base64EncodedString(),
                                                               "mask_ratio": ratio, "masking": "random"],
                         headers: ["accept": "application/json"])
            XCTAssertEqual(r.status, 200, "\(ratio)")
            XCTAssertEqual((r.json?["mask"] as? [Any])?.count, expected, "\(ratio)")
            XCTAssertEqual(MaskingSpec.maskedCount(ratio: ratio, patches: 64), expected)
        }
    }

    /// A pretraining export whose config fails validation is refused, naming the field; it is not
    /// served as a plain encoder without its decoder.
    func testInvalidPretrainingConfigFailsLoudly() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bad-pretraining-\(UUID())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("broken")
        try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Fixtures.url("pretrain/bootmae_tiny/model.safetensors"), to: model.appendingPathComponent("model.safetensors"))
        var config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("pretrain/bootmae_tiny/config.json"))) as? [String: Any])
        config["feature_layers"] = [0, 7]
        try JSONSerialization.data(withJSONObject: config).write(to: model.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try ModelRegistry(directory: dir.path)) { error in
            XCTAssertTrue("\(error)".contains("feature_layers must name encoder blocks 0..<3"), "\(error)")
        }
    }

    func testReconstructionNeedsAPixelDecoder() {
        let (status, json, _) = call("POST", "/v1/reconstructions", json: ["model": "classifier", "input": png.base64EncodedString()])
        XCTAssertEqual(status, 400)
        XCTAssertEqual((json?["error"] as? [String: Any])?["code"] as? String, "model_cannot_reconstruct")
    }

    /// Each bad input gets its documented status and the envelope; the service keeps serving.
    func testBadInputMatrix() throws {
        let truncated = try Data(contentsOf: Fixtures.url("images/truncated.jpg")).base64EncodedString()
        let huge = try Data(contentsOf: Fixtures.url("images/huge_header.png")).base64EncodedString()
        let cases: [(String, [String: Any]?, [UInt8], String?, Int, String?)] = [
            ("truncated jpeg", ["input": truncated], [], nil, 400, "input"),
            ("huge image", ["input": huge], [], nil, 413, "input"),
            ("bad base64", ["input": "!!!not base64!!!"], [], nil, 400, "input"),
            ("no input", ["model": "encoder"], [], nil, 400, "input"),
            ("unknown model", ["model": "nope", "input": truncated], [], nil, 404, "model"),
            ("bad pooling", ["input": png.base64EncodedString(), "pooling": "max"], [], nil, 400, "pooling"),
            ("not json", nil, Array("{oops".utf8), "application/json", 400, nil),
            ("wrong type", nil, Array("hello".utf8), "text/plain", 415, nil),
            ("too many", ["input": Array(repeating: png.base64EncodedString(), count: 9)], [], nil, 413, "input"),
            ("gif data uri", ["input": "data:image/gif;base64,R0lGODlh"], [], nil, 415, "input"),
            ("url", ["input": "https://example.com/a.png"], [], nil, 400, "input"),
            ("dimensions", ["input": png.base64EncodedString(), "dimensions": 64], [], nil, 400, "dimensions"),
        ]
        for (name, json, body, type, expected, param) in cases {
            let r = call("POST", "/v1/embeddings", json: json, body: body, contentType: type)
            XCTAssertEqual(r.status, expected, name)
            let error = r.json?["error"] as? [String: Any]
            XCTAssertNotNil(error?["message"] as? String, name)
            XCTAssertNotNil(error?["type"] as? String, name)
            XCTAssertNotNil(error?["code"] as? String, name)
            if let param { XCTAssertEqual(error?["param"] as? String, param, name) }
            // The same code per status as the HTTP module's own errors.
            if expected == 413 { XCTAssertEqual(error?["code"] as? String, "content_too_large", name) }
        }
        XCTAssertEqual(call("POST", "/v1/embeddings", json: ["input": png.base64EncodedString()]).status, 200, "still serving")
    }

    /// `application/octet-stream` is a raw image body like `image/png` (openapi.yaml lists it): the same embedding.
    func testOctetStreamBodyIsARawImage() throws {
        let typed = call("POST", "/v1/embeddings", body: [UInt8](png), contentType: "image/png")
        let untyped = call("POST", "/v1/embeddings", body: [UInt8](png), contentType: "application/octet-stream")
        XCTAssertEqual(typed.status, 200)
        XCTAssertEqual(untyped.status, 200)
        XCTAssertEqual(untyped.response.body, typed.response.body)
        let refused = call("POST", "/v1/embeddings", body: [UInt8](png), contentType: "text/plain")
        XCTAssertEqual(refused.status, 415)
        XCTAssertTrue((refused.json?["error"] as? [String: Any])?["message"].map { "\($0)".contains("application/octet-stream") } ?? false)
    }

    /// More images than the queue holds: 429 with Retry-After at once, nothing queued; draining: /readyz 503.
    func testFullQueueAnswers429AndDrainingIsNotReady() throws {
        var options = Service.Options()
        options.maxImagesPerRequest = 8
        let service = Service(registry: ServiceTests.service.registry, limits: .init(maxBatch: 1, maxDelay: 0, maxQueue: 1), options: options)
        service.markReady()
        let input = png.base64EncodedString()
        let full = call("POST", "/v1/embeddings", json: ["input": [input, input]], service: service)
        XCTAssertEqual(full.status, 429)
        XCTAssertEqual((full.json?["error"] as? [String: Any])?["code"] as? String, "queue_full")
        XCTAssertEqual(full.response.headers.first { $0.0.lowercased() == "retry-after" }?.1, "1")
        XCTAssertEqual(call("POST", "/v1/embeddings", json: ["input": input], service: service).status, 200, "nothing was queued")
        XCTAssertEqual(call("GET", "/readyz", service: service).status, 200)
        service.markDraining()
        let draining = call("GET", "/readyz", service: service)
        XCTAssertEqual(draining.status, 503)
        XCTAssertEqual(draining.json?["status"] as? String, "draining")
        XCTAssertEqual(call("GET", "/healthz", service: service).status, 200, "alive while draining")
    }

    /// An unexpected error is a 500 whose body does not reveal it; the log gets the details.
    func testUnexpectedErrorsAreLoggedNotSent() throws {
        struct Secret: Error, CustomStringConvertible { var description: String { "secret /etc/path detail" } }
        final class Lines: @unchecked Sendable { var all: [String] = [] }
        let logged = Lines()
        var options = Service.Options()
        options.log = { logged.all.append($0) }
        let service = Service(registry: ServiceTests.service.registry, limits: .init(maxBatch: 1, maxDelay: 0, maxQueue: 1), options: options)
        nonisolated(unsafe) var response: ServiceResponse?
        service.guarded(ServiceRequest(method: "GET", path: "/v1/models", requestID: "req-7"), { response = $0 }) { throw Secret() }
        let r = try XCTUnwrap(response)
        XCTAssertEqual(r.status, 500)
        let error = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])?["error"] as? [String: Any])
        XCTAssertEqual(error["code"] as? String, "internal_error")
        XCTAssertFalse((error["message"] as? String ?? "").contains("secret"), "the error's text stays in the log")
        XCTAssertTrue((error["message"] as? String ?? "").contains("req-7"), "the request id ties the answer to the log line")
        XCTAssertEqual(logged.all.count, 1)
        XCTAssertTrue(logged.all[0].contains("secret /etc/path detail") && logged.all[0].contains("req-7"))
    }

    func testModelsListingAndCard() throws {
        let (status, json, _) = call("GET", "/v1/models")
        XCTAssertEqual(status, 200)
        let ids = (json?["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String }
        XCTAssertEqual(ids, ["bootmae", "classifier", "encoder"])
        let (s2, card, _) = call("GET", "/v1/models/bootmae")
        XCTAssertEqual(s2, 200)
        XCTAssertEqual(card?["capabilities"] as? [String], ["embed", "reconstruct"])
        XCTAssertEqual(call("GET", "/v1/models/classifier").json?["labels"] as? [String], ["a", "b", "c", "d", "e"])
        XCTAssertEqual(call("GET", "/v1/models/missing").status, 404)
    }

    func testHealthReadinessAndMetrics() {
        XCTAssertEqual(call("GET", "/healthz").status, 200)
        XCTAssertEqual(call("GET", "/readyz").status, 200)
        _ = call("POST", "/v1/embeddings", json: ["input": png.base64EncodedString()])
        let text = String(decoding: call("GET", "/metrics").response.body, as: UTF8.self)
        var names = ["bootmae_batch_size_bucket", "bootmae_inference_seconds_count", "bootmae_images_total", "bootmae_resident_memory_bytes", "bootmae_queue_depth"]
        #if os(Linux)
        names.append("bootmae_heap_in_use_bytes")  // glibc's mallinfo2
        #endif
        for name in names {
            XCTAssertTrue(text.contains(name), name)
        }
    }

    /// Concurrent requests coalesce into batches: more images than forward passes.
    func testConcurrentRequestsAreBatched() throws {
        let input = png.base64EncodedString()
        nonisolated(unsafe) let test = self
        DispatchQueue.concurrentPerform(iterations: 12) { _ in
            XCTAssertEqual(test.call("POST", "/v1/embeddings", json: ["input": input], service: Self.patientService).status, 200)
        }
        let text = String(decoding: call("GET", "/metrics", service: Self.patientService).response.body, as: UTF8.self)
        let batches = text.split(separator: "\n").first { $0.hasPrefix("bootmae_batch_size_count{model=\"encoder\"}") }
        let images = text.split(separator: "\n").first { $0.hasPrefix("bootmae_images_total{model=\"encoder\"}") }
        let b = Double(batches!.split(separator: " ").last!)!, i = Double(images!.split(separator: " ").last!)!
        XCTAssertLessThan(b, i, "\(Int(i)) images in \(Int(b)) batches")
    }
}
