import XCTest
import Tensor
import ViT
import TestSupport

/// The layers that wrap an op in a parameter layout of their own, forward and every gradient against
/// PyTorch (fixtures in Tests/Fixtures/ops): `PatchEmbed` (a Conv2d with kernel = stride = patch,
/// RGB and the single-channel form the shipped Fashion-MNIST models use) and `QKVProjection` with
/// BootMAE's q and v biases (no k bias). Tolerance: relative error max|Δ| / max|ref| ≤ 1e-5, as for ops.
final class LayerParityTests: XCTestCase {
    let tol: Float = 1e-5

    func check(_ ours: Tensor, _ ref: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(ours.shape, ref.shape, "\(what): shape", file: file, line: line)
        let err = relativeError(ours, ref)
        XCTAssertLessThanOrEqual(err, tol, "\(what): relative error \(err)", file: file, line: line)
    }

    func checkPatchEmbed(_ fixture: String, channels: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let f = try Fixtures.file(fixture)
        let images = try f.tensor("images"), weight = try f.tensor("weight"), dy = try f.tensor("dy")
        let patch = Int(try XCTUnwrap(f.meta("patch_size")))
        XCTAssertEqual(f.meta("stride"), f.meta("patch_size"), "the layer is a conv with stride = kernel", file: file, line: line)
        XCTAssertEqual(images.shape[1], channels, file: file, line: line)
        var params = ParameterList()
        let layer = PatchEmbed(channels: channels, patch: patch, dim: weight.shape[0], name: "patch_embed.proj", into: &params)
        try loadParameters(params, from: f, prefix: "", stripping: "patch_embed.proj.")
        let (y, cache) = layer.forward(images)
        check(y, try f.tensor("y"), "y", file: file, line: line)
        let dImages = layer.backward(dy, cache: cache)
        check(dImages, try f.tensor("dimages"), "dimages", file: file, line: line)
        check(layer.weight.grad, try f.tensor("dweight"), "dweight", file: file, line: line)
        check(layer.bias.grad, try f.tensor("dbias"), "dbias", file: file, line: line)
    }

    func testPatchEmbedRGB() throws {
        try checkPatchEmbed("ops/patch_embed.safetensors", channels: 3)
    }

    func testPatchEmbedGrayscale() throws {
        try checkPatchEmbed("ops/patch_embed_gray.safetensors", channels: 1)
    }

    func testQKVProjectionWithQAndVBiases() throws {
        let f = try Fixtures.file("ops/qkv_linear_qv.safetensors")
        let x = try f.tensor("x"), weight = try f.tensor("weight"), dy = try f.tensor("dy")
        var params = ParameterList()
        let layer = QKVProjection(dim: weight.shape[1], width: weight.shape[0] / 3, mode: .qv, name: "attn", into: &params)
        XCTAssertEqual(params.entries.map(\.name), ["attn.qkv.weight", "attn.q_bias", "attn.v_bias"])
        layer.weight.value = weight
        layer.qBias!.value = try f.tensor("q_bias")
        layer.vBias!.value = try f.tensor("v_bias")
        check(layer.forward(x), try f.tensor("y"), "y")
        check(layer.backward(dy, input: x), try f.tensor("dx"), "dx")
        check(layer.weight.grad, try f.tensor("dweight"), "dweight")
        check(layer.qBias!.grad, try f.tensor("dq_bias"), "dq_bias")
        check(layer.vBias!.grad, try f.tensor("dv_bias"), "dv_bias")
    }
}
