import XCTest
import Tensor
import TestSupport

/// Each op's forward and backward against PyTorch (fixtures in Tests/Fixtures/ops).
/// Tolerance: relative error (max|Δ| / max|ref|) ≤ 1e-5 for every output and gradient.
final class OpParityTests: XCTestCase {
    let tol: Float = 1e-5

    func check(_ ours: Tensor, _ ref: Tensor, _ what: String, tol: Float? = nil,
               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(ours.count, ref.count, "\(what): element count", file: file, line: line)
        let err = relativeError(ours, ref)
        XCTAssertLessThanOrEqual(err, tol ?? self.tol, "\(what): relative error \(err)", file: file, line: line)
    }

    func testLinear() throws {
        let f = try Fixtures.file("ops/linear.safetensors")
        let x = try f.tensor("x"), w = try f.tensor("weight"), b = try f.tensor("bias"), dy = try f.tensor("dy")
        check(LinearOp.forward(x, weight: w, bias: b), try f.tensor("y"), "y")
        var dw = Tensor(zeros: w.shape), db = Tensor(zeros: b.shape)
        let dx = db.withMutablePointer { LinearOp.backward(dy, input: x, weight: w, weightGrad: &dw, biasGrad: $0) }
        check(dx, try f.tensor("dx"), "dx")
        check(dw, try f.tensor("dweight"), "dweight")
        check(db, try f.tensor("dbias"), "dbias")
    }

    func testLayerNormAffine() throws {
        let f = try Fixtures.file("ops/layernorm.safetensors")
        let x = try f.tensor("x"), w = try f.tensor("weight"), b = try f.tensor("bias"), dy = try f.tensor("dy")
        let eps = Float(f.meta("eps") ?? 1e-6)
        let (y, saved) = LayerNormOp.forward(x, weight: w, bias: b, eps: eps)
        check(y, try f.tensor("y"), "y")
        var dw = Tensor(zeros: w.shape), db = Tensor(zeros: b.shape)
        let dx = dw.withMutablePointer { gw in db.withMutablePointer { gb in
            LayerNormOp.backward(dy, input: x, saved: saved, weight: w, weightGrad: gw, biasGrad: gb)
        } }
        check(dx, try f.tensor("dx"), "dx")
        check(dw, try f.tensor("dweight"), "dweight")
        check(db, try f.tensor("dbias"), "dbias")
    }

    func testLayerNormWithoutAffine() throws {
        let f = try Fixtures.file("ops/layernorm_noaffine.safetensors")
        let x = try f.tensor("x"), dy = try f.tensor("dy")
        let (y, saved) = LayerNormOp.forward(x, weight: nil, bias: nil, eps: Float(f.meta("eps") ?? 1e-6))
        check(y, try f.tensor("y"), "y")
        let dx = LayerNormOp.backward(dy, input: x, saved: saved, weight: nil, weightGrad: nil, biasGrad: nil)
        check(dx, try f.tensor("dx"), "dx")
    }

    func testGELU() throws {
        let f = try Fixtures.file("ops/gelu.safetensors")
        let x = try f.tensor("x"), dy = try f.tensor("dy")
        check(GELUOp.forward(x), try f.tensor("y"), "y")
        check(GELUOp.backward(dy, input: x), try f.tensor("dx"), "dx")
    }

    func testSoftmax() throws {
        let f = try Fixtures.file("ops/softmax.safetensors")
        let x = try f.tensor("x"), dy = try f.tensor("dy")
        let y = SoftmaxOp.forward(x)
        check(y, try f.tensor("y"), "y")
        check(SoftmaxOp.backward(dy, output: y), try f.tensor("dx"), "dx")
    }

    func testSelfAttention() throws {
        let f = try Fixtures.file("ops/attention_self.safetensors")
        let qkv = try f.tensor("qkv"), dy = try f.tensor("dy")
        let heads = Int(f.meta("heads") ?? 4)
        let (out, saved) = AttentionOp.selfForward(qkv: qkv, heads: heads)
        check(out, try f.tensor("out"), "out")
        check(AttentionOp.selfBackward(dy, qkv: qkv, saved: saved, heads: heads), try f.tensor("dqkv"), "dqkv")
    }

    func testCrossAttention() throws {
        let f = try Fixtures.file("ops/attention_cross.safetensors")
        let q = try f.tensor("q"), kv = try f.tensor("kv"), dy = try f.tensor("dy")
        let heads = Int(f.meta("heads") ?? 4)
        let (out, saved) = AttentionOp.crossForward(q: q, kv: kv, heads: heads)
        check(out, try f.tensor("out"), "out")
        let (dq, dkv) = AttentionOp.crossBackward(dy, q: q, kv: kv, saved: saved, heads: heads)
        check(dq, try f.tensor("dq"), "dq")
        check(dkv, try f.tensor("dkv"), "dkv")
    }

    func testGatherAndScatter() throws {
        let f = try Fixtures.file("ops/gather_tokens.safetensors")
        let x = try f.tensor("x"), dy = try f.tensor("dy")
        let (shape, flat) = try f.integers("index")
        let index = (0..<shape[0]).map { Array(flat[($0 * shape[1])..<(($0 + 1) * shape[1])]) }
        check(TokenOps.gather(x, index: index), try f.tensor("y"), "y", tol: 0)
        check(TokenOps.scatterAdd(dy, index: index, tokens: x.shape[1]), try f.tensor("dx"), "dx", tol: 0)
    }

    func testMeanOverTokens() throws {
        let f = try Fixtures.file("ops/mean_tokens.safetensors")
        let x = try f.tensor("x"), dy = try f.tensor("dy")
        check(TokenOps.mean(x), try f.tensor("y"), "y")
        check(TokenOps.meanBackward(dy, tokens: x.shape[1]), try f.tensor("dx"), "dx")
    }

    func testWeightedMSE() throws {
        let f = try Fixtures.file("ops/mse_weighted.safetensors")
        let pred = try f.tensor("pred"), target = try f.tensor("target"), w = try f.tensor("weight")
        let normalizer = Float(try XCTUnwrap(f.meta("normalizer")))
        let (loss, grad) = WeightedMSE.forwardBackward(prediction: pred, target: target, weight: w.data, normalizer: normalizer)
        check(Tensor(shape: [1], data: [loss]), try f.tensor("loss"), "loss")
        check(grad, try f.tensor("dpred"), "dpred")
    }

    func testResidualAddIsElementwise() {
        let a = Tensor(shape: [2, 3], data: [1, 2, 3, 4, 5, 6]), b = Tensor(shape: [2, 3], data: [6, 5, 4, 3, 2, 1])
        XCTAssertEqual((a + b).data, [7, 7, 7, 7, 7, 7])
    }
}
