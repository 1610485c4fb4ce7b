import CKernels

/// Scaled dot-product attention, multi-head, with q, k and v read in place from the projection
/// outputs (no permute copies): head h of a token lives in columns [h·hd, (h+1)·hd) of its block.
///
/// Self-attention reads one (B, N, 3A) tensor laid out [q | k | v] (timm / BootMAE `qkv`);
/// cross-attention reads q (B, Nq, A) and kv (B, Nk, 2A) laid out [k | v] (BootMAE `c_attn.kv`).
/// Per (batch, head): P = softmax(q·kᵀ·hd^−½ [+ bias]), out = P·v, written to (B, Nq, A).
/// Self-attention takes an optional additive `AttentionBias` on the logits; without one every
/// kernel runs exactly the operations it ran before biases existed.
public enum AttentionOp {
    /// Where q, k and v live: base pointers, row stride and the token counts.
    @usableFromInline
    struct Operands {
        var q: UnsafePointer<Float>, qRow: Int
        var k: UnsafePointer<Float>, kRow: Int
        var v: UnsafePointer<Float>, vRow: Int
        var batch: Int, heads: Int, headDim: Int, queries: Int, keys: Int
        /// The logit bias's storage and strides (self-attention only).
        var bias: UnsafePointer<Float>? = nil
        var biasImageStride = 0, biasHeadStride = 0
        var width: Int { heads * headDim }
        var scale: Float { 1 / Float(headDim).squareRoot() }

        func biased(by b: AttentionBias?, at p: UnsafePointer<Float>?) -> Operands {
            guard let b, let p else { return self }
            b.check(batch: batch, heads: heads, queries: queries, keys: keys)
            var o = self
            o.bias = p; o.biasImageStride = b.imageStride; o.biasHeadStride = b.headStride
            return o
        }
    }

    /// The attention probabilities, kept for backward: (B, H, Nq, Nk); and the layout of the logit
    /// bias the forward added (where backward adds d bias).
    public struct Saved: Sendable {
        public var probs: Tensor
        public var biasLayout: AttentionBias.Layout?
    }

    /// `body` with the bias's storage (nil without a bias).
    static func withBias<R>(_ bias: AttentionBias?, _ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let bias else { return body(nil) }
        return bias.values.withPointer { body($0) }
    }

    // MARK: Tensor-level entry points

    /// q, k and v inside one (B, N, 3A) [q | k | v] tensor starting at `p`.
    static func selfOperands(_ p: UnsafePointer<Float>, shape: [Int], heads: Int) -> Operands {
        let (b, n, a) = (shape[0], shape[1], shape[2] / 3)
        precondition(shape.count == 3 && shape[2] == 3 * a && a % heads == 0, "self-attention: qkv \(shape), heads \(heads)")
        return Operands(q: p, qRow: 3 * a, k: p + a, kRow: 3 * a, v: p + 2 * a, vRow: 3 * a,
                        batch: b, heads: heads, headDim: a / heads, queries: n, keys: n)
    }

    public static func selfForward(qkv: Tensor, heads: Int, bias: AttentionBias? = nil) -> (Tensor, Saved) {
        qkv.withPointer { p in withBias(bias) { bp in
            var (out, saved) = forward(selfOperands(p, shape: qkv.shape, heads: heads).biased(by: bias, at: bp))
            saved.biasLayout = bias?.layout
            return (out, saved)
        } }
    }

    /// Inference: the output alone, no probabilities kept.
    public static func selfInfer(qkv: Tensor, heads: Int, bias: AttentionBias? = nil) -> Tensor {
        qkv.withPointer { p in withBias(bias) { bp in
            attend(selfOperands(p, shape: qkv.shape, heads: heads).biased(by: bias, at: bp), savingProbabilitiesTo: nil)
        } }
    }

    /// Inference into a caller's buffer: `qkv` (batch, tokens, 3A) → `out` (batch, tokens, A).
    /// With a bf16 `kernel` (the one the layer's Linear weights are packed for) the two products
    /// run in bf16 too (`attendBF16`), unless `bf16ProductsEnabled` is off.
    public static func selfInfer(qkv: UnsafePointer<Float>, batch: Int, tokens: Int, width: Int, heads: Int,
                                 bias: AttentionBias? = nil, kernel: InferenceKernel? = nil, into out: UnsafeMutablePointer<Float>) {
        withBias(bias) { bp in
            let o = selfOperands(qkv, shape: [batch, tokens, 3 * width], heads: heads).biased(by: bias, at: bp)
            let bf16Fits = max(o.keys, o.headDim) <= Int(CK_ATTENTION_BF16_MAX_WIDTH)   // else fp32 (the kernels' stack rows)
            if bf16ProductsEnabled, bf16Fits, let bf16 = kernel?.bf16Kernel {
                attendBF16(o, kernel: bf16, into: out)
            } else {
                attend(o, savingProbabilitiesTo: nil, into: out)
            }
        }
    }

    /// Whether bf16 inference runs attention's products in bf16 (on by default) or keeps them fp32.
    /// Benchmarks switch it between calls, never during one (`bootmae-bench forward --compare-attention-precision`).
    nonisolated(unsafe) public static var bf16ProductsEnabled = true

    /// `attend` for inference with both products in bf16 (CKernels' attention_bf16.c): per pair,
    /// S = scale·bf16(q)·bf16(k)ᵀ, the bias and softmax in fp32 as in `attend`, out = bf16(P)·bf16(v),
    /// sums in fp32. Why: at ViT-B's 197 tokens the fp32 products were ~12% of a bf16 forward.
    static func attendBF16(_ o: Operands, kernel: ck_bf16_kernel, into outp: UnsafeMutablePointer<Float>) {
        let (hd, a, nq, nk) = (o.headDim, o.width, o.queries, o.keys)
        let packedCount = ck_attention_bf16_scratch_count(Int32(nk), Int32(hd))
        Parallel.forEachChunk(o.batch * o.heads) { chunk in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: nq * nk)
            let packed = UnsafeMutableRawPointer.allocate(byteCount: 2 * packedCount, alignment: 64).assumingMemoryBound(to: UInt16.self)
            defer { p.deallocate(); packed.deallocate() }
            for pair in chunk {
                let head = Head(o, pair: pair)
                let logits = ck_attention_bf16_logits(kernel, Int32(nq), Int32(nk), Int32(hd), o.scale, head.q, o.qRow,
                                                      head.k, o.kRow, packed, p)
                precondition(logits == 0, "bf16 attention: kernel \(kernel) does not run here or the shape is too large")
                if let bias = head.bias { Vector.add(bias, into: p, nq * nk) }
                SoftmaxOp.forwardRows(p, rows: nq, n: nk)
                _ = ck_attention_bf16_context(kernel, Int32(nq), Int32(nk), Int32(hd), p, head.v, o.vRow, packed, outp + head.out, a)
            }
        }
    }

    /// Inference into a caller's buffer with a (batch, heads, tokens, tokens) bias in the caller's
    /// storage (LoMaR's iRPE term, computed into the inference workspace: no Tensor copy).
    public static func selfInfer(qkv: UnsafePointer<Float>, batch: Int, tokens: Int, width: Int, heads: Int,
                                 perImageAndHeadBias bias: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        var o = selfOperands(qkv, shape: [batch, tokens, 3 * width], heads: heads)
        o.bias = bias; o.biasHeadStride = tokens * tokens; o.biasImageStride = heads * tokens * tokens
        attend(o, savingProbabilitiesTo: nil, into: out)
    }

    /// Returns dqkv (B, N, 3A). With `biasGrad`, d bias (= d logits) is added into it, laid out
    /// as the forward's bias values (a shared bias receives the sum over the pairs reading it).
    public static func selfBackward(_ dout: Tensor, qkv: Tensor, saved: Saved, heads: Int,
                                    biasGrad: UnsafeMutablePointer<Float>? = nil) -> Tensor {
        let a = qkv.shape[2] / 3
        precondition(biasGrad == nil || saved.biasLayout != nil, "self-attention backward: a bias gradient without a bias")
        // Every element is written by exactly one (batch, head) pair: no zeroing needed.
        var dqkv = Tensor(uninitialized: qkv.shape)
        qkv.withPointer { p in dqkv.withMutablePointer { g in
            let o = selfOperands(p, shape: qkv.shape, heads: heads)
            if let biasGrad, let layout = saved.biasLayout {
                backward(dout, saved: saved, o, dq: g, dk: g + a, dv: g + 2 * a, dBias: biasGrad, layout: layout)
            } else {
                backward(dout, saved: saved, o, dq: g, dk: g + a, dv: g + 2 * a)
            }
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
        var dq = Tensor(uninitialized: q.shape), dkv = Tensor(uninitialized: kv.shape)
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

    /// Where one (batch, head) pair's q, k and v start; `pair` = batch · heads + head.
    struct Head {
        var q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>
        /// Offsets of the pair in a (B, Nq, A) tensor and in q-, k- and v-strided gradients.
        var out: Int, qOffset: Int, kOffset: Int, vOffset: Int
        /// Offset of the pair's (Nq, Nk) probabilities.
        var probs: Int
        /// The pair's (Nq, Nk) logit bias, if any.
        var bias: UnsafePointer<Float>?

        init(_ o: Operands, pair: Int) {
            let (b, h) = pair.quotientAndRemainder(dividingBy: o.heads)
            let column = h * o.headDim
            qOffset = b * o.queries * o.qRow + column
            kOffset = b * o.keys * o.kRow + column
            vOffset = b * o.keys * o.vRow + column
            q = o.q + qOffset; k = o.k + kOffset; v = o.v + vOffset
            out = b * o.queries * o.width + column
            probs = pair * o.queries * o.keys
            bias = o.bias.map { $0 + b * o.biasImageStride + h * o.biasHeadStride }
        }
    }

    @usableFromInline
    static func forward(_ o: Operands) -> (Tensor, Saved) {
        var probs = Tensor(uninitialized: [o.batch, o.heads, o.queries, o.keys])
        let out = probs.withMutablePointer { attend(o, savingProbabilitiesTo: $0) }
        return (out, Saved(probs: probs))
    }

    /// `attend` into a new (B, Nq, A) tensor.
    static func attend(_ o: Operands, savingProbabilitiesTo saved: UnsafeMutablePointer<Float>?) -> Tensor {
        Tensor(shape: [o.batch, o.queries, o.width]) { attend(o, savingProbabilitiesTo: saved, into: $0) }
    }

    /// out = softmax(scale · q kᵀ [+ bias]) v for every (batch, head) pair. The probabilities go to
    /// `saved` (pair-major, for backward) when given; inference reuses one small scratch
    /// matrix per worker instead, which stays in cache.
    static func attend(_ o: Operands, savingProbabilitiesTo saved: UnsafeMutablePointer<Float>?, into outp: UnsafeMutablePointer<Float>) {
        let (hd, a, nq, nk) = (o.headDim, o.width, o.queries, o.keys)
        // Every pair writes its own columns of `out`, so it needs no zeroing, and pairs (not
        // just images) spread over the cores.
        let fused = runsFused(o)
        Parallel.forEachChunk(o.batch * o.heads) { chunk in
            let scratch = saved == nil ? UnsafeMutablePointer<Float>.allocate(capacity: nq * nk) : nil
            defer { scratch?.deallocate() }
            for pair in chunk {
                let head = Head(o, pair: pair)
                let p = saved.map { $0 + head.probs } ?? scratch!
                if fused {
                    _ = ck_attention_forward(Int32(nq), Int32(nk), Int32(hd), o.scale, head.q, o.qRow, head.k, o.kRow,
                                             head.v, o.vRow, head.bias, p, outp + head.out, a)
                    continue
                }
                BLAS.single(transB: true, m: nq, n: nk, k: hd, alpha: o.scale,
                            a: head.q, lda: o.qRow, b: head.k, ldb: o.kRow, c: p, ldc: nk)
                // Added after the product, as the references add it to (q·scale)·kᵀ.
                if let bias = head.bias { Vector.add(bias, into: p, nq * nk) }
                SoftmaxOp.forwardRows(p, rows: nq, n: nk)
                BLAS.single(m: nq, n: hd, k: nk, a: p, lda: nk, b: head.v, ldb: o.vRow,
                            c: outp + head.out, ldc: a)
            }
        }
    }

    /// Whether `attend` may take the fused kernel (`runsFused`). Benchmarks and tests switch it
    /// between calls, never during one (`bootmae-bench train-step --compare-attention fused,gemm`).
    nonisolated(unsafe) public static var fusedKernelEnabled = true

    /// Whether `attend` runs each pair as one call of CKernels' fused AVX-512 kernel
    /// (`ck_attention_forward`: q·kᵀ, softmax and P·v with S in registers; 2-3× the two-GEMM path's
    /// speed at the tiny presets' 13-50 tokens) rather than two GEMMs around `SoftmaxOp`. Only
    /// where those GEMMs would run on our AVX-512 kernel: the fused kernel repeats their arithmetic
    /// and SoftmaxOp's operation for operation, so the results are bit-identical to that path.
    static func runsFused(_ o: Operands) -> Bool {
        guard fusedKernelEnabled, case .own(.avx512) = BLAS.path else { return false }
        return ck_attention_supported(Int32(o.keys), Int32(o.headDim))
    }

    /// Writes (overwrites) dq, dk, dv at the same strides as q, k, v.
    @usableFromInline
    static func backward(_ dout: Tensor, saved: Saved, _ o: Operands,
                         dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>) {
        backward(dout, saved: saved, o, dq: dq, dk: dk, dv: dv) { _, _ in }
    }

    /// As above, and adds each pair's d logits into `dBias` at the pair's offset in `layout`.
    /// Pairs with their own bias matrices add in parallel; a shared bias keeps every pair's
    /// d logits and sums them afterwards in pair order, so the result never depends on timing.
    static func backward(_ dout: Tensor, saved: Saved, _ o: Operands,
                         dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                         dBias: UnsafeMutablePointer<Float>, layout: AttentionBias.Layout) {
        let (pairs, size) = (o.batch * o.heads, o.queries * o.keys)
        func target(_ pair: Int) -> UnsafeMutablePointer<Float> {
            let (b, h) = pair.quotientAndRemainder(dividingBy: o.heads)
            return dBias + layout.offset(image: b, head: h)
        }
        if layout.pairsAreDisjoint(batch: o.batch, heads: o.heads, size: size) {
            backward(dout, saved: saved, o, dq: dq, dk: dk, dv: dv) { pair, ds in Vector.add(ds, into: target(pair), size) }
            return
        }
        let logits = UnsafeMutablePointer<Float>.allocate(capacity: pairs * size)
        defer { logits.deallocate() }
        backward(dout, saved: saved, o, dq: dq, dk: dk, dv: dv) { pair, ds in (logits + pair * size).update(from: ds, count: size) }
        for pair in 0..<pairs { Vector.add(logits + pair * size, into: target(pair), size) }
    }

    /// The four-GEMM backward; `logitGradient(pair, dS)` sees each pair's d logits (= d bias).
    static func backward(_ dout: Tensor, saved: Saved, _ o: Operands,
                         dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                         logitGradient: (Int, UnsafePointer<Float>) -> Void) {
        let (hd, a, nq, nk) = (o.headDim, o.width, o.queries, o.keys)
        dout.withPointer { gop in saved.probs.withPointer { pp in
            Parallel.forEachChunk(o.batch * o.heads) { chunk in
                let dp = UnsafeMutablePointer<Float>.allocate(capacity: nq * nk)
                defer { dp.deallocate() }
                for pair in chunk {
                    let head = Head(o, pair: pair)
                    let p = pp + head.probs, gout = gop + head.out
                    // The pair's scattered rows, all requested before the first product needs them.
                    ck_prefetch_rows(gout, Int32(nq), a, Int32(hd))
                    ck_prefetch_rows(head.v, Int32(nk), o.vRow, Int32(hd))
                    ck_prefetch_rows(head.k, Int32(nk), o.kRow, Int32(hd))
                    ck_prefetch_rows(head.q, Int32(nq), o.qRow, Int32(hd))
                    // dV = Pᵀ dO ; dP = dO Vᵀ ; dS = softmax'(dP) ; dQ = s·dS K ; dK = s·dSᵀ Q
                    BLAS.single(transA: true, m: nk, n: hd, k: nq, a: p, lda: nk, b: gout, ldb: a,
                                c: dv + head.vOffset, ldc: o.vRow)
                    BLAS.single(transB: true, m: nq, n: nk, k: hd, a: gout, lda: a, b: head.v, ldb: o.vRow,
                                c: dp, ldc: nk)
                    SoftmaxOp.backwardRows(p, dp, rows: nq, n: nk)
                    logitGradient(pair, dp)
                    BLAS.single(m: nq, n: hd, k: nk, alpha: o.scale, a: dp, lda: nk, b: head.k, ldb: o.kRow,
                                c: dq + head.qOffset, ldc: o.qRow)
                    BLAS.single(transA: true, m: nk, n: hd, k: nq, alpha: o.scale, a: dp, lda: nk, b: head.q, ldb: o.qRow,
                                c: dk + head.kOffset, ldc: o.kRow)
                }
            }
        } }
    }
}
