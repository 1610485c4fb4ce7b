import XCTest
import Tensor
import ViT
import TestSupport

/// One transformer block, forward and backward, against PyTorch: timm's `Block` (qkv bias) and a
/// BootMAE block (q and v biases only). Tolerance 1e-4 relative for outputs and every gradient.
final class BlockParityTests: XCTestCase {
    func checkBlock(_ fixture: String, bias: QKVBias) throws {
        let f = try Fixtures.file(fixture)
        let dim = Int(try XCTUnwrap(f.meta("dim"))), heads = Int(try XCTUnwrap(f.meta("heads")))
        var params = ParameterList()
        let block = Block(dim: dim, heads: heads, mlpHidden: Int(Double(dim) * (f.meta("mlp_ratio") ?? 4)),
                          bias: bias, eps: Float(f.meta("eps") ?? 1e-6), name: "block", into: &params)
        try loadParameters(params, from: f, prefix: "param.", stripping: "block.")
        let (y, cache) = block.forward(try f.tensor("x"))
        XCTAssertLessThanOrEqual(relativeError(y, try f.tensor("y")), 1e-4, "y")
        let dx = block.backward(try f.tensor("dy"), cache: cache)
        XCTAssertLessThanOrEqual(relativeError(dx, try f.tensor("dx")), 1e-4, "dx")
        for (name, p) in params.entries {
            let key = "grad." + name.dropFirst("block.".count)
            let err = relativeError(p.grad, try f.tensor(key))
            XCTAssertLessThanOrEqual(err, 1e-4, "\(key): \(err)")
        }
    }

    func testTimmBlockWithQKVBias() throws { try checkBlock("blocks/block_qkv.safetensors", bias: .qkv) }
    func testBootMAEBlockWithQAndVBiases() throws { try checkBlock("blocks/block_qv.safetensors", bias: .qv) }
}
