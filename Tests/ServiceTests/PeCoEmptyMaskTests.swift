import XCTest
import Foundation
import Tensor
import ViT
import Checkpoint
@testable import Service
import Objectives
import TestSupport

/// PeCo's served default masks come from BEiT's block generator, which stops at the first block
/// that does not fit: on a 7×7 grid (smallest block 4 patches) a mask of 1 patch often draws
/// nothing. Such a request must be refused with what to ask instead, never answered with an empty
/// mask (whose PSNR is NaN). Fixture: a 28 px, patch 4 tokenizer and its stage 2, random weights.
final class PeCoEmptyMaskTests: XCTestCase {
    func testABlockMaskThatHidesNothingIsRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("peco-empty-mask-\(UUID())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let shape = BackboneShape(imgSize: 28, patchSize: 4, channels: 1, embedDim: 16, depth: 1, numHeads: 2, decoderDim: 16,
                                  decoderDepth: 1, deepDecoderDepth: 1)
        let (tokEncoder, _) = try PeCoTokenizer.configure(shape, maskRatio: 0, flags: ObjectiveFlagValues())
        let tok = PretrainingNetwork(config: PretrainingConfig(PeCoTokenizer.self, encoder: tokEncoder, settings: .init(
            codebookSize: 8, codeDim: 4, decoderEmbedDim: 16, decoderDepth: 1, decoderNumHeads: 2, lambdaPerceptual: 0)))
        tok.initialize(seed: 3)
        try PretrainingDirectory.save(tok, to: dir.appendingPathComponent("tok"))
        var (encoder, _) = try PeCo.configure(shape, maskRatio: 0.4, flags: ObjectiveFlagValues())
        (encoder.mean, encoder.std) = (tokEncoder.mean, tokEncoder.std)
        let peco = PretrainingNetwork(config: PretrainingConfig(PeCo.self, encoder: encoder, settings: .init(
            vocabSize: 8, numMaskPatches: 20, tokenizer: "tok")))
        peco.initialize(seed: 5)
        try PretrainingDirectory.save(peco, to: dir.appendingPathComponent("peco"))
        let service = Service(registry: try ModelRegistry(directory: dir.path, defaultModel: "peco"),
                              limits: .init(maxBatch: 4, maxDelay: 0.002, maxQueue: 16), options: Service.Options())
        service.markReady()
        let png = try Data(contentsOf: Fixtures.url("images/gray28.png"))

        var refused = 0
        for seed in 0..<20 {
            let body = try JSONSerialization.data(withJSONObject: ["model": "peco", "input": png.base64EncodedString(), "mask_ratio": 0.02, "seed": seed])
            let r = try service.respond(to: ServiceRequest(method: "POST", path: "/v1/reconstructions", query: [:],
                                                           headers: ["content-type": "application/json", "accept": "application/json"], body: [UInt8](body)))
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any])
            if r.status == 400 {
                refused += 1
                let error = try XCTUnwrap(json["error"] as? [String: Any])
                XCTAssertEqual(error["param"] as? String, "mask_ratio")
                XCTAssertTrue((error["message"] as? String ?? "").contains("drew no patch to hide"), "\(error)")
            } else {
                XCTAssertEqual(r.status, 200, "seed \(seed): \(json)")
                XCTAssertEqual((json["mask"] as? [Int])?.count, 1, "seed \(seed)")
                XCTAssertTrue((json["psnr"] as? Double)?.isFinite ?? false, "seed \(seed): \(json)")
            }
        }
        XCTAssertGreaterThan(refused, 0, "some of 20 seeds draw an empty block mask at 1 of 49 patches")
        XCTAssertLessThan(refused, 20, "and some draw a block of one patch")
    }
}
