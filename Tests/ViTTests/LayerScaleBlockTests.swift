import XCTest
import Tensor
import ViT
import Checkpoint
import TestSupport

/// A BEiT-style block (q/v biases, layer scale gamma_1 / gamma_2, a per-head relative position
/// bias shared by the images) against PyTorch (blocks/block_layer_scale.safetensors).
/// Tolerance 1e-4 relative for the output, dx, d bias and every parameter gradient.
final class LayerScaleBlockTests: XCTestCase {
    let tol: Float = 1e-4

    func load() throws -> (Block, ParameterList, SafeTensorsFile) {
        let f = try Fixtures.file("blocks/block_layer_scale.safetensors")
        let dim = Int(try XCTUnwrap(f.meta("dim"))), heads = Int(try XCTUnwrap(f.meta("heads")))
        var params = ParameterList()
        let block = Block(dim: dim, heads: heads, mlpHidden: 4 * dim, bias: .qv, eps: Float(f.meta("eps") ?? 1e-6),
                          layerScale: 0.1, name: "block", into: &params)
        try loadParameters(params, from: f, prefix: "param.", stripping: "block.")
        return (block, params, f)
    }

    func assertClose(_ a: Tensor, _ b: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        let err = relativeError(a, b)
        XCTAssertLessThanOrEqual(err, tol, "\(what): relative error \(err)", file: file, line: line)
    }

    func testForwardAndEveryGradientMatchPyTorch() throws {
        let (block, params, f) = try load()
        XCTAssertEqual(params.names.suffix(2), ["block.gamma_1", "block.gamma_2"], "BEiT's names and order")
        let bias = AttentionBias.perHead(try f.tensor("bias"))
        let (y, cache) = block.forward(try f.tensor("x"), attentionBias: bias)
        assertClose(y, try f.tensor("y"), "y")
        var dbias = Tensor(zeros: bias.values.shape)
        let dx = dbias.withMutablePointer { block.backward(try! f.tensor("dy"), cache: cache, attentionBiasGrad: $0) }
        assertClose(dx, try f.tensor("dx"), "dx")
        assertClose(dbias, try f.tensor("dbias"), "d bias")
        for (name, p) in params.entries {
            let key = "grad." + name.dropFirst("block.".count)
            assertClose(p.grad, try f.tensor(key), key)
        }
    }

    /// Layer scale and the bias must both matter, or the parity above would prove nothing.
    func testLayerScaleAndBiasChangeTheOutput() throws {
        let (block, _, f) = try load()
        let x = try f.tensor("x"), y = try f.tensor("y")
        XCTAssertGreaterThan(relativeError(block.forward(x).0, y), 1e-2, "without the bias")
        var params = ParameterList()
        let plain = Block(dim: 24, heads: 3, mlpHidden: 96, bias: .qv, eps: 1e-6, name: "block", into: &params)
        try loadParameters(params, from: f, prefix: "param.", stripping: "block.")
        XCTAssertNil(plain.gamma1)
        XCTAssertGreaterThan(relativeError(plain.forward(x, attentionBias: .perHead(try f.tensor("bias"))).0, y), 1e-2,
                             "without layer scale")
    }

    /// The inference path computes the training forward's numbers bit for bit.
    func testInferenceEqualsForward() throws {
        let (block, _, f) = try load()
        let saved = InferenceSplit.current
        InferenceSplit.current = .byOperation
        defer { InferenceSplit.current = saved }
        let bias = AttentionBias.perHead(try f.tensor("bias"))
        var x = try f.tensor("x")
        let y = block.forward(x, attentionBias: bias).0
        block.infer(&x, workspace: InferenceWorkspace(), attentionBias: bias)
        XCTAssertEqual(x, y)
    }
}
