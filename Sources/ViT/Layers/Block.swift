import Tensor

/// The pre-norm transformer block of ViT (timm `Block`, BootMAE `Block`):
///   x = x + Attn(LN1(x));  x = x + MLP(LN2(x))
/// optionally with layer scale, x = x + γ₁ ⊙ Attn(LN1(x)); x = x + γ₂ ⊙ MLP(LN2(x))
/// (microsoft/unilm beit/modeling_finetune.py `Block`, `gamma_1` / `gamma_2`), and an additive
/// attention-logit bias passed in by the caller.
public struct Block: Sendable {
    public let norm1: LayerNorm
    public let attn: SelfAttention
    public let norm2: LayerNorm
    public let mlp: MLP
    /// Both or neither (BEiT's `init_values`).
    public let gamma1: LayerScale?
    public let gamma2: LayerScale?

    public struct Cache: Sendable {
        let norm1: LayerNorm.Cache, attn: SelfAttention.Cache
        let norm2: LayerNorm.Cache, mlp: MLP.Cache
        /// The branches' outputs before their layer scale (γ's gradient needs them).
        let attnBranch: Tensor?, mlpBranch: Tensor?
    }

    /// `layerScale`: γ's initial value; nil builds the block without layer scale (and without
    /// `gamma_1` / `gamma_2` parameters).
    /// `relativePosition`: the attention's own relative position encoding (LoMaR's iRPE), or nil.
    public init(dim: Int, heads: Int, mlpHidden: Int, bias: QKVBias, eps: Float, layerScale: Float? = nil,
                relativePosition: ViTConfig.RelativePosition? = nil, name: String, into params: inout ParameterList) {
        norm1 = LayerNorm(dim, eps: eps, name: "\(name).norm1", into: &params)
        attn = SelfAttention(dim: dim, heads: heads, bias: bias, relativePosition: relativePosition, name: "\(name).attn", into: &params)
        norm2 = LayerNorm(dim, eps: eps, name: "\(name).norm2", into: &params)
        mlp = MLP(dim: dim, hidden: mlpHidden, name: "\(name).mlp", into: &params)
        // After the MLP, as BEiT's Block defines (and so orders) them.
        gamma1 = layerScale.map { LayerScale(dim, initValue: $0, name: "\(name).gamma_1", into: &params) }
        gamma2 = layerScale.map { LayerScale(dim, initValue: $0, name: "\(name).gamma_2", into: &params) }
    }

    public func forward(_ x: Tensor, attentionBias: AttentionBias? = nil) -> (Tensor, Cache) {
        // Without layer scale the skip connections are added by the projections themselves (x1 = x + Attn(…)).
        let (n1, c1) = norm1.forward(x)
        let x1: Tensor, ca: SelfAttention.Cache, attnBranch: Tensor?
        if let gamma1 {
            let (a, cache) = attn.forward(n1, bias: attentionBias)
            (x1, ca, attnBranch) = (gamma1.forward(x, adding: a), cache, a)
        } else {
            (x1, ca) = attn.forward(n1, adding: x, bias: attentionBias)
            attnBranch = nil
        }
        let (n2, c2) = norm2.forward(x1)
        let y: Tensor, cm: MLP.Cache, mlpBranch: Tensor?
        if let gamma2 {
            let (m, cache) = mlp.forward(n2)
            (y, cm, mlpBranch) = (gamma2.forward(x1, adding: m), cache, m)
        } else {
            (y, cm) = mlp.forward(n2, adding: x1)
            mlpBranch = nil
        }
        return (y, Cache(norm1: c1, attn: ca, norm2: c2, mlp: cm, attnBranch: attnBranch, mlpBranch: mlpBranch))
    }

    /// Inference in place, x (B, N, dim) ← Block(x): the same arithmetic as `forward`, nothing
    /// kept for backward, every intermediate in the workspace's buffers. With layer scale each
    /// branch is written over the normed buffer (its input, already consumed) and then scaled in.
    public func infer(_ x: inout Tensor, workspace: InferenceWorkspace, attentionBias: AttentionBias? = nil) {
        let (batch, tokens, dim) = (x.shape[0], x.shape[1], x.shape[2])
        let rows = batch * tokens
        let normed = workspace.normalized(rows: rows, width: dim)
        x.withMutablePointer { xp in
            norm1.infer(xp, rows: rows, into: normed)
            if let gamma1 {
                attn.infer(normed, batch: batch, tokens: tokens, bias: attentionBias, addingInto: normed, accumulate: false,
                           workspace: workspace)
                gamma1.addScaled(normed, into: xp, rows: rows)
            } else {
                attn.infer(normed, batch: batch, tokens: tokens, bias: attentionBias, addingInto: xp, workspace: workspace)
            }
            norm2.infer(xp, rows: rows, into: normed)
            if let gamma2 {
                mlp.infer(normed, rows: rows, addingInto: normed, accumulate: false, workspace: workspace)
                gamma2.addScaled(normed, into: xp, rows: rows)
            } else {
                mlp.infer(normed, rows: rows, addingInto: xp, workspace: workspace)
            }
        }
    }

    /// Returns dx. With `attentionBiasGrad`, d bias is added into it (laid out as the forward's bias values).
    public func backward(_ dy: Tensor, cache: Cache, attentionBiasGrad: UnsafeMutablePointer<Float>? = nil) -> Tensor {
        // Each skip connection's gradient is added by the norm's backward in the same pass.
        let dm = gamma2.map { $0.backward(dy, branch: cache.mlpBranch!) } ?? dy
        let dx1 = norm2.backward(mlp.backward(dm, cache: cache.mlp), cache: cache.norm2, adding: dy)
        let da = gamma1.map { $0.backward(dx1, branch: cache.attnBranch!) } ?? dx1
        return norm1.backward(attn.backward(da, cache: cache.attn, biasGrad: attentionBiasGrad), cache: cache.norm1, adding: dx1)
    }
}
