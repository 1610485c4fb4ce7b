import XCTest
import Tensor
import TestSupport

/// Self-attention with an additive logit bias (BEiT relative positions, LoMaR's iRPE term) against
/// PyTorch (Tests/Fixtures/ops/attention_bias_*), by finite differences, and against the unbiased
/// kernels. Tolerance: relative error ≤ 1e-5 for the output and every gradient.
final class AttentionBiasTests: XCTestCase {
    let tol: Float = 1e-5

    struct Case {
        let qkv: Tensor, bias: AttentionBias, dy: Tensor, heads: Int
        let out: Tensor, dqkv: Tensor, dbias: Tensor
    }

    /// `layout` builds the bias from the stored values (its strides are what is under test).
    func load(_ name: String, _ layout: (Tensor) -> AttentionBias) throws -> Case {
        let f = try Fixtures.file("ops/attention_bias_\(name).safetensors")
        return Case(qkv: try f.tensor("qkv"), bias: layout(try f.tensor("bias")), dy: try f.tensor("dy"),
                    heads: Int(try XCTUnwrap(f.meta("heads"))),
                    out: try f.tensor("out"), dqkv: try f.tensor("dqkv"), dbias: try f.tensor("dbias"))
    }

    var cases: [(String, Case)] {
        get throws {
            [("per head", try load("per_head") { .perHead($0) }),
             ("per image and head", try load("per_image_head") { .perImageAndHead($0) }),
             // (B, N, N) shared by the heads: head stride 0.
             ("per image", try load("per_image") { AttentionBias(values: $0, imageStride: 49, headStride: 0) })]
        }
    }

    func check(_ ours: Tensor, _ ref: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(ours.count, ref.count, "\(what): element count", file: file, line: line)
        let err = relativeError(ours, ref)
        XCTAssertLessThanOrEqual(err, tol, "\(what): relative error \(err)", file: file, line: line)
    }

    func backward(_ c: Case, _ saved: AttentionOp.Saved) -> (dqkv: Tensor, dbias: Tensor) {
        var dbias = Tensor(zeros: c.bias.values.shape)
        let dqkv = dbias.withMutablePointer { AttentionOp.selfBackward(c.dy, qkv: c.qkv, saved: saved, heads: c.heads, biasGrad: $0) }
        return (dqkv, dbias)
    }

    func testMatchesPyTorchForEveryLayout() throws {
        for (name, c) in try cases {
            let (out, saved) = AttentionOp.selfForward(qkv: c.qkv, heads: c.heads, bias: c.bias)
            check(out, c.out, "\(name) out")
            let (dqkv, dbias) = backward(c, saved)
            check(dqkv, c.dqkv, "\(name) dqkv")
            check(dbias, c.dbias, "\(name) dbias")
            // Without a bias gradient requested, dqkv is the same.
            XCTAssertEqual(AttentionOp.selfBackward(c.dy, qkv: c.qkv, saved: saved, heads: c.heads), dqkv, name)
            XCTAssertEqual(AttentionOp.selfInfer(qkv: c.qkv, heads: c.heads, bias: c.bias), out, "\(name) infer")
        }
    }

    /// The bias must matter: the unbiased output is far from the reference.
    func testTheBiasIsNotIgnored() throws {
        for (name, c) in try cases {
            XCTAssertGreaterThan(relativeError(AttentionOp.selfForward(qkv: c.qkv, heads: c.heads).0, c.out), 1e-2, name)
        }
    }

    /// d bias accumulates (+=), so a bias shared by several blocks collects all of their gradients.
    func testBiasGradientAccumulates() throws {
        let c = try load("per_head") { .perHead($0) }
        let saved = AttentionOp.selfForward(qkv: c.qkv, heads: c.heads, bias: c.bias).1
        var dbias = Tensor(zeros: c.bias.values.shape)
        for _ in 0..<2 {
            _ = dbias.withMutablePointer { AttentionOp.selfBackward(c.dy, qkv: c.qkv, saved: saved, heads: c.heads, biasGrad: $0) }
        }
        check(dbias, Tensor(shape: c.dbias.shape, data: c.dbias.data.map { 2 * $0 }), "twice d bias")
    }

    /// A zero bias changes no bit of the output or of dqkv (x + 0 = x; only the sign of a zero
    /// logit could change, and exp ignores it).
    func testZeroBiasIsBitIdenticalToNoBias() throws {
        let c = try load("per_image_head") { .perImageAndHead($0) }
        let zero = AttentionBias.perImageAndHead(Tensor(zeros: c.bias.values.shape))
        let (plain, plainSaved) = AttentionOp.selfForward(qkv: c.qkv, heads: c.heads)
        let (biased, biasedSaved) = AttentionOp.selfForward(qkv: c.qkv, heads: c.heads, bias: zero)
        XCTAssertEqual(biased, plain)
        XCTAssertEqual(AttentionOp.selfBackward(c.dy, qkv: c.qkv, saved: biasedSaved, heads: c.heads),
                       AttentionOp.selfBackward(c.dy, qkv: c.qkv, saved: plainSaved, heads: c.heads))
    }

    /// Shared biases sum their pairs' gradients in pair order after the parallel loop: the result
    /// is the same bits with one worker or two.
    func testSharedBiasGradientDoesNotDependOnWorkers() throws {
        let saved = Parallel.workers
        defer { Parallel.workers = saved }
        for (name, c) in try cases {
            var results: [[Float]] = []
            for workers in [1, 2] {
                Parallel.workers = workers
                let s = AttentionOp.selfForward(qkv: c.qkv, heads: c.heads, bias: c.bias).1
                results.append(backward(c, s).dbias.data)
            }
            XCTAssertEqual(results[0], results[1], name)
        }
    }

    /// Central differences in Double on L = Σ dy ⊙ out(bias) for the shared layouts, compared
    /// with d bias relative to the numeric gradient's largest entry.
    func testBiasGradientByFiniteDifferences() throws {
        for (name, c) in try cases {
            let saved = AttentionOp.selfForward(qkv: c.qkv, heads: c.heads, bias: c.bias).1
            let analytic = backward(c, saved).dbias
            let h: Float = 1e-2
            let numeric: [Double] = (0..<c.bias.values.count).map { i in
                func loss(_ delta: Float) -> Double {
                    var b = c.bias
                    b.values.data[i] += delta
                    let out = AttentionOp.selfForward(qkv: c.qkv, heads: c.heads, bias: b).0
                    return zip(c.dy.data, out.data).reduce(0) { $0 + Double($1.0) * Double($1.1) }
                }
                return (loss(h) - loss(-h)) / (2 * Double(h))
            }
            let scale = numeric.map(abs).max() ?? 1
            let err = zip(analytic.data, numeric).map { abs(Double($0) - $1) }.max()! / scale
            XCTAssertLessThan(err, 5e-4, "\(name): relative error \(err)")
        }
    }

    func testLayoutConstructorsSetTheStrides() {
        let b = AttentionBias.perHead(Tensor(zeros: [2, 7, 7]))
        XCTAssertEqual(b.imageStride, 0)
        XCTAssertEqual(b.headStride, 49)
        let c = AttentionBias.perImageAndHead(Tensor(zeros: [2, 3, 7, 7]))
        XCTAssertEqual(c.imageStride, 147)
        XCTAssertEqual(c.headStride, 49)
    }
}
