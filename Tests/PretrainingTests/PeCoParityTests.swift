import XCTest
import Foundation
import Tensor
import ViT
@testable import Objectives
import Checkpoint
import TestSupport

/// PeCo's stage 2 against the PyTorch reference written from BEiT's official functions
/// (tools/reference/make_peco_fixtures.py; microsoft/unilm beit/modeling_pretrain.py,
/// engine_for_pretraining.py): the same weights, images, masks and codes give the same loss
/// (≤ 1e-5 relative), logits (≤ 1e-5), arg-max accuracy, and every gradient (≤ 1e-4 relative to the
/// tensor's largest entry), whole or in shards; at BEiT's initialisation the loss is ln K + σ²/2.
final class PeCoParityTests: XCTestCase {
    static let dir = "pretrain/peco_tiny"

    func assertClose(_ a: Tensor, _ b: Tensor, _ tol: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        let e = relativeError(a, b)
        XCTAssertLessThanOrEqual(e, tol, "\(what): relative error \(e)", file: file, line: line)
    }

    func fixture() throws -> (PeCo, images: Tensor, masks: [[Bool]], labels: [[Int]], io: SafeTensorsFile) {
        // Decoded without validation: the fixture's codes are inputs, so its config names no tokenizer.
        let config = try JSONDecoder().decode(PretrainingConfig.self, from: Data(contentsOf: Fixtures.url("\(Self.dir)/config.json")))
        XCTAssertEqual(config.validationErrors().count, 1, "only the missing tokenizer")
        let network = PretrainingNetwork(config: config)
        try network.load(try Fixtures.file("\(Self.dir)/model.safetensors"))
        let peco = try XCTUnwrap(network.objective as? PeCo)
        let io = try Fixtures.file("\(Self.dir)/io.safetensors")
        let (shape, flags) = try io.integers("masks")
        let (_, codes) = try io.integers("labels")
        let n = shape[1]
        let masks = (0..<shape[0]).map { b in flags[(b * n)..<((b + 1) * n)].map { $0 != 0 } }
        let labels = (0..<shape[0]).map { b in Array(codes[(b * n)..<((b + 1) * n)]) }
        return (peco, try io.tensor("images"), masks, labels, io)
    }

    func testStepMatchesReference() throws {
        let (peco, images, masks, labels, io) = try fixture()
        peco.parameters.zeroGrads()
        let out = peco.step(images, masks: masks, labels: labels)
        let ref = try io.tensor("loss").data[0]
        XCTAssertLessThanOrEqual(abs(out.loss - ref) / ref, 1e-5, "loss \(out.loss) vs \(ref)")
        XCTAssertEqual(out.accuracy, try io.tensor("mlm_acc").data[0])
        assertClose(out.logits, try io.tensor("logits"), 1e-5, "logits")
        var checked = 0
        for (name, p) in peco.parameters.entries where p.trainable {
            assertClose(p.grad, try io.tensor("grad." + name), 1e-4, "grad \(name)")
            checked += 1
        }
        XCTAssertEqual(checked, 39)
    }

    /// Shards of images with the batch's masked total add up to the whole batch.
    func testShardsAddUp() throws {
        let (peco, images, masks, labels, io) = try fixture()
        let plan = PeCoPlan(masks: masks, maskedInBatch: masks.joined().filter { $0 }.count)
        XCTAssertEqual(plan.maskedInBatch, Int(try XCTUnwrap(io.meta("masked"))))
        peco.parameters.zeroGrads()
        var loss: Float = 0
        for range in [0..<1, 1..<3] {
            let shard = plan.shard(range)
            loss += peco.step(images.batchSlice(range), masks: shard.masks, labels: Array(labels[range]), maskedInBatch: shard.maskedInBatch).loss
        }
        XCTAssertLessThanOrEqual(abs(loss - (try io.tensor("loss").data[0])) / loss, 1e-5)
        for (name, p) in peco.parameters.entries where p.trainable {
            assertClose(p.grad, try io.tensor("grad." + name), 1e-4, "sharded grad \(name)")
        }
    }

    /// BEiT's init makes the logits nearly equal: the loss is ln K + σ²/2 with σ ≈ 0.02·0.54·√D
    /// (seeds §3.5), here for the tiny Fashion-MNIST model (D = 128, K = 512: ln K = 6.2383,
    /// σ²/2 = 0.0075) on random images and codes; the reference's BEiT-initialised fixture model
    /// agrees on its own inputs.
    func testLossAtInitialisationIsLnK() throws {
        let (_, _, _, _, io) = try fixture()
        let lnK = try XCTUnwrap(io.meta("ln_k"))
        XCTAssertEqual(try XCTUnwrap(io.meta("init_loss")), lnK, accuracy: 0.01, "the reference at BEiT's init")

        let shape = BackboneShape(imgSize: 28, patchSize: 4, channels: 1, embedDim: 128, depth: 6, numHeads: 4,
                                  decoderDim: 64, decoderDepth: 2, deepDecoderDepth: 2)
        var encoder = shape.encoder(qkvBias: .qv, mean: [0.5], std: [0.5], posEmbed: .checkpoint)
        encoder.layerScaleInit = 0.1
        let peco = PeCo(encoder: encoder, settings: .init(vocabSize: 512, numMaskPatches: 20, tokenizer: nil))
        var rng = SeededRandom(seed: 7)
        peco.initialize(rng: &rng)
        let options = PeCo.Options()
        XCTAssertEqual(options.minBlock(patches: 49), 4, "BEiT's 16 of 196")
        let plan = peco.plan(batch: 8, rng: &rng, options: options, clock: TrainingClock(step: 0, stepsPerEpoch: 1, epochs: 1))
        XCTAssertTrue(plan.masks.allSatisfy { $0.filter { $0 }.count <= 20 })
        XCTAssertGreaterThan(plan.maskedInBatch, 8 * 15)
        let images = Tensor(shape: [8, 1, 28, 28], data: (0..<(8 * 784)).map { _ in rng.normal() })
        let labels = (0..<8).map { _ in (0..<49).map { _ in Int(rng.next() % 512) } }
        let out = peco.step(images, masks: plan.masks, labels: labels, backward: false)
        // The expected loss over uniformly drawn codes, from the logits (no label noise): the mean
        // over masked patches of logsumexp(z) − mean(z); and the sampled loss near it.
        let k = 512
        let expected = (0..<out.logits.rows).map { r -> Double in
            let z = out.logits.data[(r * k)..<((r + 1) * k)].map(Double.init)
            let m = z.max()!
            return m + log(z.map { exp($0 - m) }.reduce(0, +)) - z.reduce(0, +) / Double(k)
        }.reduce(0, +) / Double(out.logits.rows)
        let sigma = 0.02 * 0.54 * Double(128).squareRoot()
        XCTAssertEqual(expected, log(512) + sigma * sigma / 2, accuracy: 0.005, "expected init loss \(expected)")
        XCTAssertEqual(Double(out.loss), expected, accuracy: 0.05, "sampled init loss \(out.loss)")
        // BEiT's init: truncated at ±1σ, proj/fc2 rescaled, γ = 0.1.
        XCTAssertTrue(peco.parameters["lm_head.weight"]!.value.data.allSatisfy { abs($0) <= 0.02 })
        XCTAssertTrue(peco.parameters["blocks.1.mlp.fc2.weight"]!.value.data.allSatisfy { abs($0) <= 0.02 / 2 })
        XCTAssertEqual(Set(peco.parameters["blocks.0.gamma_1"]!.value.data), [0.1])
        XCTAssertEqual(Set(peco.parameters["blocks.0.attn.v_bias"]!.value.data), [0])
    }
}
