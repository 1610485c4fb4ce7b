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

    /// Checks `coordinates` entries of every trainable tensor against central differences, each
    /// tensor on its own scale: |analytic − numeric| relative to the largest of its analytic
    /// gradient's magnitudes and of the numeric derivatives measured for it must stay under `tol`.
    ///
    /// The float32 loss limits the difference quotient to about 1e-5 absolute at h = 2e-2 (rounding,
    /// measured: smaller h gives larger errors), so the measured coordinates of every tensor must
    /// carry at least `floor` = 1e-4 of gradient, or the tensor would not really be checked; the
    /// smallest measured is 6.6e-4. Worst relative errors measured: 2.9e-3 (rounding, on the
    /// smallest gradient, `blocks.1.attn.q_bias` without decoder context) and 1.0e-3 (truncation,
    /// on the largest), hence `tol` = 1e-2. A tensor whose analytic gradient were lost (zero) has
    /// error 1 at its largest measured coordinate.
    func check(_ params: ParameterList, coordinates: Int = 3, h: Float = 2e-2, tol: Double = 1e-2, floor: Double = 1e-4,
               loss: () -> Float, file: StaticString = #filePath, line: UInt = #line) {
        params.zeroGrads()
        _ = loss()  // accumulates analytic gradients (the closure runs with backward on)
        let analytic = params.entries.filter { $0.parameter.trainable }.map { ($0.name, $0.parameter, $0.parameter.grad) }
        var rng = SeededRandom(seed: 99)
        var checked = 0
        for (name, p, grad) in analytic {
            var numeric: [(index: Int, value: Double)] = []
            for _ in 0..<coordinates {
                let i = Int(rng.next() % UInt64(p.value.count))
                let original = p.value.data[i]
                p.value.data[i] = original + h
                let up = Double(loss())
                p.value.data[i] = original - h
                let down = Double(loss())
                p.value.data[i] = original
                numeric.append((i, (up - down) / (2 * Double(h))))
            }
            let measured = numeric.map { abs($0.value) }.max() ?? 0
            XCTAssertGreaterThan(measured, floor, "\(name): the measured coordinates carry no resolvable gradient", file: file, line: line)
            let scale = max(grad.data.map { abs(Double($0)) }.max() ?? 0, measured)
            for (i, value) in numeric {
                XCTAssertLessThan(abs(value - Double(grad.data[i])) / scale, tol,
                                  "\(name)[\(i)]: numeric \(value) analytic \(grad.data[i]), tensor scale \(scale)", file: file, line: line)
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
