import Tensor

/// Contextual relative position encoding on keys, iRPE's product method shared by the heads, as
/// LoMaR's attention adds it (junchen14/LoMaR vision_transformer_irpe.py `Attention`: logits =
/// (q·kᵀ)·hd^−½ + rpe_k(q); irpe.py `iRPE.forward_rpe_transpose`, mode 'contextual'):
///
///   bias[b, h, i, j] = q_{b,h,i} · r_{bucket(i, j)}
///
/// with q unscaled, r the columns of `lookup_table_weight` (1, hd, 50), zero-initialised, and
/// `RelativePositionBuckets` mapping each (query, key) pair to one of 50 buckets. The table is
/// one (hd × 50) matrix, so every head computes its (L × 50) lookup q_h·W with one GEMM over all
/// images' rows and the bias gathers from it (the official code does the same matmul-then-index).
public struct RelativePositionKeys: Sendable {
    /// `<attn>.rpe_k.lookup_table_weight`, (1, hd, buckets).
    public let table: Parameter

    public init(headDim: Int, name: String, into params: inout ParameterList) {
        table = Parameter(Tensor(zeros: [1, headDim, RelativePositionBuckets.count]))
        params.add("\(name).lookup_table_weight", table)
    }

    public var headDim: Int { table.shape[1] }
    var buckets: Int { table.shape[2] }

    /// The (B, H, L, L) bias for self-attention over `qkv` (B, L, 3A) laid out [q | k | v].
    public func bias(qkv: Tensor, heads: Int) -> AttentionBias {
        let (b, l) = (qkv.shape[0], qkv.shape[1])
        let values = Tensor(shape: [b, heads, l, l]) { out in
            let lookup = UnsafeMutablePointer<Float>.allocate(capacity: lookupCount(batch: b, tokens: l, heads: heads))
            defer { lookup.deallocate() }
            qkv.withPointer { bias(qkv: $0, batch: b, tokens: l, heads: heads, lookup: lookup, into: out) }
        }
        return .perImageAndHead(values)
    }

    /// Floats of the lookup scratch `bias(qkv:…)` needs: one (L × buckets) matrix per image and head.
    func lookupCount(batch: Int, tokens: Int, heads: Int) -> Int { heads * batch * tokens * buckets }

    /// Writes the (batch, heads, L, L) bias into `out`, using `lookup` as scratch; the same
    /// arithmetic for training and inference.
    func bias(qkv: UnsafePointer<Float>, batch b: Int, tokens l: Int, heads: Int,
              lookup: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        let (hd, nb) = (headDim, buckets)
        let row = 3 * heads * hd
        let index = RelativePositionBuckets.table(tokens: l)
        let rows = b * l
        table.value.withPointer { w in
            for h in 0..<heads {
                BLAS.gemm(m: rows, n: nb, k: hd, a: qkv + h * hd, lda: row, b: w, ldb: nb, c: lookup + h * rows * nb, ldc: nb)
            }
        }
        index.withUnsafeBufferPointer { idx in
            for bi in 0..<b {
                for h in 0..<heads {
                    let dst = out + (bi * heads + h) * l * l
                    let src = lookup + (h * rows + bi * l) * nb
                    for i in 0..<l {
                        let (d, s, r) = (dst + i * l, src + i * nb, i * l)
                        for j in 0..<l { d[j] = s[Int(idx[r + j])] }
                    }
                }
            }
        }
    }

    /// From d bias (B, H, L, L): adds d q (= d lookup · Wᵀ) into the q columns of `dqkv` and
    /// Σ qᵀ · d lookup into the table's gradient, heads in order (so the sum never depends on timing).
    public func backward(dBias: Tensor, qkv: Tensor, heads: Int, addingInto dqkv: inout Tensor) {
        let (b, l) = (qkv.shape[0], qkv.shape[1])
        let (hd, nb) = (headDim, buckets)
        precondition(dBias.shape == [b, heads, l, l] && dqkv.shape == qkv.shape && qkv.shape[2] == 3 * heads * hd,
                     "iRPE backward: d bias \(dBias.shape), qkv \(qkv.shape), dqkv \(dqkv.shape), \(heads) heads of \(hd)")
        let row = 3 * heads * hd
        let rows = b * l
        let index = RelativePositionBuckets.table(tokens: l)
        var dLookup = [Float](repeating: 0, count: heads * rows * nb)
        dLookup.withUnsafeMutableBufferPointer { dl in
            let dlp = dl.baseAddress!
            // The adjoint of the gather: each bucket of a query row sums its keys' d bias, in key order.
            dBias.withPointer { g in index.withUnsafeBufferPointer { idx in
                for bi in 0..<b {
                    for h in 0..<heads {
                        let src = g + (bi * heads + h) * l * l
                        let dst = dlp + (h * rows + bi * l) * nb
                        for i in 0..<l {
                            let (s, d, r) = (src + i * l, dst + i * nb, i * l)
                            for j in 0..<l { d[Int(idx[r + j])] += s[j] }
                        }
                    }
                }
            } }
            table.value.withPointer { w in qkv.withPointer { q in dqkv.withMutablePointer { dq in table.withGradPointer { dw in
                for h in 0..<heads {
                    let dlh = UnsafePointer(dlp + h * rows * nb)
                    BLAS.gemm(transB: true, m: rows, n: hd, k: nb, a: dlh, lda: nb, b: w, ldb: nb, beta: 1, c: dq + h * hd, ldc: row)
                    BLAS.gemm(transA: true, m: hd, n: nb, k: rows, a: q + h * hd, lda: row, b: dlh, ldb: nb, beta: 1, c: dw, ldc: nb)
                }
            } } } }
        }
    }
}
