import CKernels
import Foundation
import XCTest
@testable import Tensor
import TestSupport

/// Attention's products in bf16 (`AttentionOp.attendBF16`, CKernels' attention_bf16.c), taken by
/// inference on bf16 weights, against attention computed here in doubles on the unrounded inputs.
///
/// Bound, per output element (first order in the unit roundoff u = 2⁻⁹ of bf16, and 1.5× for the
/// second-order terms, fp32 sums and the exp polynomial): each logit s_ij = scale·Σ_d q_id·k_jd errs
/// by δ_ij ≤ 2⁻⁸·scale·Σ_d |q_id·k_jd| (two rounded factors); softmax turns that into
/// |Δp_ij| ≤ 2·p_ij·max_j δ_ij; out_ic = Σ_j p_ij·v_jc with P and v rounded adds 2⁻⁸·Σ_j p_ij·|v_jc|. So
///   |out_ic − ref_ic| ≤ 1.5·(2·max_j δ_ij + 2⁻⁸)·Σ_j p_ij·|v_jc| + 1e-6.
/// A wrong key, pair, panel, stride or edge tile gives errors of the order of the values themselves.
/// Shapes: ViT-B's 197 tokens at head width 64, tokens 1, 17, 50 (edge panels of every group count,
/// K padding) at widths 16 and 32, with and without a logit bias; on AVX512-BF16 and the AMX C model.
final class BF16AttentionTests: XCTestCase {
    var kernels: [InferenceKernel] { [.bf16AVX512, .bf16AMX, .bf16AMXModel].filter(\.runsHere) }

    func random(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var rng = SeededRandom(seed: seed)
        return (0..<count).map { _ in scale * rng.normal() }
    }

    func testBF16ProductsStayWithinTheRoundingBound() throws {
        for kernel in kernels {
            for (tokens, heads, hd, withBias) in [(197, 2, 64, false), (50, 3, 32, true), (17, 2, 16, false), (1, 2, 32, true), (33, 1, 64, true)]
                where kernel != .bf16AMXModel || tokens <= 50 {
                let batch = 2, width = heads * hd
                let qkv = random(batch * tokens * 3 * width, seed: UInt64(tokens * 100 + hd), scale: 1.5)
                let biasValues = withBias ? random(heads * tokens * tokens, seed: 7) : nil
                let bias = biasValues.map { AttentionBias.perHead(Tensor(shape: [heads, tokens, tokens], data: $0)) }
                var out = [Float](repeating: .nan, count: batch * tokens * width)
                qkv.withUnsafeBufferPointer { p in
                    AttentionOp.selfInfer(qkv: p.baseAddress!, batch: batch, tokens: tokens, width: width, heads: heads,
                                          bias: bias, kernel: kernel, into: &out)
                }
                let scale = 1 / Double(hd).squareRoot()
                var worst = 0.0
                for b in 0..<batch { for h in 0..<heads { for i in 0..<tokens {
                    let row = { (t: Int, part: Int) in (b * tokens + t) * 3 * width + part * width + h * hd }
                    var logits = [Double](repeating: 0, count: tokens), delta = 0.0
                    for j in 0..<tokens {
                        var (s, magnitude) = (0.0, 0.0)
                        for d in 0..<hd {
                            let product = Double(qkv[row(i, 0) + d]) * Double(qkv[row(j, 1) + d])
                            s += product
                            magnitude += abs(product)
                        }
                        logits[j] = scale * s + (biasValues.map { Double($0[(h * tokens + i) * tokens + j]) } ?? 0)
                        delta = max(delta, 0x1p-8 * scale * magnitude)
                    }
                    let top = logits.max()!
                    let e = logits.map { exp($0 - top) }, sum = e.reduce(0, +)
                    let p = e.map { $0 / sum }
                    for c in 0..<hd {
                        var (ref, spread) = (0.0, 0.0)
                        for j in 0..<tokens {
                            let v = Double(qkv[row(j, 2) + c])
                            ref += p[j] * v
                            spread += p[j] * abs(v)
                        }
                        let got = Double(out[(b * tokens + i) * width + h * hd + c])
                        let bound = 1.5 * (2 * delta + 0x1p-8) * spread + 1e-6
                        worst = max(worst, abs(got - ref) / bound)
                        XCTAssertLessThanOrEqual(abs(got - ref), bound, "\(kernel) tokens \(tokens) hd \(hd) bias \(withBias) at (\(b), \(h), \(i), \(c))")
                    }
                } } }
                // The bound is not vacuous: bf16 operands move the result by a visible part of it.
                XCTAssertGreaterThan(worst, 0.01, "\(kernel) tokens \(tokens) hd \(hd): as close as fp32, were the operands rounded?")
            }
        }
    }

    /// With `bf16ProductsEnabled` off the same call gives the fp32 path's bits.
    func testSwitchOffGivesTheFP32Path() throws {
        let kernel = try XCTUnwrap(kernels.first)
        defer { AttentionOp.bf16ProductsEnabled = true }
        let (batch, tokens, heads, hd) = (2, 20, 2, 32)
        let width = heads * hd, qkv = random(batch * tokens * 3 * width, seed: 3)
        var fp32 = [Float](repeating: .nan, count: batch * tokens * width), switchedOff = fp32
        qkv.withUnsafeBufferPointer { p in
            AttentionOp.selfInfer(qkv: p.baseAddress!, batch: batch, tokens: tokens, width: width, heads: heads, into: &fp32)
            AttentionOp.bf16ProductsEnabled = false
            AttentionOp.selfInfer(qkv: p.baseAddress!, batch: batch, tokens: tokens, width: width, heads: heads, kernel: kernel,
                                  into: &switchedOff)
        }
        XCTAssertEqual(fp32.map(\.bitPattern), switchedOff.map(\.bitPattern))
    }
}
