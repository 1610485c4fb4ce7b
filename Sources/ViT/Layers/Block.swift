import Tensor

/// The pre-norm transformer block of ViT (timm `Block`, BootMAE `Block`), no layer scale:
///   x = x + Attn(LN1(x));  x = x + MLP(LN2(x))
public struct Block: Sendable {
    public let norm1: LayerNorm
    public let attn: SelfAttention
    public let norm2: LayerNorm
    public let mlp: MLP

    public struct Cache: Sendable {
        let norm1: LayerNorm.Cache, attn: SelfAttention.Cache
        let norm2: LayerNorm.Cache, mlp: MLP.Cache
    }

    public init(dim: Int, heads: Int, mlpHidden: Int, bias: QKVBias, eps: Float, name: String,
                into params: inout ParameterList) {
        norm1 = LayerNorm(dim, eps: eps, name: "\(name).norm1", into: &params)
        attn = SelfAttention(dim: dim, heads: heads, bias: bias, name: "\(name).attn", into: &params)
        norm2 = LayerNorm(dim, eps: eps, name: "\(name).norm2", into: &params)
        mlp = MLP(dim: dim, hidden: mlpHidden, name: "\(name).mlp", into: &params)
    }

    public func forward(_ x: Tensor) -> (Tensor, Cache) {
        // The skip connections are added by the projections themselves (x1 = x + Attn(…)).
        let (n1, c1) = norm1.forward(x)
        let (x1, ca) = attn.forward(n1, adding: x)
        let (n2, c2) = norm2.forward(x1)
        let (y, cm) = mlp.forward(n2, adding: x1)
        return (y, Cache(norm1: c1, attn: ca, norm2: c2, mlp: cm))
    }

    /// Inference in place, x (B, N, dim) ← Block(x): the same arithmetic as `forward`, nothing
    /// kept for backward, every intermediate in the workspace's buffers.
    public func infer(_ x: inout Tensor, workspace: InferenceWorkspace) {
        let (batch, tokens, dim) = (x.shape[0], x.shape[1], x.shape[2])
        let rows = batch * tokens
        let normed = workspace.normalized(rows: rows, width: dim)
        x.withMutablePointer { xp in
            norm1.infer(xp, rows: rows, into: normed)
            attn.infer(normed, batch: batch, tokens: tokens, addingInto: xp, workspace: workspace)
            norm2.infer(xp, rows: rows, into: normed)
            mlp.infer(normed, rows: rows, addingInto: xp, workspace: workspace)
        }
    }

    public func backward(_ dy: Tensor, cache: Cache) -> Tensor {
        // Each skip connection's gradient is added by the norm's backward in the same pass.
        let dx1 = norm2.backward(mlp.backward(dy, cache: cache.mlp), cache: cache.norm2, adding: dy)
        return norm1.backward(attn.backward(dx1, cache: cache.attn), cache: cache.norm1, adding: dx1)
    }
}
