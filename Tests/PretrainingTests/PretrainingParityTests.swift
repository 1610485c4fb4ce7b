import XCTest
import Tensor
import ViT
import Objectives
import Checkpoint
import TestSupport

/// The MAE and BootMAE networks against the PyTorch reference (tools/reference/make_pretrain_fixtures.py):
/// the same weights and masks give the same losses (≤ 1e-5 relative), predictions, targets and
/// every parameter gradient (≤ 1e-4 relative to the tensor's largest entry).
final class PretrainingParityTests: XCTestCase {
    func plan(_ io: SafeTensorsFile, masked: Int) throws -> MaskPlan {
        let (shape, flat) = try io.integers("ids_shuffle")
        let order = (0..<shape[0]).map { Array(flat[($0 * shape[1])..<(($0 + 1) * shape[1])]) }
        return MaskPlan(order: order, visible: shape[1] - masked)
    }

    func assertClose(_ a: Tensor, _ b: Tensor, _ tol: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        let e = relativeError(a, b)
        XCTAssertLessThanOrEqual(e, tol, "\(what): relative error \(e)", file: file, line: line)
    }

    func scalar(_ io: SafeTensorsFile, _ key: String) throws -> Float { try io.tensor(key).data[0] }

    func checkGradients(_ params: ParameterList, _ io: SafeTensorsFile, file: StaticString = #filePath, line: UInt = #line) throws {
        var checked = 0
        for (name, p) in params.entries where p.trainable {
            assertClose(p.grad, try io.tensor("grad." + name), 1e-4, "grad \(name)", file: file, line: line)
            checked += 1
        }
        XCTAssertEqual(checked, io.entries.keys.filter { $0.hasPrefix("grad.") }.count, "every reference gradient checked", file: file, line: line)
    }

    // MARK: MAE

    func checkMAE(_ dir: String, gradients: Bool) throws {
        let mae = try XCTUnwrap(try PretrainingDirectory.load(Fixtures.url("pretrain/\(dir)")).objective as? MAE, "not MAE")
        let io = try Fixtures.file("pretrain/mae_tiny/io.safetensors")
        let plan = try plan(io, masked: 48)
        XCTAssertEqual(plan.lossMask, try io.tensor("mask").data)
        mae.parameters.zeroGrads()
        let out = mae.step(try io.tensor("images"), plan: plan, backward: gradients)
        XCTAssertLessThanOrEqual(abs(out.loss - (try scalar(io, "loss"))) / (try scalar(io, "loss")), 1e-5, "loss \(out.loss)")
        assertClose(out.latent, try io.tensor("latent"), 1e-4, "latent")
        assertClose(out.target, try io.tensor("target"), 1e-5, "target")
        assertClose(out.prediction, try io.tensor("pred"), 1e-4, "pred")
        if gradients { try checkGradients(mae.parameters, io) }
    }

    func testMAEMatchesReference() throws { try checkMAE("mae_tiny", gradients: true) }
    func testConvertedMAECheckpointGivesTheSameLoss() throws { try checkMAE("converted_mae", gradients: false) }

    // MARK: BootMAE

    func checkBootMAE(_ dir: String, gradients: Bool) throws {
        let model = try XCTUnwrap(try PretrainingDirectory.load(Fixtures.url("pretrain/\(dir)")).objective as? BootMAE, "not BootMAE")
        let io = try Fixtures.file("pretrain/bootmae_tiny/io.safetensors")
        let lambda = Float(try XCTUnwrap(io.meta("lambda")))
        let plan = try plan(io, masked: 48)
        XCTAssertEqual(plan.lossMask, try io.tensor("loss_mask").data)
        let weights = plan.neighbourhoodWeights(grid: 8)
        assertClose(Tensor(shape: [weights.count], data: weights), try io.tensor("loss_weight"), 1e-6, "neighbourhood weights")

        let images = try io.tensor("images")
        model.parameters.zeroGrads()
        let out = model.step(images, plan: plan, weights: weights, featureWeight: lambda, backward: gradients)
        for (ours, key) in [(out.pixelLoss, "loss_pixel"), (out.featureLoss, "loss_feature"), (out.loss, "loss_total")] {
            let ref = try scalar(io, key)
            XCTAssertLessThanOrEqual(abs(ours - ref) / ref, 1e-5, "\(key): \(ours) vs \(ref)")
        }
        assertClose(out.latent, try io.tensor("latent"), 1e-4, "latent")
        let (c, h) = (3, 32)
        assertClose(PatchOps.unpatchify(out.pixelPrediction, patch: 4, channels: c, height: h, width: h), try io.tensor("pixel_pred"), 1e-4, "pixel prediction")
        assertClose(PatchOps.unpatchify(out.pixelTarget, patch: 4, channels: c, height: h, width: h), try io.tensor("pixel_target"), 1e-5, "pixel target")
        assertClose(out.featurePrediction, try io.tensor("feature_pred"), 1e-4, "feature prediction")
        assertClose(out.featureTarget, try io.tensor("feature_target"), 1e-4, "momentum target")
        if gradients { try checkGradients(model.parameters, io) }

        // Without the neighbourhood weighting (the plain masked MSE).
        let plain = model.step(images, plan: plan, weights: plan.lossMask, featureWeight: lambda, backward: false)
        for (ours, key) in [(plain.pixelLoss, "loss_pixel_unweighted"), (plain.featureLoss, "loss_feature_unweighted"), (plain.loss, "loss_total_unweighted")] {
            let ref = try scalar(io, key)
            XCTAssertLessThanOrEqual(abs(ours - ref) / ref, 1e-5, "\(key): \(ours) vs \(ref)")
        }
    }

    func testBootMAEMatchesReference() throws { try checkBootMAE("bootmae_tiny", gradients: true) }
    func testConvertedBootMAECheckpointGivesTheSameLosses() throws { try checkBootMAE("converted_bootmae", gradients: false) }

    /// The decoder's attention width is heads × (width / heads): 3 × 6 = 18 for width 20, as the
    /// official code builds it (504 for Base).
    func testDecoderAttentionWidthQuirk() throws {
        let model = try XCTUnwrap(try PretrainingDirectory.load(Fixtures.url("pretrain/bootmae_tiny")).objective as? BootMAE)
        XCTAssertEqual(model.pixelBlocks[0].attn.qkv.weight.shape, [54, 20])
        XCTAssertEqual(model.pixelBlocks[0].context!.crossAttn.kv.weight.shape, [36, 24])
    }

    /// A full pretraining checkpoint also serves as an encoder: decoders and the momentum copy are ignored.
    func testPretrainingCheckpointLoadsAsAnEncoder() throws {
        let encoder = try ModelDirectory.loadEncoder(Fixtures.url("pretrain/bootmae_tiny"))
        XCTAssertEqual(encoder.config.embedDim, 24)
        XCTAssertNotNil(encoder.norm)
    }

    func testSaveAndReloadFullNetwork() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pt-\(UUID())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let original = try PretrainingDirectory.load(Fixtures.url("pretrain/bootmae_tiny"))
        try PretrainingDirectory.save(original, to: dir)
        let a = try XCTUnwrap(original.objective as? BootMAE), b = try XCTUnwrap(try PretrainingDirectory.load(dir).objective as? BootMAE)
        for ((name, p), (_, q)) in zip(a.checkpointParameters.entries, b.checkpointParameters.entries) {
            XCTAssertEqual(p.value, q.value, name)
        }
    }
}
