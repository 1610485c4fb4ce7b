import CKernels
import Foundation
import XCTest
@testable import Tensor
import TestSupport

/// The fused AVX-512 attention forward (`ck_attention_forward`, taken by `AttentionOp.attend` on our
/// AVX-512 GEMM path) against two references:
/// 1. the two-GEMM path it replaces (same process, `fusedKernelEnabled = false`): outputs and saved
///    probabilities must be **bit-identical**, since the kernel repeats that path's operations in order;
/// 2. attention computed here in doubles (naive loops): |out − ref| ≤ 1e-5·(1 + |ref|) and
///    |P − ref| ≤ 1e-6 — the float path's rounding is ~1e-7 relative; a wrong key, lane mask,
///    row block or stride gives errors of order 0.1.
/// Shapes: keys 1, 5, 13, 15, 16, 17, 31, 50, 64 (every chunk count and tail), head width 16 and 32,
/// query rows that split into blocks of every height, self-attention with and without a bias, and
/// cross-attention (50 queries, 13 keys). Shapes outside the kernel (65 keys, head width 64) must
/// fall back to the GEMM path and still match the double reference.
final class FusedAttentionTests: XCTestCase {
    override func setUpWithError() throws {
        guard case .own(.avx512) = BLAS.path, ck_attention_supported(50, 32) else {
            throw XCTSkip("the fused attention kernel needs AVX-512 and our AVX-512 GEMM path")
        }
    }

    override func tearDown() { AttentionOp.fusedKernelEnabled = true }

    func random(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        var rng = SeededRandom(seed: seed)
        return Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in scale * rng.normal() })
    }

    /// softmax(q·kᵀ/√hd + bias)·v in doubles; q (B, Nq, ·) at qRow, k/v (B, Nk, ·) at kvRow.
    func reference(q: [Float], qRow: Int, k: [Float], v: [Float], kvRow: Int, batch: Int, heads: Int, hd: Int,
                   nq: Int, nk: Int, bias: [Float]?) -> (out: [Double], probs: [Double]) {
        var out = [Double](repeating: 0, count: batch * nq * heads * hd)
        var probs = [Double](repeating: 0, count: batch * heads * nq * nk)
        let scale = 1 / Double(hd).squareRoot()
        for b in 0..<batch {
            for h in 0..<heads {
                for i in 0..<nq {
                    var s = [Double](repeating: 0, count: nk)
                    for j in 0..<nk {
                        var dot = 0.0
                        for d in 0..<hd {
                            dot += Double(q[(b * nq + i) * qRow + h * hd + d]) * Double(k[(b * nk + j) * kvRow + h * hd + d])
                        }
                        s[j] = dot * scale + (bias.map { Double($0[((b * heads + h) * nq + i) * nk + j]) } ?? 0)
                    }
                    let m = s.max()!
                    let e = s.map { Foundation.exp($0 - m) }
                    let total = e.reduce(0, +)
                    for j in 0..<nk {
                        let p = e[j] / total
                        probs[((b * heads + h) * nq + i) * nk + j] = p
                        for d in 0..<hd { out[(b * nq + i) * heads * hd + h * hd + d] += p * Double(v[(b * nk + j) * kvRow + h * hd + d]) }
                    }
                }
            }
        }
        return (out, probs)
    }

    /// Every element's bits equal; on failure, how many differ and the first index (not both arrays).
    func assertSameBits(_ x: Tensor, _ y: Tensor, _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(x.shape, y.shape, label, file: file, line: line)
        let differing = zip(x.data, y.data).enumerated().filter { $0.element.0.bitPattern != $0.element.1.bitPattern }.map(\.offset)
        XCTAssertTrue(differing.isEmpty, "\(label): \(differing.count) of \(x.count) elements differ, first at \(differing.first ?? -1)",
                      file: file, line: line)
    }

    func checkAgainstDoubles(_ out: Tensor, _ probs: Tensor, _ ref: (out: [Double], probs: [Double]), _ label: String) {
        var worstOut = 0.0, worstP = 0.0
        for (x, r) in zip(out.data, ref.out) { worstOut = max(worstOut, abs(Double(x) - r) / (1 + abs(r))) }
        for (x, r) in zip(probs.data, ref.probs) { worstP = max(worstP, abs(Double(x) - r)) }
        XCTAssertLessThanOrEqual(worstOut, 1e-5, "\(label): output vs doubles")
        XCTAssertLessThanOrEqual(worstP, 1e-6, "\(label): probabilities vs doubles")
    }

    /// Self-attention forward with the fused kernel and with the GEMM path: identical bits, and
    /// both match the double reference.
    func checkSelf(batch: Int, tokens n: Int, heads: Int, hd: Int, withBias: Bool) {
        let a = heads * hd, label = "self b\(batch) n\(n) h\(heads) hd\(hd)\(withBias ? " bias" : "")"
        let qkv = random([batch, n, 3 * a], seed: UInt64(n * 100 + hd), scale: 1.5)
        let bias = withBias ? AttentionBias(values: random([batch, heads, n, n], seed: 9), imageStride: heads * n * n, headStride: n * n) : nil
        AttentionOp.fusedKernelEnabled = true
        let (fusedOut, fusedSaved) = AttentionOp.selfForward(qkv: qkv, heads: heads, bias: bias)
        let fusedInfer = AttentionOp.selfInfer(qkv: qkv, heads: heads, bias: bias)
        AttentionOp.fusedKernelEnabled = false
        let (gemmOut, gemmSaved) = AttentionOp.selfForward(qkv: qkv, heads: heads, bias: bias)
        assertSameBits(fusedOut, gemmOut, "\(label): output")
        assertSameBits(fusedSaved.probs, gemmSaved.probs, "\(label): probabilities")
        assertSameBits(fusedInfer, gemmOut, "\(label): inference output")
        let ref = reference(q: qkv.data, qRow: 3 * a, k: Array(qkv.data.dropFirst(a)), v: Array(qkv.data.dropFirst(2 * a)), kvRow: 3 * a,
                            batch: batch, heads: heads, hd: hd, nq: n, nk: n, bias: bias?.values.data)
        checkAgainstDoubles(fusedOut, fusedSaved.probs, ref, label)
    }

    func testSelfAttentionMatchesTheGEMMPathBitForBitAndTheDoubleReference() {
        for n in [1, 5, 13, 15, 16, 17, 31, 50, 64] {
            for hd in [16, 32] { checkSelf(batch: 2, tokens: n, heads: 3, hd: hd, withBias: false) }
        }
    }

    func testSelfAttentionWithABias() {
        for n in [13, 50] { checkSelf(batch: 2, tokens: n, heads: 2, hd: 32, withBias: true) }
    }

    func testCrossAttention() {
        let (batch, nq, nk, heads, hd) = (2, 50, 13, 4, 32)
        let a = heads * hd
        let q = random([batch, nq, a], seed: 3), kv = random([batch, nk, 2 * a], seed: 4)
        AttentionOp.fusedKernelEnabled = true
        let (fusedOut, fusedSaved) = AttentionOp.crossForward(q: q, kv: kv, heads: heads)
        AttentionOp.fusedKernelEnabled = false
        let (gemmOut, gemmSaved) = AttentionOp.crossForward(q: q, kv: kv, heads: heads)
        assertSameBits(fusedOut, gemmOut, "cross: output")
        assertSameBits(fusedSaved.probs, gemmSaved.probs, "cross: probabilities")
        let ref = reference(q: q.data, qRow: a, k: kv.data, v: Array(kv.data.dropFirst(a)), kvRow: 2 * a,
                            batch: batch, heads: heads, hd: hd, nq: nq, nk: nk, bias: nil)
        checkAgainstDoubles(fusedOut, fusedSaved.probs, ref, "cross")
    }

    /// Outside the kernel's shapes `attend` keeps the GEMM path (and stays correct).
    func testShapesOutsideTheKernelFallBack() {
        XCTAssertFalse(ck_attention_supported(65, 32))
        XCTAssertFalse(ck_attention_supported(50, 64))
        XCTAssertFalse(ck_attention_supported(50, 24))
        for (n, hd) in [(65, 32), (20, 64)] {
            let heads = 2, a = heads * hd
            let qkv = random([1, n, 3 * a], seed: 5)
            let (out, saved) = AttentionOp.selfForward(qkv: qkv, heads: heads)
            let ref = reference(q: qkv.data, qRow: 3 * a, k: Array(qkv.data.dropFirst(a)), v: Array(qkv.data.dropFirst(2 * a)),
                                kvRow: 3 * a, batch: 1, heads: heads, hd: hd, nq: n, nk: n, bias: nil)
            checkAgainstDoubles(out, saved.probs, ref, "fallback n\(n) hd\(hd)")
        }
    }
}
