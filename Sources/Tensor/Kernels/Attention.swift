/// Scaled dot-product attention, multi-head, with q, k and v read in place from the projection
/// outputs (no permute copies): head h of a token lives in columns [h·hd, (h+1)·hd) of its block.
///
/// Self-attention reads one (B, N, 3A) tensor laid out [q | k | v] (timm / BootMAE `qkv`);
/// cross-attention reads q (B, Nq, A) and kv (B, Nk, 2A) laid out [k | v] (BootMAE `c_attn.kv`).
/// Per (batch, head): P = softmax(q·kᵀ·hd^−½), out = P·v, written to (B, Nq, A).
public enum AttentionOp {
    /// Where q, k and v live: base pointers, row stride and the token counts.
    @usableFromInline
    struct Operands {
        var q: UnsafePointer<Float>, qRow: Int
        var k: UnsafePointer<Float>, kRow: Int
        var v: UnsafePointer<Float>, vRow: Int
        var batch: Int, heads: Int, headDim: Int, queries: Int, keys: Int
        var width: Int { heads * headDim }
        var scale: Float { 1 / Float(headDim).squareRoot() }
    }

    /// The attention probabilities, kept for backward: (B, H, Nq, Nk).
    public struct Saved: Sendable { public var probs: Tensor }

    // MARK: Tensor-level entry points

    public static func selfForward(qkv: Tensor, heads: Int) -> (Tensor, Saved) {
        let (b, n, a) = (qkv.shape[0], qkv.shape[1], qkv.shape[2] / 3)
        precondition(qkv.shape[2] == 3 * a && a % heads == 0, "self-attention: qkv \(qkv.shape), heads \(heads)")
        return qkv.withPointer { p in
            forward(Operands(q: p, qRow: 3 * a, k: p + a, kRow: 3 * a, v: p + 2 * a, vRow: 3 * a,
                             batch: b, heads: heads, headDim: a / heads, queries: n, keys: n))
        }
    }

    /// Returns dqkv (B, N, 3A).
    public static func selfBackward(_ dout: Tensor, qkv: Tensor, saved: Saved, heads: Int) -> Tensor {
        let (b, n, a) = (qkv.shape[0], qkv.shape[1], qkv.shape[2] / 3)
        var dqkv = Tensor(zeros: qkv.shape)
        qkv.withPointer { p in dqkv.withMutablePointer { g in
            backward(dout, saved: saved,
                     Operands(q: p, qRow: 3 * a, k: p + a, kRow: 3 * a, v: p + 2 * a, vRow: 3 * a,
                              batch: b, heads: heads, headDim: a / heads, queries: n, keys: n),
                     dq: g, dk: g + a, dv: g + 2 * a)
        } }
        return dqkv
    }

    public static func crossForward(q: Tensor, kv: Tensor, heads: Int) -> (Tensor, Saved) {
        let (b, nq, a) = (q.shape[0], q.shape[1], q.shape[2])
        let nk = kv.shape[1]
        precondition(kv.shape == [b, nk, 2 * a] && a % heads == 0, "cross-attention: q \(q.shape), kv \(kv.shape)")
        return q.withPointer { qp in kv.withPointer { kvp in
            forward(Operands(q: qp, qRow: a, k: kvp, kRow: 2 * a, v: kvp + a, vRow: 2 * a,
                             batch: b, heads: heads, headDim: a / heads, queries: nq, keys: nk))
        } }
    }

    /// Returns (dq, dkv).
    public static func crossBackward(_ dout: Tensor, q: Tensor, kv: Tensor, saved: Saved, heads: Int) -> (Tensor, Tensor) {
        let (b, nq, a) = (q.shape[0], q.shape[1], q.shape[2])
        let nk = kv.shape[1]
        var dq = Tensor(zeros: q.shape), dkv = Tensor(zeros: kv.shape)
        q.withPointer { qp in kv.withPointer { kvp in
            dq.withMutablePointer { gq in dkv.withMutablePointer { gkv in
                backward(dout, saved: saved,
                         Operands(q: qp, qRow: a, k: kvp, kRow: 2 * a, v: kvp + a, vRow: 2 * a,
                                  batch: b, heads: heads, headDim: a / heads, queries: nq, keys: nk),
                         dq: gq, dk: gkv, dv: gkv + a)
            } }
        } }
        return (dq, dkv)
    }

    // MARK: Kernels

    @usableFromInline
    static func forward(_ o: Operands) -> (Tensor, Saved) {
        let (hd, a, nq, nk) = (o.headDim, o.width, o.queries, o.keys)
        var probs = Tensor(zeros: [o.batch, o.heads, nq, nk])
        let out = Tensor(shape: [o.batch, nq, a]) { outp in
            probs.withMutablePointer { pp in
                // Per-(batch, head) GEMMs are too small for BLAS threads: split the batch instead.
                Parallel.forEachChunk(o.batch) { batches in for b in batches {
                    for h in 0..<o.heads {
                        let qb = o.q + b * nq * o.qRow + h * hd
                        let kb = o.k + b * nk * o.kRow + h * hd
                        let vb = o.v + b * nk * o.vRow + h * hd
                        let pb = pp + (b * o.heads + h) * nq * nk
                        // S = scale · q kᵀ, then row softmax, then out = P v.
                        BLAS.gemm(transB: true, m: nq, n: nk, k: hd, alpha: o.scale,
                                  a: qb, lda: o.qRow, b: kb, ldb: o.kRow, c: pb, ldc: nk)
                        SoftmaxOp.forwardRows(pb, rows: nq, n: nk)
                        BLAS.gemm(m: nq, n: hd, k: nk, a: pb, lda: nk, b: vb, ldb: o.vRow,
                                  c: outp + b * nq * a + h * hd, ldc: a)
                    }
                } }
            }
        }
        return (out, Saved(probs: probs))
    }

    /// Writes (overwrites) dq, dk, dv at the same strides as q, k, v.
    @usableFromInline
    static func backward(_ dout: Tensor, saved: Saved, _ o: Operands,
                         dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>) {
        let (hd, a, nq, nk) = (o.headDim, o.width, o.queries, o.keys)
        dout.withPointer { gop in saved.probs.withPointer { pp in
          Parallel.forEachChunk(o.batch) { batches in
            let dpp = UnsafeMutablePointer<Float>.allocate(capacity: nq * nk)
            defer { dpp.deallocate() }
            for b in batches {
                for h in 0..<o.heads {
                    let qb = o.q + b * nq * o.qRow + h * hd
                    let kb = o.k + b * nk * o.kRow + h * hd
                    let vb = o.v + b * nk * o.vRow + h * hd
                    let pb = pp + (b * o.heads + h) * nq * nk
                    let gob = gop + b * nq * a + h * hd
                    // dV = Pᵀ dO ; dP = dO Vᵀ ; dS = softmax'(dP) ; dQ = s·dS K ; dK = s·dSᵀ Q
                    BLAS.gemm(transA: true, m: nk, n: hd, k: nq, a: pb, lda: nk, b: gob, ldb: a,
                              c: dv + b * nk * o.vRow + h * hd, ldc: o.vRow)
                    BLAS.gemm(transB: true, m: nq, n: nk, k: hd, a: gob, lda: a, b: vb, ldb: o.vRow,
                              c: dpp, ldc: nk)
                    SoftmaxOp.backwardRows(pb, dpp, rows: nq, n: nk)
                    BLAS.gemm(m: nq, n: hd, k: nk, alpha: o.scale, a: dpp, lda: nk, b: kb, ldb: o.kRow,
                              c: dq + b * nq * o.qRow + h * hd, ldc: o.qRow)
                    BLAS.gemm(transA: true, m: nk, n: hd, k: nq, alpha: o.scale, a: dpp, lda: nk, b: qb, ldb: o.qRow,
                              c: dk + b * nk * o.kRow + h * hd, ldc: o.kRow)
                }
            }
          }
        } }
    }
}
