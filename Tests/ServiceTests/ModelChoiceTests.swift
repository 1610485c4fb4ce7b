import XCTest
import Foundation
@testable import Service
import Checkpoint
import Tensor
import TestSupport

/// Which model a request that names none runs on, and what it is told when the default cannot.
final class ModelChoiceTests: XCTestCase {
    /// A service on a folder of `models` (name → fixture) with `defaultModel`.
    func service(_ models: [(String, String)], defaultModel: String) throws -> (Service, URL) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("model-choice-\(UUID())")
        for (name, fixture) in models {
            let dest = dir.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: dest, withIntermediateDirectories: true)
            for file in ["config.json", "model.safetensors"] {
                try FileManager.default.copyItem(at: Fixtures.url("\(fixture)/\(file)"), to: dest.appendingPathComponent(file))
            }
        }
        let service = Service(registry: try ModelRegistry(directory: dir.path, defaultModel: defaultModel),
                              limits: .init(maxBatch: 4, maxDelay: 0.002, maxQueue: 16), options: Service.Options())
        service.markReady()
        return (service, dir)
    }

    func post(_ service: Service, _ path: String, _ json: [String: Any]) throws -> (status: Int, message: String?) {
        try post(service, path, body: [UInt8](try JSONSerialization.data(withJSONObject: json)), contentType: "application/json")
    }

    func post(_ service: Service, _ path: String, body: [UInt8], contentType: String, query: [String: String] = [:]) throws -> (status: Int, message: String?) {
        let response = try service.respond(to: ServiceRequest(method: "POST", path: path, query: query, headers: ["content-type": contentType], body: body))
        let body = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
        return (response.status, (body?["error"] as? [String: Any])?["message"] as? String)
    }

    /// Two classifiers and a default that cannot classify: a classification without 'model' is told
    /// that several classifiers are loaded and which, not that "model 'encoder'" lacks a head.
    func testSeveralCapableModelsAndNoneNamedListsThem() throws {
        let (service, dir) = try service([("encoder", "encoders/timm_qkv_cls"), ("cls-a", "encoders/timm_qkv_avg_head"),
                                          ("cls-b", "encoders/timm_qkv_avg_head")], defaultModel: "encoder")
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = try Data(contentsOf: Fixtures.url("images/rgb.png")).base64EncodedString()
        let unnamed = try post(service, "/v1/classifications", ["input": image])
        XCTAssertEqual(unnamed.status, 400)
        XCTAssertEqual(unnamed.message, "no model was named and the default model 'encoder' has no classification head; "
                       + "2 loaded models can classify (cls-a, cls-b): name one with 'model'")
        XCTAssertEqual(try post(service, "/v1/classifications", ["input": image, "model": "cls-b"]).status, 200)
        let named = try post(service, "/v1/classifications", ["input": image, "model": "encoder"])
        XCTAssertEqual(named.message, "model 'encoder' has no classification head; classifiers: cls-a, cls-b", "a named model is named")
        let reconstruct = try post(service, "/v1/reconstructions", ["input": image])
        XCTAssertEqual(reconstruct.status, 400)
        XCTAssertEqual(reconstruct.message, "no loaded model can reconstruct: the default model 'encoder' has no pixel decoder; "
                       + ModelNeed.reconstruct.remedy)
    }

    /// A colour photo sent to the default grayscale model is embedded by it (a request that names no
    /// model keeps the default, so its vectors compare with the others'), and its warning names the
    /// loaded model that takes colour; with no such model loaded, the warning says only what was done.
    func testAColourImageForAGrayscaleModelIsToldWhichModelTakesColour() throws {
        let photo = try Data(contentsOf: Fixtures.url("images/photo_512x384.jpg")).base64EncodedString()
        func warning(_ service: Service) throws -> (model: String?, message: String?) {
            let response = try service.respond(to: ServiceRequest(method: "POST", path: "/v1/embeddings", query: [:], headers: ["content-type": "application/json"],
                                                                  body: [UInt8](try JSONSerialization.data(withJSONObject: ["input": photo]))))
            XCTAssertEqual(response.status, 200)
            let body = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
            let warnings = (body["data"] as? [[String: Any]])?.first?["warnings"] as? [[String: Any]] ?? []
            return (body["model"] as? String, warnings.first { $0["code"] as? String == "converted_to_grayscale" }?["message"] as? String)
        }
        let (both, dir) = try service([("gray", "encoders/mae_gray_sincos"), ("colour", "encoders/timm_qkv_cls")], defaultModel: "gray")
        defer { try? FileManager.default.removeItem(at: dir) }
        let answer = try warning(both)
        XCTAssertEqual(answer.model, "gray")
        XCTAssertEqual(answer.message, "the model takes grayscale images; this colour image was converted to gray; "
                       + "the loaded model 'colour' takes colour images: name it with 'model'")
        let (alone, other) = try service([("gray", "encoders/mae_gray_sincos")], defaultModel: "gray")
        defer { try? FileManager.default.removeItem(at: other) }
        XCTAssertEqual(try warning(alone).message, "the model takes grayscale images; this colour image was converted to gray")
    }

    /// When no loaded model can do what a request asks, the answer says how to serve one rather
    /// than ending at what the model lacks.
    func testNoCapableModelSaysHowToServeOne() throws {
        let (service, dir) = try service([("encoder", "encoders/timm_qkv_cls")], defaultModel: "encoder")
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = try Data(contentsOf: Fixtures.url("images/rgb.png")).base64EncodedString()
        let tokens = try post(service, "/v1/tokens", ["input": image, "model": "encoder"])
        XCTAssertEqual(tokens.status, 400)
        XCTAssertEqual(tokens.message, "model 'encoder' is not a tokenizer and has no code grid; no tokenizer is loaded: "
                       + "serve a `bootmae-train pretrain --objective peco-tokenizer` run: `bootmae-train export --run RUN --out DIR` "
                       + "into --models-dir (read at start-up; while serving with --watch-models, or POST /v1/models/{id}/load with --model-control)")
        let unnamed = try post(service, "/v1/tokens", ["input": image])
        XCTAssertEqual(unnamed.message, "no tokenizer is loaded: the default model 'encoder' is not a tokenizer and has no code grid; "
                       + ModelNeed.tokenize.remedy)
        let classify = try post(service, "/v1/classifications", ["input": image, "model": "encoder"])
        XCTAssertEqual(classify.message, "model 'encoder' has no classification head; no loaded model can classify: " + ModelNeed.classify.remedy)
        XCTAssertTrue(ModelNeed.classify.remedy.hasPrefix("serve a `bootmae-train finetune` run"))
        let reconstruct = try post(service, "/v1/reconstructions", ["input": image, "model": "encoder"])
        XCTAssertEqual(reconstruct.message, "model 'encoder' has no pixel decoder; no loaded model can reconstruct: " + ModelNeed.reconstruct.remedy)
    }

    /// Writes a grayscale copy of the 3-channel MAE fixture as model directory `name`: channel 0 of the
    /// patch embedding and of the pixel head, one mean and std. (Its weights mean nothing; it only
    /// has to be a 1-channel model that can reconstruct.)
    func installGrayMAE(as name: String, in dir: URL) throws {
        let source = try SafeTensorsFile(contentsOf: Fixtures.url("pretrain/mae_tiny/model.safetensors"))
        var tensors: [(String, Tensor)] = []
        for key in source.names {
            let t = try source.tensor(key)
            switch key {
            case "patch_embed.proj.weight":   // (D, 3, p, p) → (D, 1, p, p)
                let (d, pp) = (t.shape[0], t.shape[2] * t.shape[3])
                tensors.append((key, Tensor(shape: [d, 1, t.shape[2], t.shape[3]],
                                            data: (0..<d).flatMap { o in t.data[(o * 3 * pp)..<(o * 3 * pp + pp)] })))
            case "decoder_pred.weight", "decoder_pred.bias":   // rows (p, p, 3) → (p, p, 1)
                let width = t.rank == 2 ? t.shape[1] : 1
                let rows = Array(stride(from: 0, to: t.shape[0], by: 3))
                tensors.append((key, Tensor(shape: t.rank == 2 ? [rows.count, width] : [rows.count],
                                            data: rows.flatMap { r in t.data[(r * width)..<((r + 1) * width)] })))
            default: tensors.append((key, t))
            }
        }
        let dest = dir.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: dest, withIntermediateDirectories: true)
        try SafeTensorsWriter.write(tensors, to: dest.appendingPathComponent("model.safetensors"))
        var config = try XCTUnwrap(JSONSerialization.jsonObject(
            with: Data(contentsOf: Fixtures.url("pretrain/mae_tiny/config.json"))) as? [String: Any])
        config["in_chans"] = 1; config["mean"] = [0.5]; config["std"] = [0.5]
        try JSONSerialization.data(withJSONObject: config).write(to: dest.appendingPathComponent("config.json"))
    }

    /// With a grayscale default and a colour model that can reconstruct, an unnamed reconstruction of a
    /// colour photo runs on the colour model, a grayscale image stays with the default, and a named
    /// model is always the one that runs.
    func testUnnamedReconstructionOfAColourImageGoesToTheColourModel() throws {
        let (_, dir) = try service([("photo", "pretrain/mae_tiny")], defaultModel: "photo")
        defer { try? FileManager.default.removeItem(at: dir) }
        try installGrayMAE(as: "garments", in: dir)
        let registry = try ModelRegistry(directory: dir.path, defaultModel: "garments")
        let grayDefault = Service(registry: registry, limits: .init(maxBatch: 4, maxDelay: 0.002, maxQueue: 16), options: Service.Options())
        grayDefault.markReady()
        func model(_ image: String, named: String? = nil) throws -> String? {
            var json: [String: Any] = ["input": try Data(contentsOf: Fixtures.url("images/\(image)")).base64EncodedString(), "seed": 1]
            if let named { json["model"] = named }
            let request = ServiceRequest(method: "POST", path: "/v1/reconstructions", query: [:],
                                         headers: ["content-type": "application/json", "accept": "application/json"],
                                         body: [UInt8](try JSONSerialization.data(withJSONObject: json)))
            let response = try grayDefault.respond(to: request)
            XCTAssertEqual(response.status, 200, String(decoding: response.body, as: UTF8.self))
            return (try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])?["model"] as? String
        }
        XCTAssertEqual(try model("photo_512x384.jpg"), "photo", "a colour photo goes to the colour model")
        XCTAssertEqual(try model("gray.png"), "garments", "a grayscale image stays with the grayscale default")
        XCTAssertEqual(try model("photo_512x384.jpg", named: "garments"), "garments", "a named model runs")
        XCTAssertEqual(try model("gray.png", named: "photo"), "photo", "a named model runs")
    }

    /// A default that cannot reconstruct, and several models that can: an unnamed reconstruction goes
    /// to the first by name that takes the image's kind (openapi's rule, and the page's), whether or not
    /// the default takes that kind itself; with none of that kind it is the 400 naming them.
    func testUnnamedReconstructionSkipsADefaultThatCannot() throws {
        let (_, dir) = try service([("encoder", "encoders/timm_qkv_cls"), ("photo-b", "pretrain/mae_tiny"), ("photo-a", "pretrain/mae_tiny")],
                                   defaultModel: "encoder")
        defer { try? FileManager.default.removeItem(at: dir) }
        try installGrayMAE(as: "garments", in: dir)
        let service = Service(registry: try ModelRegistry(directory: dir.path, defaultModel: "encoder"),
                              limits: .init(maxBatch: 4, maxDelay: 0.002, maxQueue: 16), options: Service.Options())
        service.markReady()
        func answer(_ image: String) throws -> (status: Int, model: String?, message: String?) {
            let json: [String: Any] = ["input": try Data(contentsOf: Fixtures.url("images/\(image)")).base64EncodedString(), "seed": 1]
            let response = try service.respond(to: ServiceRequest(method: "POST", path: "/v1/reconstructions",
                                                                  headers: ["content-type": "application/json", "accept": "application/json"],
                                                                  body: [UInt8](try JSONSerialization.data(withJSONObject: json))))
            let body = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
            return (response.status, body?["model"] as? String, (body?["error"] as? [String: Any])?["message"] as? String)
        }
        let photo = try answer("photo_512x384.jpg")
        XCTAssertEqual(photo.status, 200, photo.message ?? "")
        XCTAssertEqual(photo.model, "photo-a", "the colour default cannot reconstruct: the first colour model by name does")
        XCTAssertEqual(try answer("gray.png").model, "garments")

        // Without a grayscale reconstructor a gray image has no model of its kind: the 400 names those that can.
        try FileManager.default.removeItem(at: dir.appendingPathComponent("garments"))
        let colourOnly = Service(registry: try ModelRegistry(directory: dir.path, defaultModel: "encoder"),
                                 limits: .init(maxBatch: 4, maxDelay: 0.002, maxQueue: 16), options: Service.Options())
        colourOnly.markReady()
        let gray = try colourOnly.respond(to: ServiceRequest(method: "POST", path: "/v1/reconstructions", headers: ["content-type": "image/png"],
                                                             body: [UInt8](try Data(contentsOf: Fixtures.url("images/gray.png")))))
        XCTAssertEqual(gray.status, 400)
        XCTAssertTrue(String(decoding: gray.body, as: UTF8.self).contains("2 loaded models can reconstruct (photo-a, photo-b)"),
                      String(decoding: gray.body, as: UTF8.self))
    }

    /// A misspelt option is a 400 naming it in every body type (raw image + query, multipart form
    /// fields), not a silent fallback to the default.
    func testUnknownOptionsOfRawAndMultipartBodiesAreRefused() throws {
        let (service, dir) = try service([("encoder", "encoders/timm_qkv_cls")], defaultModel: "encoder")
        defer { try? FileManager.default.removeItem(at: dir) }
        let png = [UInt8](try Data(contentsOf: Fixtures.url("images/rgb.png")))
        let raw = try post(service, "/v1/embeddings", body: png, contentType: "image/png", query: ["poolng": "mean"])
        XCTAssertEqual(raw.status, 400)
        XCTAssertTrue(raw.message?.hasPrefix("unknown option 'poolng'; did you mean 'pooling'?") ?? false, raw.message ?? "")
        XCTAssertEqual(try post(service, "/v1/embeddings", body: png, contentType: "image/png", query: ["pooling": "mean"]).status, 200)
        func form(_ field: String) -> [UInt8] {
            Array("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n".utf8) + png
                + Array("\r\n--B\r\nContent-Disposition: form-data; name=\"\(field)\"\r\n\r\nmean\r\n--B--\r\n".utf8)
        }
        let multipart = try post(service, "/v1/embeddings", body: form("pooling_mode"), contentType: "multipart/form-data; boundary=B")
        XCTAssertEqual(multipart.status, 400)
        XCTAssertTrue(multipart.message?.hasPrefix("unknown option 'pooling_mode'") ?? false, multipart.message ?? "")
        XCTAssertEqual(try post(service, "/v1/embeddings", body: form("pooling"), contentType: "multipart/form-data; boundary=B").status, 200)
        // Beside a raw or multipart body an `input` in the query would be ignored: refused.
        let refusal = "'input' is not a query parameter: send the images in the body (JSON 'input', a raw image body, or multipart file parts)"
        let image = Data(png).base64EncodedString()
        XCTAssertEqual(try post(service, "/v1/embeddings", body: png, contentType: "image/png", query: ["input": image]).message, refusal)
        XCTAssertEqual(try post(service, "/v1/embeddings", body: form("pooling"), contentType: "multipart/form-data; boundary=B",
                                query: ["input": image]).message, refusal)
        // An unsupported Content-Type stays a 415 whatever the query holds.
        XCTAssertEqual(try post(service, "/v1/embeddings", body: png, contentType: "text/plain", query: ["input": image]).status, 415)
    }

    /// An option given twice (two query parameters or two form fields of one name) is a 400 naming
    /// it, whichever copy would have been valid: no copy silently wins. (Schemathesis sent
    /// `?top_k=1.8e308&top_k=2.1e16&top_k=-1.2e18` and got 200.)
    func testRepeatedOptionsAreRefused() throws {
        let (service, dir) = try service([("classifier", "encoders/timm_qkv_avg_head")], defaultModel: "classifier")
        defer { try? FileManager.default.removeItem(at: dir) }
        let png = [UInt8](try Data(contentsOf: Fixtures.url("images/rgb.png")))
        func answer(query: [String: String], repeated: [String], body: [UInt8], contentType: String) throws -> (Int, [String: Any]?) {
            let response = try service.respond(to: ServiceRequest(method: "POST", path: "/v1/classifications", query: query, repeatedQuery: repeated,
                                                                  headers: ["content-type": contentType], body: body))
            let json = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
            return (response.status, json?["error"] as? [String: Any])
        }
        let (status, error) = try answer(query: ["top_k": "2"], repeated: ["top_k"], body: png, contentType: "image/png")
        XCTAssertEqual(status, 400)
        XCTAssertEqual(error?["message"] as? String, "'top_k' is given more than once in the query: give each option once")
        XCTAssertEqual(error?["param"] as? String, "top_k")
        XCTAssertEqual(error?["code"] as? String, "invalid_request")
        XCTAssertEqual(try answer(query: ["top_k": "2"], repeated: [], body: png, contentType: "image/png").0, 200, "once is fine")
        // A misspelt option is named as unknown before its repetition.
        XCTAssertEqual(try answer(query: ["topk": "2"], repeated: ["topk"], body: png, contentType: "image/png").1?["code"] as? String,
                       "unknown_parameter")
        func form(_ fields: [(String, String)]) -> [UInt8] {
            Array("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n".utf8) + png
                + fields.flatMap { Array("\r\n--B\r\nContent-Disposition: form-data; name=\"\($0.0)\"\r\n\r\n\($0.1)".utf8) }
                + Array("\r\n--B--\r\n".utf8)
        }
        let (formStatus, formError) = try answer(query: [:], repeated: [], body: form([("top_k", "2"), ("top_k", "3")]),
                                                 contentType: "multipart/form-data; boundary=B")
        XCTAssertEqual(formStatus, 400)
        XCTAssertEqual(formError?["message"] as? String, "'top_k' is given more than once in the form: give each option once")
        XCTAssertEqual(try answer(query: [:], repeated: [], body: form([("top_k", "2")]), contentType: "multipart/form-data; boundary=B").0, 200)
    }

    /// `mask` as a query parameter beside a raw image body: comma-separated patch indices.
    func testQueryMaskIsAListOfPatchIndices() throws {
        let (service, dir) = try service([("mae", "pretrain/mae_tiny")], defaultModel: "mae")
        defer { try? FileManager.default.removeItem(at: dir) }
        let png = [UInt8](try Data(contentsOf: Fixtures.url("images/rgb.png")))
        let request = ServiceRequest(method: "POST", path: "/v1/reconstructions", query: ["mask": "0, 3,5"],
                                     headers: ["content-type": "image/png", "accept": "application/json"], body: png)
        let response = try service.respond(to: request)
        XCTAssertEqual(response.status, 200, String(decoding: response.body, as: UTF8.self))
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
        XCTAssertEqual(json["mask"] as? [Int], [0, 3, 5])
        XCTAssertEqual(json["masking"] as? String, "explicit")
        // Signed or fractional items are still a list: the index check says what is wrong, not the image decoder.
        for bad in ["-1", "1.5", "0,+1,-2"] {
            let (status, message) = try post(service, "/v1/reconstructions", body: png, contentType: "image/png", query: ["mask": bad])
            XCTAssertEqual(status, 400, bad)
            XCTAssertFalse((message ?? "").contains("base64") || (message ?? "").lowercased().contains("image"), "\(bad): \(message ?? "")")
        }
    }
}
