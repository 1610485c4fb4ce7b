import XCTest
import Tensor
import ViT
import Objectives

/// Whole-network gradients by central differences, independent of the PyTorch fixtures: every
/// parameter tensor of a very small MAE and BootMAE gets a few coordinates checked.
final class FiniteDifferenceTests: XCTestCase {
    /// Every trainable tensor ~ N(0, scale²), LayerNorm weights ~ N(1, scale²): gains near zero
    /// would starve the layers below them of gradient (with N(0, 0.3²) gains the whole MAE encoder
    /// had gradients under 1e-4, below what a float32 difference quotient resolves).
    func randomize(_ params: ParameterList, rng: inout SeededRandom, scale: Float = 0.3) {
        for (name, p) in params.entries where p.trainable {
            let gain: Float = p.value.rank == 1 && name.hasSuffix(".weight") ? 1 : 0  // LayerNorm weights
            for i in 0..<p.value.count { p.value.data[i] = gain + rng.normal() * scale }
        }
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
        assertGradientsMatchCentralDifferences(model.parameters, loss: {
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
        assertGradientsMatchCentralDifferences(model.parameters) {
            defer { first = false }
            return model.step(images, plan: plan, backward: first).loss
        }
    }
}
