import XCTest
import Foundation
import Tensor
import ViT
import ImageKit
import Checkpoint
@testable import Service
import Objectives
import TestSupport

/// PeCo served: a tokenizer export answers `/v1/tokens` (code grids, and decoded images), and a
/// stage-2 model reconstructs through the tokenizer its config names when that tokenizer is
/// loaded too. Fixture models are written here (random weights, 8-pixel gray images at patch 2:
/// a 4 × 4 code grid of 8 codes); every served answer is checked against the same networks
/// loaded afresh from their directories and run on the training path (plain weights, the
/// training forward, a brute-force nearest code), not the server's packed inference path.
final class PeCoServiceTests: XCTestCase {
    static let shape = BackboneShape(imgSize: 8, patchSize: 2, channels: 1, embedDim: 16, depth: 1, numHeads: 2, decoderDim: 16,
                                     decoderDepth: 1, deepDecoderDepth: 1)

    static let modelsDir: URL = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("peco-service-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        // The tokenizer, served as "tok".
        let (tokEncoder, _) = try! PeCoTokenizer.configure(shape, maskRatio: 0, flags: ObjectiveFlagValues())
        let tokSettings = PeCoTokenizer.Settings(codebookSize: 8, codeDim: 4, decoderEmbedDim: 16, decoderDepth: 1, decoderNumHeads: 2,
                                                 lambdaPerceptual: 0)
        let tok = PretrainingNetwork(config: PretrainingConfig(PeCoTokenizer.self, encoder: tokEncoder, settings: tokSettings))
        tok.initialize(seed: 3)
        var rng = SeededRandom(seed: 4)
        (tok.objective as! PeCoTokenizer).quantizer.codebook.fill { rng.normal() }   // initialize leaves it at zero
        try! PretrainingDirectory.save(tok, to: dir.appendingPathComponent("tok"))
        // Stage-2 models: one whose tokenizer is served (exported: named by directory, with the
        // hash of its weights file), one from before the hash was recorded (trained elsewhere against
        // a folder named "tok"), one whose tokenizer is not served, one whose head does not fit the
        // served "tok", and one trained on another export of "tok" (another hash).
        func stage2(_ name: String, tokenizer: String, sha256: String? = nil, vocab: Int, seed: UInt64) {
            var (encoder, _) = try! PeCo.configure(shape, maskRatio: 0.4, flags: ObjectiveFlagValues())
            (encoder.mean, encoder.std) = (tokEncoder.mean, tokEncoder.std)
            let settings = PeCo.Settings(vocabSize: vocab, numMaskPatches: 6, tokenizer: tokenizer, tokenizerSHA256: sha256)
            let net = PretrainingNetwork(config: PretrainingConfig(PeCo.self, encoder: encoder, settings: settings))
            net.initialize(seed: seed)
            try! PretrainingDirectory.save(net, to: dir.appendingPathComponent(name))
        }
        stage2("peco", tokenizer: "tok", sha256: tokSHA256(dir), vocab: 8, seed: 5)
        stage2("peco-legacy", tokenizer: "/training/machine/exports/tok", vocab: 8, seed: 5)
        stage2("peco-orphan", tokenizer: "/training/machine/exports/missing-tok", vocab: 8, seed: 6)
        stage2("peco-mismatch", tokenizer: "/elsewhere/tok", vocab: 16, seed: 7)
        stage2("peco-stale", tokenizer: "tok", sha256: String(String(repeating: "0123456789ab", count: 6).prefix(64)), vocab: 8, seed: 8)
        return dir
    }()

    /// The served tokenizer's `weights_sha256`.
    static func tokSHA256(_ dir: URL) -> String {
        SHA256.hex(try! SHA256.digest(ofFile: dir.appendingPathComponent("tok").appendingPathComponent(ModelDirectory.weightsName).path))
    }

    static let service: Service = {
        let registry = try! ModelRegistry(directory: modelsDir.path, defaultModel: "peco")
        registry.warmUp()
        let s = Service(registry: registry, limits: .init(maxBatch: 4, maxDelay: 0.002, maxQueue: 16), options: Service.Options())
        s.markReady()
        return s
    }()

    let photo = try! Data(contentsOf: Fixtures.url("images/photo_512x384.jpg"))
    let png = try! Data(contentsOf: Fixtures.url("images/rgb.png"))

    func call(_ method: String, _ path: String, json: [String: Any]? = nil, body raw: [UInt8] = [], query: [String: String] = [:],
              headers: [String: String] = [:], service: Service = PeCoServiceTests.service) throws -> (status: Int, json: [String: Any]?, response: ServiceResponse) {
        var h = headers
        var body = raw
        if let json {
            h["content-type"] = "application/json"
            body = [UInt8](try JSONSerialization.data(withJSONObject: json))
        }
        let r = try service.respond(to: ServiceRequest(method: method, path: path, query: query, headers: h, body: body))
        return (r.status, try? JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any], r)
    }

    func header(_ r: ServiceResponse, _ name: String) -> String? { r.headers.first { $0.0.lowercased() == name.lowercased() }?.1 }

    /// The tokenizer as trained: loaded afresh (plain weights), not the served copy.
    static let reference = try! PeCoTokenizer.loadFrozen(modelsDir.appendingPathComponent("tok"))

    /// The model input of an image file, as the server prepares it (decode, resize, gray, normalize).
    func input(_ data: Data) throws -> Tensor {
        let model = try Self.service.registry.model("tok")
        return Tensor(shape: [1, 1, 8, 8], data: model.preprocessor.tensorCHW(try ImageDecoder.decode([UInt8](data))))
    }

    /// Brute force on the training forward: every patch's squared distance to every code, in Float64.
    func distances(_ images: Tensor) -> [[Double]] {
        let t = Self.reference
        let (tokens, _) = t.encoder.forward(images)
        let z = t.quantProj.forward(DecoderInput.dropClass(tokens))
        let (k, d) = (t.quantizer.codes, t.settings.codeDim)
        let book = t.quantizer.codebook.value.data
        return (0..<(z.count / d)).map { r in
            (0..<k).map { j in (0..<d).reduce(0.0) { s, c in let e = Double(z.data[r * d + c] - book[j * d + c]); return s + e * e } }
        }
    }

    func testTokensAreTheNearestCodesOfEveryPatch() throws {
        let (status, json, response) = try call("POST", "/v1/tokens", json: ["model": "tok", "input": [photo.base64EncodedString(), png.base64EncodedString()]])
        XCTAssertEqual(status, 200, String(decoding: response.body, as: UTF8.self))
        let body = try XCTUnwrap(json)
        XCTAssertEqual(body["grid"] as? Int, 4)
        XCTAssertEqual(body["codebook_size"] as? Int, 8)
        XCTAssertEqual(header(response, "X-Model-Version"), body["model_version"] as? String)
        let data = try XCTUnwrap(body["data"] as? [[String: Any]])
        XCTAssertEqual(data.count, 2)
        var used = Set<Int>()
        for (i, image) in [photo, png].enumerated() {
            let codes = try XCTUnwrap(data[i]["codes"] as? [Int])
            XCTAssertEqual(codes.count, 16)
            // The served code is the nearest (a tie within float rounding of the packed GEMM may go either way).
            for (patch, row) in distances(try input(image)).enumerated() {
                XCTAssertLessThanOrEqual(row[codes[patch]], row.min()! + 1e-4 * max(1, row.min()!), "image \(i) patch \(patch)")
            }
            used.formUnion(codes)
            // Colour images into a gray tokenizer: the conversion warning, as every endpoint gives.
            let warnings = try XCTUnwrap(data[i]["warnings"] as? [[String: Any]]).compactMap { $0["code"] as? String }
            XCTAssertTrue(warnings.contains("converted_to_grayscale"), "\(warnings)")
            XCTAssertNil(data[i]["decoded"])
        }
        XCTAssertGreaterThan(used.count, 1, "random codes should not all be one")
        // The other input forms give the same codes: a raw image body (options in the query), a
        // multipart file part (options in form fields), a data URI.
        func codes(_ answer: (status: Int, json: [String: Any]?, response: ServiceResponse)) -> [Int]? {
            XCTAssertEqual(answer.status, 200, String(decoding: answer.response.body, as: UTF8.self))
            return (answer.json?["data"] as? [[String: Any]])?.first?["codes"] as? [Int]
        }
        let expected = try XCTUnwrap(data[1]["codes"] as? [Int])
        XCTAssertEqual(codes(try call("POST", "/v1/tokens", body: [UInt8](png), query: ["model": "tok"], headers: ["content-type": "image/png"])), expected)
        var form = Data("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n".utf8)
        form += png + Data("\r\n--B\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ntok\r\n--B--\r\n".utf8)
        XCTAssertEqual(codes(try call("POST", "/v1/tokens", body: [UInt8](form), headers: ["content-type": "multipart/form-data; boundary=B"])), expected)
        XCTAssertEqual(codes(try call("POST", "/v1/tokens", json: ["model": "tok", "input": "data:image/png;base64," + png.base64EncodedString()])), expected)
    }

    /// `decode`: a PNG of the tokenizer's decoding of the served codes (the reference decoder on the
    /// same codes, to one 8-bit level), its PSNR in a header; JSON with base64 when asked.
    func testDecodeAnswersThePNGOfTheCodesDecoding() throws {
        let codes = try XCTUnwrap((try call("POST", "/v1/tokens", json: ["model": "tok", "input": png.base64EncodedString()]).json?["data"]
            as? [[String: Any]])?.first?["codes"] as? [Int])
        let expected = Self.reference.decode([codes])   // (1, 1, 8, 8), normalized input units
        let (mean, std) = (Self.reference.encoder.config.mean[0], Self.reference.encoder.config.std[0])
        let (status, _, response) = try call("POST", "/v1/tokens", json: ["model": "tok", "input": png.base64EncodedString(), "decode": true, "scale": 3])
        XCTAssertEqual(status, 200)
        XCTAssertEqual(header(response, "Content-Type"), "image/png")
        let image = try ImageDecoder.decode(response.body)
        XCTAssertEqual([image.width, image.height, image.channels], [24, 24, 1])
        for y in 0..<8 { for x in 0..<8 {
            let want = min(max(expected.data[y * 8 + x] * std + mean, 0), 1) * 255
            XCTAssertLessThanOrEqual(abs(Float(image.pixels[(y * 3) * 24 + x * 3]) - want), 1, "pixel \(x), \(y)")
        } }
        var se = 0.0
        let truth = try input(png)
        for i in 0..<64 { let d = Double((expected.data[i] - truth.data[i]) * std); se += d * d }
        let psnr = 10 * log10(64 / se)
        XCTAssertEqual(try XCTUnwrap(Double(try XCTUnwrap(header(response, "X-PSNR")))), psnr, accuracy: 0.01)
        XCTAssertEqual(header(response, "X-Grid"), "4")

        let (s2, json, _) = try call("POST", "/v1/tokens", json: ["model": "tok", "input": [png.base64EncodedString(), photo.base64EncodedString()], "decode": true],
                                     headers: ["accept": "application/json"])
        XCTAssertEqual(s2, 200)
        let items = try XCTUnwrap(json?["data"] as? [[String: Any]])
        XCTAssertEqual(items[0]["codes"] as? [Int], codes)
        XCTAssertEqual(try XCTUnwrap(items[0]["psnr"] as? Double), psnr, accuracy: 1e-3)
        let decoded = try ImageDecoder.decode([UInt8](try XCTUnwrap(Data(base64Encoded: try XCTUnwrap(items[1]["decoded"] as? String)))))
        XCTAssertEqual([decoded.width, decoded.height], [8, 8])

        // One PNG answers one image.
        let (s3, j3, _) = try call("POST", "/v1/tokens", json: ["model": "tok", "input": [png.base64EncodedString(), png.base64EncodedString()], "decode": true])
        XCTAssertEqual(s3, 400)
        XCTAssertEqual((j3?["error"] as? [String: Any])?["param"] as? String, "input")
    }

    /// Beside a calibrated pixel decoder with the tokenizer's encoder shape and preprocessing, a
    /// decoded PNG carries the out-of-distribution percentile (X-OOD-Percentile), as a reconstruction's
    /// PNG does: the same number as the JSON answer's `ood`.
    func testDecodedPNGCarriesTheOODPercentile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("peco-ood-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Self.modelsDir.appendingPathComponent("tok"), to: dir.appendingPathComponent("tok"))
        let tok = try Self.service.registry.model("tok").config
        var (encoder, settings) = try MAE.configure(Self.shape, maskRatio: 0.75, flags: ObjectiveFlagValues())
        (encoder.mean, encoder.std, encoder.depth) = (tok.mean, tok.std, tok.depth)   // the tokenizer's encoder has its own depth
        let mae = PretrainingNetwork(config: PretrainingConfig(MAE.self, encoder: encoder, settings: settings))
        mae.initialize(seed: 9)
        let maeDir = dir.appendingPathComponent("mae")
        try PretrainingDirectory.save(mae, to: maeDir)
        let measure = try XCTUnwrap(mae.defaultErrorProtocol(seeds: 2))
        let inputs = try [png, photo].map { try input($0).data }
        let errors = mae.maskedPatchErrors(Tensor(shape: [2, 1, 8, 8], data: inputs.flatMap { $0 }), protocol: measure)
        try JSONEncoder().encode(ReconstructionErrorCalibration(measure: measure, dataset: "fixtures", errors: errors))
            .write(to: maeDir.appendingPathComponent(ReconstructionErrorCalibration.fileName))
        let service = Service(registry: try ModelRegistry(directory: dir.path, defaultModel: "tok"),
                              limits: .init(maxBatch: 4, maxDelay: 0.002, maxQueue: 16), options: Service.Options())
        service.markReady()
        let cards = try XCTUnwrap(try call("GET", "/v1/models", service: service).json?["data"] as? [[String: Any]])
        let card = try XCTUnwrap(cards.first { $0["id"] as? String == "tok" })
        XCTAssertEqual((card["ood_score"] as? [String: Any])?["reference_model"] as? String, "mae", "the MAE scores the tokenizer's inputs")

        let (s1, json, _) = try call("POST", "/v1/tokens", json: ["model": "tok", "input": photo.base64EncodedString()], service: service)
        XCTAssertEqual(s1, 200)
        let ood = try XCTUnwrap((json?["data"] as? [[String: Any]])?.first?["ood"] as? [String: Any])
        let percentile = try XCTUnwrap(ood["percentile"] as? Double)
        let (s2, _, response) = try call("POST", "/v1/tokens", json: ["model": "tok", "input": photo.base64EncodedString(), "decode": true],
                                         service: service)
        XCTAssertEqual(s2, 200)
        XCTAssertEqual(header(response, "Content-Type"), "image/png")
        XCTAssertEqual(header(response, "X-OOD-Percentile"), String(format: "%.1f", percentile))
        // Without calibration (the shared fixture service), no header.
        let (_, _, plain) = try call("POST", "/v1/tokens", json: ["model": "tok", "input": photo.base64EncodedString(), "decode": true])
        XCTAssertNil(header(plain, "X-OOD-Percentile"))
    }

    func testModelsThatCannotTokenizeSayWhichCan() throws {
        let (status, json, _) = try call("POST", "/v1/tokens", json: ["model": "peco", "input": png.base64EncodedString()])
        XCTAssertEqual(status, 400)
        let error = try XCTUnwrap(json?["error"] as? [String: Any])
        XCTAssertEqual(error["code"] as? String, "model_cannot_tokenize")
        XCTAssertTrue((error["message"] as? String ?? "").contains("models that can: tok"), "\(error)")
        // Named nothing: the default (peco) cannot, the only tokenizer does.
        let (s2, j2, _) = try call("POST", "/v1/tokens", json: ["input": png.base64EncodedString()])
        XCTAssertEqual(s2, 200)
        XCTAssertEqual(j2?["model"] as? String, "tok")
        // A misspelt option is refused as on every endpoint.
        XCTAssertEqual(try call("POST", "/v1/tokens", json: ["model": "tok", "input": png.base64EncodedString(), "decoded": true]).status, 400)
    }

    func testModelCardsShowTokenizingAndPairedReconstruction() throws {
        let cards = try XCTUnwrap(try call("GET", "/v1/models").json?["data"] as? [[String: Any]])
        func card(_ id: String) throws -> [String: Any] { try XCTUnwrap(cards.first { $0["id"] as? String == id }) }
        XCTAssertEqual(try card("tok")["capabilities"] as? [String], ["embed", "tokenize"])
        let facts = try XCTUnwrap(try card("tok")["tokenizer"] as? [String: Any])
        XCTAssertEqual(facts["codebook_size"] as? Int, 8)
        XCTAssertEqual(facts["grid"] as? Int, 4)
        XCTAssertEqual(try card("peco")["capabilities"] as? [String], ["embed", "reconstruct"])
        XCTAssertEqual((try card("peco")["reconstruction"] as? [String: Any])?["default_masking"] as? String, "block")
        XCTAssertNil(try card("peco")["tokenizer"])
        XCTAssertEqual(try card("peco-legacy")["capabilities"] as? [String], ["embed", "reconstruct"], "no hash: paired by name")
        XCTAssertEqual(try card("peco-orphan")["capabilities"] as? [String], ["embed"])
        XCTAssertEqual(try card("peco-mismatch")["capabilities"] as? [String], ["embed"])
        XCTAssertEqual(try card("peco-stale")["capabilities"] as? [String], ["embed"])
        // A stage-2 card names the tokenizer it needs, whether it is served, and, when the pair does
        // not reconstruct, the error a reconstruction would get (which says what to do).
        XCTAssertNil(try card("tok")["requires_tokenizer"])
        let paired = try XCTUnwrap(try card("peco")["requires_tokenizer"] as? [String: Any])
        XCTAssertEqual(paired["id"] as? String, "tok")
        XCTAssertEqual(paired["loaded"] as? Bool, true)
        XCTAssertNil(paired["problem"])
        let orphan = try XCTUnwrap(try card("peco-orphan")["requires_tokenizer"] as? [String: Any])
        XCTAssertEqual(orphan["id"] as? String, "missing-tok")
        XCTAssertEqual(orphan["loaded"] as? Bool, false)
        XCTAssertNil(try card("peco-orphan")["reconstruction"])
        let problem = try XCTUnwrap(orphan["problem"] as? [String: String])
        XCTAssertEqual(problem["code"], "tokenizer_not_loaded")
        let (_, answer, _) = try call("POST", "/v1/reconstructions", json: ["model": "peco-orphan", "input": png.base64EncodedString()])
        XCTAssertEqual(problem["message"], (answer?["error"] as? [String: Any])?["message"] as? String, "the card says what the request would be told")
        let mismatch = try XCTUnwrap(try card("peco-mismatch")["requires_tokenizer"] as? [String: Any])
        XCTAssertEqual(mismatch["id"] as? String, "tok")
        XCTAssertEqual(mismatch["loaded"] as? Bool, true)
        XCTAssertEqual((mismatch["problem"] as? [String: String])?["code"], "tokenizer_mismatch")
        let stale = try XCTUnwrap(try card("peco-stale")["requires_tokenizer"] as? [String: Any])
        XCTAssertEqual(stale["loaded"] as? Bool, true)
        XCTAssertEqual((stale["problem"] as? [String: String])?["code"], "tokenizer_mismatch")
    }

    /// The stage-2 model's reconstruction: the arg-max of its head at the masked patches, the
    /// tokenizer's codes elsewhere, decoded by the tokenizer, in BootMAE's five panels.
    func testPeCoReconstructsThroughItsTokenizer() throws {
        let mask = [0, 1, 5, 6, 10, 15]
        let (status, json, _) = try call("POST", "/v1/reconstructions", json: ["model": "peco", "input": png.base64EncodedString(), "mask": mask, "scale": 1],
                                         headers: ["accept": "application/json"])
        XCTAssertEqual(status, 200)
        let body = try XCTUnwrap(json)
        XCTAssertEqual(body["mask"] as? [Int], mask)
        let images = try XCTUnwrap(body["images"] as? [String: String])
        XCTAssertEqual(Set(images.keys), ["strip", "original", "masked", "reconstruction", "composite", "heatmap"])
        let served = try ImageDecoder.decode([UInt8](try XCTUnwrap(Data(base64Encoded: try XCTUnwrap(images["reconstruction"])))))

        // The reference: stage 2 loaded afresh, its training step's logits (backward off).
        let peco = try XCTUnwrap(PretrainingDirectory.load(Self.modelsDir.appendingPathComponent("peco")).objective as? PeCo)
        let x = try input(png)
        let flags = (0..<16).map { mask.contains($0) }
        let own = Self.reference.codes(x)[0]
        let logits = peco.step(x, masks: [flags], labels: [own], backward: false).logits
        let predicted = CrossEntropy.argmax(logits)
        XCTAssertEqual(predicted.count, mask.count)
        var grid = own
        for (patch, code) in zip(mask, predicted) { grid[patch] = code }
        XCTAssertNotEqual(grid, own, "random heads should predict some other code")
        XCTAssertEqual(body["codes"] as? [Int], grid, "the answer shows the decoded grid: predictions at the masked patches")
        let expected = Self.reference.decode([grid])
        let (mean, std) = (Self.reference.encoder.config.mean[0], Self.reference.encoder.config.std[0])
        for i in 0..<64 {
            let want = min(max(expected.data[i] * std + mean, 0), 1) * 255
            XCTAssertLessThanOrEqual(abs(Float(served.pixels[i]) - want), 1, "pixel \(i)")
        }
        // The PNG answer: the same panels as BootMAE's.
        let (s2, _, png2) = try call("POST", "/v1/reconstructions", json: ["model": "peco", "input": png.base64EncodedString()])
        XCTAssertEqual(s2, 200)
        XCTAssertEqual(header(png2, "X-Panels"), "original,masked,reconstruction,reconstruction+visible,error_heatmap")
    }

    /// A PeCo model's default masks are its training masks: BEiT's block generator with PeCo's
    /// default options (the masks `PeCo.plan` draws), not BootMAE's capped, topped-up and rolled
    /// `MaskingSpec.block`; asking for its own masking by name gives the same, another one that one.
    func testDefaultMasksAreTheTrainingGenerators() throws {
        func servedMask(_ extra: [String: Any]) throws -> [Int] {
            let answer = try call("POST", "/v1/reconstructions", json: ["model": "peco", "input": png.base64EncodedString()].merging(extra) { $1 },
                                  headers: ["accept": "application/json"])
            XCTAssertEqual(answer.status, 200, String(decoding: answer.response.body, as: UTF8.self))
            return try XCTUnwrap(answer.json?["mask"] as? [Int])
        }
        let generator = BlockMaskGenerator.beit(height: 4, width: 4, minBlock: PeCo.Options.defaultMinBlock(patches: 16))
        var differsFromBootMAE = false
        for seed in 0..<8 {
            var rng = SeededRandom(seed: UInt64(seed))
            let beit = generator.mask(count: 6, rng: &rng)
            let expected = beit.indices.filter { beit[$0] }
            XCTAssertEqual(try servedMask(["seed": seed]), expected, "seed \(seed)")
            XCTAssertEqual(try servedMask(["seed": seed, "masking": "block"]), expected, "seed \(seed), its own masking by name")
            var rng2 = SeededRandom(seed: UInt64(seed))
            let bootmae = MaskingSpec.block.plan(batch: 1, grid: 4, masked: 6, rng: &rng2)
            if bootmae.order[0][bootmae.visible...].sorted() != expected { differsFromBootMAE = true }
            var rng3 = SeededRandom(seed: UInt64(seed))
            let random = MaskingSpec.random.plan(batch: 1, grid: 4, masked: 6, rng: &rng3)
            XCTAssertEqual(try servedMask(["seed": seed, "masking": "random"]), random.order[0][random.visible...].sorted())
        }
        XCTAssertTrue(differsFromBootMAE, "the two block maskings should differ somewhere in 8 seeds")
    }

    /// A missing or different tokenizer is the operator's to fix: 503 `server_error`, with the code
    /// saying which and the message what to serve.
    func testStage2WithoutItsTokenizerSaysWhatIsMissing() throws {
        // Said at start-up too, one line per stage-2 model.
        var lines: [String] = []
        _ = try ModelRegistry(directory: Self.modelsDir.path, defaultModel: "peco", log: { lines.append($0) })
        let pairing = lines.filter { $0.contains("reconstructs through") || $0.contains("serves embeddings only") }
        XCTAssertTrue(pairing.contains { $0.hasPrefix("peco reconstructs through the tokenizer tok (weights ") }, "\(lines)")
        XCTAssertTrue(pairing.contains { $0.hasPrefix("warning: peco-orphan serves embeddings only: ") && $0.contains("'missing-tok'") }, "\(lines)")
        XCTAssertTrue(pairing.contains { $0.hasPrefix("warning: peco-stale serves embeddings only: ") && $0.contains("0123456789ab") }, "\(lines)")

        let (status, json, _) = try call("POST", "/v1/reconstructions", json: ["model": "peco-orphan", "input": png.base64EncodedString()])
        XCTAssertEqual(status, 503)
        let error = try XCTUnwrap(json?["error"] as? [String: Any])
        XCTAssertEqual(error["code"] as? String, "tokenizer_not_loaded")
        XCTAssertEqual(error["type"] as? String, "server_error")
        let message = error["message"] as? String ?? ""
        XCTAssertTrue(message.contains("'missing-tok'") && message.contains("loaded tokenizers: tok"), message)

        let (s2, j2, _) = try call("POST", "/v1/reconstructions", json: ["model": "peco-mismatch", "input": png.base64EncodedString()])
        XCTAssertEqual(s2, 503)
        let e2 = try XCTUnwrap(j2?["error"] as? [String: Any])
        XCTAssertEqual(e2["code"] as? String, "tokenizer_mismatch")
        XCTAssertEqual(e2["type"] as? String, "server_error")
        XCTAssertTrue((e2["message"] as? String ?? "").contains("codebook 8 vs the head's 16 codes"), "\(e2)")

        // Trained on another export of "tok": both hashes' first 12 digits, and the remedy.
        let (s4, j4, _) = try call("POST", "/v1/reconstructions", json: ["model": "peco-stale", "input": png.base64EncodedString()])
        XCTAssertEqual(s4, 503)
        let e4 = try XCTUnwrap(j4?["error"] as? [String: Any])
        XCTAssertEqual(e4["code"] as? String, "tokenizer_mismatch")
        let m4 = e4["message"] as? String ?? ""
        let served = String(Self.tokSHA256(Self.modelsDir).prefix(12))
        XCTAssertTrue(m4.contains(served) && m4.contains("0123456789ab") && !m4.contains(Self.tokSHA256(Self.modelsDir).prefix(13)), m4)
        XCTAssertTrue(m4.contains("Serve the export the model was trained with") && m4.contains("fp16 re-export (--half)"), m4)

        // Configs from before the hash was recorded still pair by name.
        XCTAssertEqual(try call("POST", "/v1/reconstructions", json: ["model": "peco-legacy", "input": png.base64EncodedString()]).status, 200)

        // The tokenizer itself does not reconstruct masked images: the answer points to its own
        // decoding and to the stage-2 model that reconstructs through it (peco-mismatch names "tok"
        // too but does not fit it, so it is not offered).
        let (s3, j3, _) = try call("POST", "/v1/reconstructions", json: ["model": "tok", "input": png.base64EncodedString()])
        XCTAssertEqual(s3, 400)
        let e3 = try XCTUnwrap(j3?["error"] as? [String: Any])
        XCTAssertEqual(e3["code"] as? String, "model_cannot_reconstruct")
        let m3 = e3["message"] as? String ?? ""
        XCTAssertTrue(m3.hasPrefix("model 'tok' is a tokenizer: POST /v1/tokens?decode=true returns its decoding"), m3)
        XCTAssertTrue(m3.contains("trained on its codes (peco, peco-legacy);"), m3)
        XCTAssertFalse(m3.contains("pixel decoder"), m3)
    }

    /// A stage-2 model asked for codes is pointed to the tokenizer whose codes it predicts.
    func testStage2AskedForCodesNamesItsTokenizer() throws {
        let (status, json, _) = try call("POST", "/v1/tokens", json: ["model": "peco-orphan", "input": png.base64EncodedString()])
        XCTAssertEqual(status, 400)
        let message = try XCTUnwrap((json?["error"] as? [String: Any])?["message"] as? String)
        XCTAssertEqual(message, "model 'peco-orphan' is not a tokenizer: it predicts the codes of the tokenizer 'missing-tok'; models that can: tok")
    }

    /// A PeCo reconstruction is a tokenizer's decoding, not normalized pixels mapped back: `stats`
    /// changes nothing, so the answer echoes null and the PNG has no X-Stats.
    func testStatsIsNullWhereItHasNoEffect() throws {
        let request: [String: Any] = ["model": "peco", "input": png.base64EncodedString(), "mask": [0, 3], "stats": "visible"]
        let (status, json, _) = try call("POST", "/v1/reconstructions", json: request, headers: ["accept": "application/json"])
        XCTAssertEqual(status, 200)
        XCTAssertTrue(json?["stats"] is NSNull, "\(String(describing: json?["stats"]))")
        let (s2, json2, _) = try call("POST", "/v1/reconstructions", json: request.merging(["stats": "patch"]) { $1 },
                                      headers: ["accept": "application/json"])
        XCTAssertEqual(s2, 200)
        XCTAssertEqual(json?["psnr"] as? Double, json2?["psnr"] as? Double, "the choice of statistics changes nothing here")
        let (s3, _, response) = try call("POST", "/v1/reconstructions", json: request)
        XCTAssertEqual(s3, 200)
        XCTAssertNil(header(response, "X-Stats"))
        XCTAssertNotNil(header(response, "X-PSNR"))
    }

    /// openapi.yaml's TokenRequest, TokenResponse and /v1/tokens query parameters are the implementation's.
    func testTokensMatchOpenAPI() throws {
        let spec = try OpenAPISchemas(URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../openapi.yaml"))
        XCTAssertEqual(Set(TokenRequest.CodingKeys.allCases.map(\.stringValue)), Set(spec.properties("TokenRequest").keys))
        for answer in [try call("POST", "/v1/tokens", json: ["input": png.base64EncodedString()]).json,
                       try call("POST", "/v1/tokens", json: ["input": png.base64EncodedString(), "decode": true], headers: ["accept": "application/json"]).json] {
            let keys = try Set(XCTUnwrap(answer).keys)
            XCTAssertTrue(keys.isSubset(of: Set(spec.properties("TokenResponse").keys)), "\(keys.sorted())")
            XCTAssertTrue(Set(spec.required("TokenResponse")).isSubset(of: keys))
        }
        let cards = try XCTUnwrap(try call("GET", "/v1/models").json?["data"] as? [[String: Any]])
        for card in cards { XCTAssertTrue(Set(card.keys).isSubset(of: Set(spec.properties("Model").keys)), "\(card["id"] ?? "?")") }
    }
}
