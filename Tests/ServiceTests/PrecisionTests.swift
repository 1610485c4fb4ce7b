import XCTest
import Foundation
import Tensor
import ViT
import ImageKit
@testable import Service
import TestSupport

/// `--precision`: parsing, what `/v1/models` reports, and how close bf16 embeddings of the shipped
/// models are to fp32 ones on real images.
final class PrecisionTests: XCTestCase {
    static let shippedModels = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../models").standardized

    func testPolicyParsing() throws {
        let policy = try PrecisionPolicy(parsing: ["m1=bf16", "fp32,m2=bf16"])
        XCTAssertEqual(policy.defaultPrecision, .fp32)
        XCTAssertEqual(policy.precision(for: "m1"), .bf16)
        XCTAssertEqual(policy.precision(for: "m2"), .bf16)
        XCTAssertEqual(policy.precision(for: "other"), .fp32)
        XCTAssertEqual(try PrecisionPolicy(parsing: ["bf16", "m=fp32"]).precision(for: "x"), .bf16)
        XCTAssertEqual(try PrecisionPolicy(parsing: ["bf16", "m=fp32"]).precision(for: "m"), .fp32)
        XCTAssertEqual(try PrecisionPolicy(parsing: []), PrecisionPolicy())
        for (bad, says) in [(["fp16"], "fp32 or bf16"), (["m=int8"], "fp32 or bf16"), (["=bf16"], "empty"),
                            (["bf16", "fp32"], "twice"), (["m=bf16,m=fp32"], "'m' is given twice")] {
            XCTAssertThrowsError(try PrecisionPolicy(parsing: bad), "\(bad)") { XCTAssertTrue("\($0)".contains(says), "\($0)") }
        }
    }

    func testUnknownModelNameIsAStartupError() {
        XCTAssertThrowsError(try ModelRegistry(directory: Self.shippedModels.path, precisions: PrecisionPolicy(perModel: ["no-such-model": .bf16]))) {
            XCTAssertTrue("\($0)".contains("no-such-model"), "\($0)")
        }
    }

    /// The model card says what runs: bf16 where asked and the CPU can, fp32 for the others.
    func testModelCardsReportPrecisionAndKernel() throws {
        let registry = try ModelRegistry(directory: Self.shippedModels.path, defaultModel: "bootmae-vit-tiny-fmnist",
                                         precisions: PrecisionPolicy(perModel: ["bootmae-vit-tiny-fmnist-cls": .bf16]))
        let service = Service(registry: registry, limits: .init(maxBatch: 4, maxDelay: 0.002, maxQueue: 16), options: Service.Options())
        // Through JSON, as clients read it.
        func inference(_ id: String) throws -> [String: String]? {
            let card = service.modelCard(try registry.model(id))
            let json = try JSONSerialization.jsonObject(with: APIJSON.encoder.encode(card)) as? [String: Any]
            return json?["inference"] as? [String: String]
        }
        XCTAssertEqual(try inference("bootmae-vit-tiny-fmnist"), ["precision": "fp32", "requested_precision": "fp32",
                                                                  "kernel": InferenceKernel.best(for: .fp32).rawValue])
        let bf16 = InferenceKernel.best(for: .bf16)
        var expected = ["precision": bf16.precision.rawValue, "requested_precision": "bf16", "kernel": bf16.rawValue]
        if bf16.precision != .bf16 { expected["note"] = "this CPU has no bf16 instructions" }
        XCTAssertEqual(try inference("bootmae-vit-tiny-fmnist-cls"), expected)
    }

    /// Under a bf16 default a tokenizer keeps fp32 (its codes are nearest codebook entries, which
    /// bf16 moves at near-ties): its card says so, one load-log line says why, its codes are those
    /// of an fp32 server, and the stage-2 model beside it runs bf16 as asked.
    func testTokenizersRunFP32UnderABF16Default() throws {
        let bf16 = InferenceKernel.best(for: .bf16)
        var log: [String] = []
        let registry = try ModelRegistry(directory: PeCoServiceTests.modelsDir.path, defaultModel: "peco",
                                         precisions: PrecisionPolicy(default: .bf16), log: { log.append($0) })
        let service = Service(registry: registry, limits: .init(maxBatch: 4, maxDelay: 0.002, maxQueue: 16), options: Service.Options())
        service.markReady()
        func inference(_ id: String) throws -> [String: String]? {
            let json = try JSONSerialization.jsonObject(with: APIJSON.encoder.encode(service.modelCard(try registry.model(id)))) as? [String: Any]
            return json?["inference"] as? [String: String]
        }
        // The tokenizer's reason holds on any CPU (with bf16 instructions or not); the stage-2 model's
        // note, where there is one, is the CPU's.
        let note = PrecisionPolicy.tokenizerNote
        XCTAssertEqual(try inference("tok"), ["precision": "fp32", "requested_precision": "bf16", "kernel": InferenceKernel.best(for: .fp32).rawValue,
                                              "note": note])
        var stage2 = ["precision": bf16.precision.rawValue, "requested_precision": "bf16", "kernel": bf16.rawValue]
        if bf16.precision != .bf16 { stage2["note"] = "this CPU has no bf16 instructions" }
        XCTAssertEqual(try inference("peco"), stage2, "a stage-2 model is a plain ViT: bf16 as asked")
        let tokLines = log.filter { $0.hasPrefix("loaded tok ") }
        XCTAssertEqual(tokLines.count, 1)
        XCTAssertTrue(tokLines.allSatisfy { $0.contains("(bf16 asked; \(note))") }, "\(tokLines)")

        // The codes (and their decoding) are an fp32 server's, bit for bit.
        let images = try ["images/photo_512x384.jpg", "images/rgb.png", "images/gray.jpg"].map { try Data(contentsOf: Fixtures.url($0)).base64EncodedString() }
        func tokens(_ service: Service) throws -> [[String: Any]] {
            let body = try JSONSerialization.data(withJSONObject: ["model": "tok", "input": images, "decode": true])
            let response = try service.respond(to: ServiceRequest(method: "POST", path: "/v1/tokens", headers: ["content-type": "application/json",
                                                                                                               "accept": "application/json"], body: [UInt8](body)))
            XCTAssertEqual(response.status, 200, String(decoding: response.body, as: UTF8.self))
            return try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])?["data"] as? [[String: Any]])
        }
        let (served, fp32) = (try tokens(service), try tokens(PeCoServiceTests.service))
        XCTAssertEqual(served.count, images.count)
        for (a, b) in zip(served, fp32) {
            XCTAssertEqual(a["codes"] as? [Int], b["codes"] as? [Int])
            XCTAssertEqual(a["decoded"] as? String, b["decoded"] as? String)
        }
    }

    /// Naming a tokenizer for bf16 asks for what it cannot get: a start-up error that says why, as
    /// an unknown name is; naming a stage-2 model is fine.
    func testNamingATokenizerForBF16IsRefused() throws {
        XCTAssertThrowsError(try ModelRegistry(directory: PeCoServiceTests.modelsDir.path, defaultModel: "peco",
                                               precisions: PrecisionPolicy(perModel: ["tok": .bf16]))) {
            XCTAssertTrue("\($0)".contains("--precision 'tok=bf16': 'tok' is a tokenizer, and tokenizers run fp32 only"), "\($0)")
        }
        let registry = try ModelRegistry(directory: PeCoServiceTests.modelsDir.path, defaultModel: "peco",
                                         precisions: PrecisionPolicy(perModel: ["peco": .bf16]))
        XCTAssertEqual(try registry.model("peco").kernel, InferenceKernel.best(for: .bf16))
        XCTAssertEqual(try registry.model("tok").kernel, InferenceKernel.best(for: .fp32))
    }

    /// Images a served model meets: the committed Fashion-MNIST test images and photographs.
    static func images() throws -> [(name: String, image: Image)] {
        let fmnist = try FileManager.default.contentsOfDirectory(atPath: Fixtures.url("fmnist").path).filter { $0.hasSuffix(".png") }.sorted()
            .map { "fmnist/\($0)" }
        let photos = ["images/photo_512x384.jpg", "images/rgb_baseline_q90.jpg", "images/rgb_progressive.jpg", "images/orient_6.jpg",
                      "images/cmyk.jpg", "images/rgb.png", "images/gray.jpg"]
        return try (fmnist + photos).map { ($0, try ImageDecoder.decode(Data(contentsOf: Fixtures.url($0)))) }
    }

    /// Cosine of bf16 to fp32 (both packed, as served) embeddings for every image on every shipped
    /// model, with each model's default pooling: ≥ 0.9999 on the pretrained export; ≥ 0.9995 on the
    /// fine-tuned classifier, whose mean-pooled, fc_norm'ed embedding amplifies the rounding most.
    /// Measured on Zen 4: with fp32 attention products, minimum 0.99984 over 119 photographs, 0.99987
    /// over 500 Fashion-MNIST test images; with attention's products in bf16 too (as served, and as
    /// PyTorch's autocast does), 0.999805 over these 17 images and 0.99945 over all 10k test images,
    /// top-1 93.00% in both precisions; PyTorch's bf16 autocast gives 0.99938 on the same model. The
    /// bound is the autocast level with room for another CPU's summation order (AMX): 2.5× this set's
    /// measured gap. The 0.9999 is not met there; keeping single layers fp32 moved the minimum
    /// either way, so no such rule is built in.
    func testBF16EmbeddingsOfTheShippedModelsStayCloseToFP32() throws {
        try XCTSkipUnless(InferenceKernel.best(for: .bf16).precision == .bf16, "this CPU has no bf16 instructions: bf16 models run fp32")
        let images = try Self.images()
        for name in try XCTUnwrap(ModelRegistry.modelNames(in: Self.shippedModels)) {
            let dir = Self.shippedModels.appendingPathComponent(name)
            let (fp32, bf16) = (try ModelRegistry.load(dir, precisions: PrecisionPolicy(default: .fp32)),
                                try ModelRegistry.load(dir, precisions: PrecisionPolicy(default: .bf16)))
            // A tokenizer runs fp32 whatever is asked (testTokenizersRunFP32UnderABF16Default).
            if fp32.canTokenize { continue }
            XCTAssertEqual(bf16.kernel.precision, .bf16)
            let batch = Tensor(shape: [images.count, fp32.config.inChans, fp32.config.imgSize, fp32.config.imgSize],
                               data: images.flatMap { fp32.preprocessor.tensorCHW($0.image) })
            let (a, b) = (fp32.encoder.embed(batch, workspace: fp32.workspace), bf16.encoder.embed(batch, workspace: bf16.workspace))
            let dim = a.lastDim
            var worst = (cosine: 1.0, image: "")
            for (i, image) in images.enumerated() {
                var (dot, aa, bb) = (0.0, 0.0, 0.0)
                for j in 0..<dim {
                    let (x, y) = (Double(a.data[i * dim + j]), Double(b.data[i * dim + j]))
                    (dot, aa, bb) = (dot + x * y, aa + x * x, bb + y * y)
                }
                let cosine = dot / (aa * bb).squareRoot()
                if cosine < worst.cosine { worst = (cosine, image.name) }
                XCTAssertGreaterThanOrEqual(cosine, name.hasSuffix("-cls") ? 0.9995 : 0.9999, "\(name), \(image.name)")
            }
            // A bf16 forward that silently ran fp32 would give cosine 1 (to rounding): the weights must differ.
            XCTAssertLessThan(worst.cosine, 1 - 1e-9, "\(name): bf16 embeddings equal fp32 ones; is bf16 running?")
            print("\(name): bf16 vs fp32 embedding cosine, minimum \(worst.cosine) (\(worst.image)) over \(images.count) images")
        }
    }
}
