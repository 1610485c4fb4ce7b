import XCTest
import Tensor
import ViT
import TestSupport

/// `PositionInterpolation` (and `BicubicInterpolation` under it) against the official
/// `interpolate_pos_encoding` run in PyTorch 2.13 (tools/reference/make_ibot_fixtures.py,
/// pretrain/ibot_tiny/pos_interpolation.safetensors): random (1, 1 + G², 5) tables resized for
/// g×g crops, forward and the gradient of sum(out · R). Tolerance 1e-6 relative (PyTorch's own
/// float32 differs from float64 by up to 8e-7 here).
final class PositionInterpolationTests: XCTestCase {
    let cases = [(7, 3), (7, 5), (4, 2), (4, 6)]   // 28-pixel images with 12- and 20-pixel crops; 4 → 2; upsampling

    func testMatchesTheOfficialInterpolation() throws {
        let f = try Fixtures.file("pretrain/ibot_tiny/pos_interpolation.safetensors")
        for (source, target) in cases {
            let key = "\(source)_to_\(target)"
            let table = try f.tensor("table_\(key)")
            let interpolation = try XCTUnwrap(PositionInterpolation(sourceGrid: source, patches: target * target))
            let out = interpolation.forward(table)
            XCTAssertEqual(out.shape, [1, 1 + target * target, 5], key)
            XCTAssertEqual(Array(out.data[..<5]), Array(table.data[..<5]), "\(key): the [CLS] row is kept")
            let e = relativeError(out, try f.tensor("out_\(key)"))
            XCTAssertLessThanOrEqual(e, 1e-6, "\(key) forward: relative error \(e)")
            let d = interpolation.backward(try f.tensor("weight_\(key)"))
            XCTAssertEqual(d.shape, table.shape, key)
            let ed = relativeError(d, try f.tensor("dtable_\(key)"))
            XCTAssertLessThanOrEqual(ed, 1e-6, "\(key) backward: relative error \(ed)")
        }
    }

    /// The official code adds `pos_embed` itself on the model's grid: no interpolation object.
    func testTheModelsOwnGridIsNotInterpolated() {
        XCTAssertNil(PositionInterpolation(sourceGrid: 7, patches: 49))
        XCTAssertNotNil(PositionInterpolation(sourceGrid: 7, patches: 9))
    }

    /// Properties PyTorch's bicubic has whatever the fixture: ⌊in · s⌋ outputs, Keys' weights sum to 1
    /// (a constant table stays constant), taps clamped into the grid, and the step 1 / s — with the
    /// official +0.1 the 7 → 3 resize reads source rows x = (i + 0.5) · 7 / 3.1 − 0.5 = 0.63, 2.89,
    /// 5.15 (taps from ⌊x⌋ − 1), where the 7 / 3 spacing of a `size=` call would read 0.67, 3, 5.33.
    func testAxisFollowsTheScaleFactorAsGiven() {
        let axis = BicubicInterpolation.Axis(inputSize: 7, scaleFactor: 3.1 / 7)
        XCTAssertEqual(axis.outputSize, 3)
        XCTAssertEqual(axis.taps, [0, 0, 1, 2, /**/ 1, 2, 3, 4, /**/ 4, 5, 6, 6])
        for i in 0..<3 { XCTAssertEqual(axis.weights[(4 * i)..<(4 * i + 4)].reduce(0, +), 1, accuracy: 1e-6) }
        XCTAssertEqual(BicubicInterpolation.Axis(inputSize: 7, scaleFactor: 3.0 / 7).taps[4..<8], [2, 3, 4, 5])
        var constant = Tensor(repeating: 0.25, shape: [1, 50, 3])
        constant.data[0] = 9   // [CLS]
        let out = PositionInterpolation(sourceGrid: 7, targetGrid: 3).forward(constant)
        XCTAssertEqual(out.data[0], 9)
        for v in out.data[3...] { XCTAssertEqual(v, 0.25, accuracy: 1e-6) }
    }

    /// An encoder fed a crop smaller than its images adds the interpolated table (training and
    /// inference alike), and its backward sends the positions' gradient back through the resize:
    /// the directional derivative of L = ⟨tokens, R⟩ along a random δ of pos_embed against central
    /// differences (float32, ε = 1e-3; 2% tolerance).
    func testEncoderUsesTheInterpolatedTableForSmallerCrops() {
        let config = ViTConfig(imgSize: 28, patchSize: 4, inChans: 1, embedDim: 8, depth: 1, numHeads: 2, mlpRatio: 2, qkvBias: .qkv,
                               layerNormEps: 1e-6, globalPool: .cls, mean: [0.5], std: [0.5], posEmbed: .checkpoint)
        let encoder = VisionTransformer(config: config, parts: .init(norm: true))
        var rng = SeededRandom(seed: 7)
        for (_, p) in encoder.parameters.entries { p.fill { rng.normal() * 0.3 } }
        let crops = Tensor(shape: [2, 1, 12, 12], data: (0..<288).map { _ in rng.normal() })
        let (tokens, cache) = encoder.forward(crops)
        XCTAssertEqual(tokens.shape, [2, 10, 8])
        XCTAssertEqual(encoder.infer(crops), tokens, "inference and training add the same table")

        let r = Tensor(shape: tokens.shape, data: (0..<tokens.count).map { _ in rng.normal() })
        encoder.parameters.zeroGrads()
        _ = encoder.backward(r, cache: cache)
        let delta = (0..<400).map { _ in rng.normal() }
        let analytic = zip(encoder.posEmbed.grad.data, delta).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }

        let table = encoder.posEmbed.value, eps: Float = 1e-3
        func loss(_ step: Float) -> Double {
            encoder.posEmbed.value = Tensor(shape: table.shape, data: zip(table.data, delta).map { $0 + step * $1 })
            return zip(encoder.forward(crops).0.data, r.data).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        let numeric = (loss(eps) - loss(-eps)) / Double(2 * eps)
        encoder.posEmbed.value = table
        XCTAssertEqual(analytic, numeric, accuracy: 2e-2 * max(1, abs(numeric)), "d pos_embed along δ")
    }
}
