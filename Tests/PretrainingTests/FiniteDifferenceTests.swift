import XCTest
import Tensor
import ViT
import Objectives

/// Whole-network gradients by central differences, independent of the PyTorch fixtures: every
/// parameter tensor of a very small MAE and BootMAE gets a few coordinates checked.
final class FiniteDifferenceTests: XCTestCase {
    func randomize(_ params: ParameterList, rng: inout SeededRandom, scale: Float = 0.3) {
        for (_, p) in params.entries where p.trainable {
            for i in 0..<p.value.count { p.value.data[i] = rng.normal() * scale }
        }
    }

    /// Checks `coordinates` entries of every trainable tensor: |analytic − numeric| relative to the
    /// largest gradient magnitude of the network must stay under `tol`.
    func check(_ params: ParameterList, coordinates: Int = 3, tol: Double = 2e-2, loss: () -> Float, file: StaticString = #filePath, line: UInt = #line) {
        params.zeroGrads()
        _ = loss()  // accumulates analytic gradients (the closure runs with backward on)
        let analytic = params.entries.filter { $0.parameter.trainable }.map { ($0.name, $0.parameter, $0.parameter.grad) }
        let scale = analytic.map { $0.2.data.map { abs(Double($0)) }.max() ?? 0 }.max() ?? 1
        var rng = SeededRandom(seed: 99)
        var checked = 0
        for (name, p, grad) in analytic {
            for _ in 0..<coordinates {
                let i = Int(rng.next() % UInt64(p.value.count))
                let h: Float = 1e-2, original = p.value.data[i]
                p.value.data[i] = original + h
                let up = Double(loss())
                p.value.data[i] = original - h
                let down = Double(loss())
                p.value.data[i] = original
                let numeric = (up - down) / (2 * Double(h))
                XCTAssertLessThan(abs(numeric - Double(grad.data[i])) / scale, tol, "\(name)[\(i)]: numeric \(numeric) analytic \(grad.data[i])", file: file, line: line)
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 30, file: file, line: line)
    }

    let encoder = ViTConfig(imgSize: 8, patchSize: 2, inChans: 3, embedDim: 8, depth: 2, numHeads: 2, mlpRatio: 2,
                            qkvBias: .qv, layerNormEps: 1e-6, globalPool: .cls)

    func testBootMAEWholeNetworkGradient() { checkBootMAE(decoderContext: true) }

    /// The ablation without target-aware decoders: no cross-attention parameters at all, and the
    /// gradients of what is left (the encoder now learns only through the latent tokens).
    func testBootMAEWithoutDecoderContextGradient() {
        let model = checkBootMAE(decoderContext: false)
        let names = model.parameters.entries.map(\.name)
        XCTAssertFalse(names.contains { $0.contains("c_attn") || $0.contains("norm3") || $0.contains("norm4") })
        XCTAssertTrue(names.contains("decode_blocks.0.attn.qkv.weight"))
    }

    @discardableResult
    func checkBootMAE(decoderContext: Bool, file: StaticString = #filePath, line: UInt = #line) -> BootMAE {
        let model = BootMAE(encoder: encoder, settings: .init(decoderEmbedDim: 8, decoderDepth: 1, decoderNumHeads: 3,
                                                              featureDecoderDepth: 1, featureLayers: [0, 1], numMask: 10,
                                                              decoderContext: decoderContext))
        var rng = SeededRandom(seed: 3)
        randomize(model.parameters, rng: &rng)
        randomize(model.momentum.parameters, rng: &rng)
        let images = Tensor(shape: [2, 3, 8, 8], data: (0..<384).map { _ in rng.normal() })
        let plan = BlockMasking.scaled(grid: 4, ratio: 10.0 / 16).plan(batch: 2, grid: 4, rng: &rng)
        let weights = plan.neighbourhoodWeights(grid: 4)
        var first = true
        check(model.parameters, loss: {
            defer { first = false }
            return model.step(images, plan: plan, weights: weights, featureWeight: 0.7, backward: first).loss
        }, file: file, line: line)
        return model
    }

    func testMAEWholeNetworkGradient() {
        var enc = encoder
        enc.qkvBias = .qkv
        let model = MAE(encoder: enc, settings: .init(decoderEmbedDim: 8, decoderDepth: 1, decoderNumHeads: 2,
                                                      maskRatio: 0.75, normPixLoss: true))
        var rng = SeededRandom(seed: 4)
        randomize(model.parameters, rng: &rng)
        let images = Tensor(shape: [2, 3, 8, 8], data: (0..<384).map { _ in rng.normal() })
        let plan = RandomMasking(ratio: 0.75).plan(batch: 2, numPatches: 16, rng: &rng)
        var first = true
        check(model.parameters) {
            defer { first = false }
            return model.step(images, plan: plan, backward: first).loss
        }
    }
}
