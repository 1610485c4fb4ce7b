import Tensor

/// BootMAE's cross-attention (`Cross_Attention`): queries from the decoder tokens, keys and values
/// from a context sequence (encoder features of the visible tokens).
///   q = x·Wqᵀ + q_bias;  [k | v] = c·Wkvᵀ + [0 | v_bias];  out = proj(softmax(q kᵀ/√hd) v)
public struct CrossAttention: Sendable {
    public let q: Linear
    public let kv: Linear
    public let qBias: Parameter
    public let vBias: Parameter
    public let proj: Linear
    public let heads: Int

    public struct Cache: Sendable {
        let input: Tensor, context: Tensor, q: Tensor, kv: Tensor, attention: AttentionOp.Saved, out: Tensor
    }

    public init(dim: Int, contextDim: Int, heads: Int, name: String, into params: inout ParameterList) {
        let width = heads * (dim / heads)
        self.heads = heads
        q = Linear(dim, width, bias: false, name: "\(name).q", into: &params)
        kv = Linear(contextDim, 2 * width, bias: false, name: "\(name).kv", into: &params)
        qBias = Parameter(Tensor(zeros: [width]))
        vBias = Parameter(Tensor(zeros: [width]))
        params.add("\(name).q_bias", qBias)
        params.add("\(name).v_bias", vBias)
        proj = Linear(width, dim, name: "\(name).proj", into: &params)
    }

    var width: Int { qBias.shape[0] }

    /// x (B, Nq, dim), context (B, Nc, contextDim) → (B, Nq, dim).
    public func forward(_ x: Tensor, context c: Tensor) -> (Tensor, Cache) {
        let a = width
        let qt = LinearOp.forward(x, weight: q.weight.value, bias: qBias.value)
        let kvBias = Tensor(shape: [2 * a], data: [Float](repeating: 0, count: a) + vBias.value.data)
        let kvt = LinearOp.forward(c, weight: kv.weight.value, bias: kvBias)
        let (out, saved) = AttentionOp.crossForward(q: qt, kv: kvt, heads: heads)
        return (proj.forward(out), Cache(input: x, context: c, q: qt, kv: kvt, attention: saved, out: out))
    }

    /// Returns (dx, d context).
    public func backward(_ dy: Tensor, cache: Cache) -> (Tensor, Tensor) {
        let a = width
        let dOut = proj.backward(dy, input: cache.out)
        let (dq, dkv) = AttentionOp.crossBackward(dOut, q: cache.q, kv: cache.kv, saved: cache.attention, heads: heads)
        let dx = qBias.withGradPointer { LinearOp.backward(dq, input: cache.input, weight: q.weight.value, weightGrad: &q.weight.grad, biasGrad: $0) }
        var kvBiasGrad = [Float](repeating: 0, count: 2 * a)
        let dc = kvBiasGrad.withUnsafeMutableBufferPointer {
            LinearOp.backward(dkv, input: cache.context, weight: kv.weight.value, weightGrad: &kv.weight.grad, biasGrad: $0.baseAddress!)
        }
        // Only the v half of the kv bias is a parameter (k's bias is fixed at zero).
        vBias.withGradPointer { g in for i in 0..<a { g[i] += kvBiasGrad[a + i] } }
        return (dx, dc)
    }
}

/// BootMAE's target-aware decoder block (`Decode_Block`), pre-norm, in this order:
///   x = x + SelfAttn(norm1(x));  x = x + CrossAttn(norm3(x), norm4(c));  x = x + MLP(norm2(x))
/// Without context (the ablation `decoder_context: false`) the cross-attention step and its
/// norms do not exist: a plain pre-norm block, as MAE's decoder.
public struct DecoderBlock: Sendable {
    public let norm1: LayerNorm
    public let attn: SelfAttention
    /// The cross-attention step: `norm3` on the tokens, `norm4` on the context.
    public struct ContextStep: Sendable {
        public let norm3: LayerNorm
        public let norm4: LayerNorm
        public let crossAttn: CrossAttention
    }
    public let context: ContextStep?
    public let norm2: LayerNorm
    public let mlp: MLP

    public struct Cache: Sendable {
        let norm1: LayerNorm.Cache, attn: SelfAttention.Cache
        let context: (norm3: LayerNorm.Cache, norm4: LayerNorm.Cache, cross: CrossAttention.Cache)?
        let norm2: LayerNorm.Cache, mlp: MLP.Cache
    }

    public init(dim: Int, contextDim: Int, heads: Int, mlpHidden: Int, eps: Float, name: String,
                usesContext: Bool = true, into params: inout ParameterList) {
        norm1 = LayerNorm(dim, eps: eps, name: "\(name).norm1", into: &params)
        attn = SelfAttention(dim: dim, heads: heads, bias: .qv, name: "\(name).attn", into: &params)
        norm2 = LayerNorm(dim, eps: eps, name: "\(name).norm2", into: &params)
        mlp = MLP(dim: dim, hidden: mlpHidden, name: "\(name).mlp", into: &params)
        context = usesContext ? ContextStep(
            norm3: LayerNorm(dim, eps: eps, name: "\(name).norm3", into: &params),
            norm4: LayerNorm(contextDim, eps: eps, name: "\(name).norm4", into: &params),
            crossAttn: CrossAttention(dim: dim, contextDim: contextDim, heads: heads, name: "\(name).c_attn", into: &params)) : nil
    }

    /// `context` is required exactly when the block has a cross-attention step.
    public func forward(_ x: Tensor, context c: Tensor?) -> (Tensor, Cache) {
        // Self-attention and MLP add their skip connections in their output projections.
        let (n1, c1) = norm1.forward(x)
        let (x1, ca) = attn.forward(n1, adding: x)
        var x2 = x1
        var contextCache: (norm3: LayerNorm.Cache, norm4: LayerNorm.Cache, cross: CrossAttention.Cache)?
        if let step = context {
            guard let c else { preconditionFailure("a target-aware decoder block needs its context") }
            let (n3, c3) = step.norm3.forward(x1)
            let (n4, c4) = step.norm4.forward(c)
            let (ct, cc) = step.crossAttn.forward(n3, context: n4)
            x2 = x1 + ct
            contextCache = (c3, c4, cc)
        }
        let (n2, c2) = norm2.forward(x2)
        let (y, cm) = mlp.forward(n2, adding: x2)
        return (y, Cache(norm1: c1, attn: ca, context: contextCache, norm2: c2, mlp: cm))
    }

    /// Returns (dx, d context); d context is nil for a block without context.
    public func backward(_ dy: Tensor, cache: Cache) -> (Tensor, Tensor?) {
        // Each skip connection's gradient is added by the norm's backward in the same pass.
        let dx2 = norm2.backward(mlp.backward(dy, cache: cache.mlp), cache: cache.norm2, adding: dy)
        var dx1 = dx2
        var dContext: Tensor?
        if let step = context, let cc = cache.context {
            let (dn3, dn4) = step.crossAttn.backward(dx2, cache: cc.cross)
            dx1 = step.norm3.backward(dn3, cache: cc.norm3, adding: dx2)
            dContext = step.norm4.backward(dn4, cache: cc.norm4)
        }
        let dx = norm1.backward(attn.backward(dx1, cache: cache.attn), cache: cache.norm1, adding: dx1)
        return (dx, dContext)
    }
}
