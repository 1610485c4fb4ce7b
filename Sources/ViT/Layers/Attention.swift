import Tensor

/// How the q, k, v projection is biased: timm/MAE learn one bias for all three (`qkv.bias`);
/// BootMAE/BEiT learn q and v biases only (`q_bias`, `v_bias`) and fix the k bias at zero.
public enum QKVBias: String, Codable, Sendable {
    case qkv, qv, none
}

/// The fused q/k/v projection x → [q | k | v], each `width` wide.
public struct QKVProjection: Sendable {
    public let weight: Parameter
    public let mode: QKVBias
    /// qkv mode: one (3A) bias. qv mode: q_bias and v_bias (A each).
    public let bias: Parameter?
    public let qBias: Parameter?
    public let vBias: Parameter?

    /// `name` is the attention module ("blocks.0.attn"); the weight is "<name>.qkv.weight".
    public init(dim: Int, width: Int, mode: QKVBias, name: String, into params: inout ParameterList) {
        self.mode = mode
        weight = Parameter(Tensor(zeros: [3 * width, dim]))
        params.add("\(name).qkv.weight", weight)
        switch mode {
        case .qkv:
            bias = Parameter(Tensor(zeros: [3 * width])); qBias = nil; vBias = nil
            params.add("\(name).qkv.bias", bias!)
        case .qv:
            bias = nil; qBias = Parameter(Tensor(zeros: [width])); vBias = Parameter(Tensor(zeros: [width]))
            params.add("\(name).q_bias", qBias!)
            params.add("\(name).v_bias", vBias!)
        case .none:
            bias = nil; qBias = nil; vBias = nil
        }
    }

    var width: Int { weight.shape[0] / 3 }

    /// The bias actually added: [q_bias | 0 | v_bias] in qv mode.
    var effectiveBias: Tensor? {
        switch mode {
        case .qkv: return bias!.value
        case .qv: return Tensor(shape: [3 * width], data: qBias!.value.data + [Float](repeating: 0, count: width) + vBias!.value.data)
        case .none: return nil
        }
    }

    public func forward(_ x: Tensor) -> Tensor {
        LinearOp.forward(x, weight: weight, bias: effectiveBias)
    }

    /// Inference into a buffer of rows × 3·width.
    func infer(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        LinearOp.infer(x, rows: rows, weight: weight, bias: effectiveBias, into: y, accumulate: false)
    }

    public func backward(_ dy: Tensor, input x: Tensor) -> Tensor {
        precondition(!weight.isPackedOnly, "backward through a weight packed for inference only")
        let a = width
        switch mode {
        case .qkv:
            return bias!.withGradPointer { LinearOp.backward(dy, input: x, weight: weight.value, weightGrad: &weight.grad, biasGrad: $0) }
        case .none:
            return LinearOp.backward(dy, input: x, weight: weight.value, weightGrad: &weight.grad, biasGrad: nil)
        case .qv:
            // The k bias is a constant: only the q and v thirds of Σ dy reach a parameter.
            var full = [Float](repeating: 0, count: 3 * a)
            let dx = full.withUnsafeMutableBufferPointer {
                LinearOp.backward(dy, input: x, weight: weight.value, weightGrad: &weight.grad, biasGrad: $0.baseAddress!)
            }
            qBias!.withGradPointer { g in for i in 0..<a { g[i] += full[i] } }
            vBias!.withGradPointer { g in for i in 0..<a { g[i] += full[2 * a + i] } }
            return dx
        }
    }
}

/// Multi-head self-attention (timm `Attention` / BootMAE `Attention`): qkv → SDPA → proj.
/// The attention width A = heads · (dim / heads) may be less than dim (BootMAE's 504-wide decoder).
/// An optional `AttentionBias` is added to the logits (BEiT relative positions); with `rpeK`
/// (LoMaR) the layer computes its own bias from q, the contextual iRPE term.
public struct SelfAttention: Sendable {
    public let qkv: QKVProjection
    public let proj: Linear
    public let heads: Int
    /// iRPE on keys (junchen14/LoMaR vision_transformer_irpe.py `Attention.rpe_k`), or nil.
    public let rpeK: RelativePositionKeys?

    public struct Cache: Sendable {
        let input: Tensor, qkv: Tensor, attention: AttentionOp.Saved, context: Tensor
    }

    public init(dim: Int, heads: Int, bias: QKVBias, relativePosition: ViTConfig.RelativePosition? = nil,
                name: String, into params: inout ParameterList) {
        let width = heads * (dim / heads)
        self.heads = heads
        qkv = QKVProjection(dim: dim, width: width, mode: bias, name: name, into: &params)
        proj = Linear(width, dim, name: "\(name).proj", into: &params)
        // After qkv and proj, as the official module registers rpe_k.
        rpeK = relativePosition.map { _ in RelativePositionKeys(headDim: dim / heads, name: "\(name).rpe_k", into: &params) }
    }

    /// The logit bias of this layer for `q` (the qkv output): the caller's, or iRPE's own.
    private func logitBias(_ q: Tensor, _ bias: AttentionBias?) -> AttentionBias? {
        guard let rpeK else { return bias }
        precondition(bias == nil, "self-attention with iRPE takes no extra logit bias")
        return rpeK.bias(qkv: q, heads: heads)
    }

    /// x: (B, N, dim). `residual`, when given, is added to the output (the block's skip connection).
    public func forward(_ x: Tensor, adding residual: Tensor? = nil, bias: AttentionBias? = nil) -> (Tensor, Cache) {
        let q = qkv.forward(x)
        let (context, saved) = AttentionOp.selfForward(qkv: q, heads: heads, bias: logitBias(q, bias))
        return (proj.forward(context, adding: residual), Cache(input: x, qkv: q, attention: saved, context: context))
    }

    /// Inference: y += proj(attention(qkv(x))) for `batch` images of `tokens` tokens, y holding
    /// the skip connection; q, k, v and the context live in the workspace.
    /// With `accumulate: false` y is overwritten instead (it may then be x itself: x is read
    /// only by the qkv projection, before y is written).
    func infer(_ x: UnsafePointer<Float>, batch: Int, tokens: Int, bias: AttentionBias? = nil,
               addingInto y: UnsafeMutablePointer<Float>, accumulate: Bool = true, workspace: InferenceWorkspace) {
        let rows = batch * tokens
        let (q, context) = workspace.attention(rows: rows, width: qkv.width)
        qkv.infer(x, rows: rows, into: q)
        if let rpeK {
            precondition(bias == nil, "self-attention with iRPE takes no extra logit bias")
            // The bias lives in the workspace; the kernel reads it through a Tensor-free path.
            let count = batch * heads * tokens * tokens
            let (values, lookup) = workspace.relativeBias(bias: count, lookup: rpeK.lookupCount(batch: batch, tokens: tokens, heads: heads))
            rpeK.bias(qkv: q, batch: batch, tokens: tokens, heads: heads, lookup: lookup, into: values)
            AttentionOp.selfInfer(qkv: q, batch: batch, tokens: tokens, width: qkv.width, heads: heads,
                                  perImageAndHeadBias: values, into: context)
        } else {
            // Weights packed for bf16 take attention's products to bf16 too.
            AttentionOp.selfInfer(qkv: q, batch: batch, tokens: tokens, width: qkv.width, heads: heads, bias: bias,
                                  kernel: qkv.weight.packed?.kernel, into: context)
        }
        proj.infer(context, rows: rows, into: y, accumulate: accumulate)
    }

    /// Returns dx. With `biasGrad`, d bias is added into it (laid out as the forward's bias values).
    public func backward(_ dy: Tensor, cache: Cache, biasGrad: UnsafeMutablePointer<Float>? = nil) -> Tensor {
        let dContext = proj.backward(dy, input: cache.context)
        guard let rpeK, let biasLayout = cache.attention.biasLayout else {
            let dqkv = AttentionOp.selfBackward(dContext, qkv: cache.qkv, saved: cache.attention, heads: heads, biasGrad: biasGrad)
            return qkv.backward(dqkv, input: cache.input)
        }
        precondition(biasGrad == nil, "self-attention with iRPE has no caller's bias to take a gradient")
        // iRPE's bias is a function of q: its gradient flows back into the q columns of dqkv.
        var dBias = Tensor(zeros: biasLayout.shape)
        var dqkv = dBias.withMutablePointer {
            AttentionOp.selfBackward(dContext, qkv: cache.qkv, saved: cache.attention, heads: heads, biasGrad: $0)
        }
        rpeK.backward(dBias: dBias, qkv: cache.qkv, heads: heads, addingInto: &dqkv)
        return qkv.backward(dqkv, input: cache.input)
    }
}
