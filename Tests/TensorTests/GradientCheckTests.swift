import XCTest
import Tensor

/// Finite-difference checks of backward passes, independent of the PyTorch fixtures.
final class GradientCheckTests: XCTestCase {
    /// Central differences in Double on L = Σ dy ⊙ f(x), compared with the analytic dx.
    func numericGradient(_ x: Tensor, _ dy: Tensor, h: Float = 1e-2, _ f: (Tensor) -> Tensor) -> [Double] {
        (0..<x.count).map { i in
            var xp = x, xm = x
            xp.data[i] += h; xm.data[i] -= h
            let fp = f(xp), fm = f(xm)
            var s = 0.0
            for j in 0..<dy.count { s += Double(dy.data[j]) * (Double(fp.data[j]) - Double(fm.data[j])) }
            return s / (2 * Double(h))
        }
    }

    func random(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        var rng = SeededRandom(seed: seed)
        return Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.normal() * scale })
    }

    func assertClose(_ analytic: Tensor, _ numeric: [Double], tol: Double, file: StaticString = #filePath, line: UInt = #line) {
        let maxRef = numeric.map(abs).max() ?? 1
        let maxDiff = zip(analytic.data, numeric).map { abs(Double($0) - $1) }.max() ?? 0
        XCTAssertLessThan(maxDiff / maxRef, tol, "relative error \(maxDiff / maxRef)", file: file, line: line)
    }

    func testCrossAttentionInputGradient() {
        let q = random([1, 3, 8], seed: 1), kv = random([1, 4, 16], seed: 2), dy = random([1, 3, 8], seed: 3)
        let (_, saved) = AttentionOp.crossForward(q: q, kv: kv, heads: 2)
        let (dq, dkv) = AttentionOp.crossBackward(dy, q: q, kv: kv, saved: saved, heads: 2)
        assertClose(dq, numericGradient(q, dy) { AttentionOp.crossForward(q: $0, kv: kv, heads: 2).0 }, tol: 2e-3)
        assertClose(dkv, numericGradient(kv, dy) { AttentionOp.crossForward(q: q, kv: $0, heads: 2).0 }, tol: 2e-3)
    }

    func testLayerNormInputGradient() {
        let x = random([3, 10], seed: 4), w = random([10], seed: 5), dy = random([3, 10], seed: 6)
        let (_, saved) = LayerNormOp.forward(x, weight: w, bias: nil, eps: 1e-5)
        let dx = LayerNormOp.backward(dy, input: x, saved: saved, weight: w, weightGrad: nil, biasGrad: nil)
        assertClose(dx, numericGradient(x, dy) { LayerNormOp.forward($0, weight: w, bias: nil, eps: 1e-5).0 }, tol: 2e-3)
    }
}
