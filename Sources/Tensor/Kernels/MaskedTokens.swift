/// Replacing masked tokens by a learned embedding, as masked-image-modeling encoders see their
/// input: BEiT's x·(1 − w) + mask_token·w (microsoft/unilm beit/modeling_pretrain.py) and iBOT's
/// x[mask] = masked_embed (bytedance/ibot models/vision_transformer.py).
extension TokenOps {
    /// x (B, N, D) with the row of every token whose flag is set in `mask` (B·N flags, image-major)
    /// replaced by `embedding` (D elements).
    public static func replaceMasked(_ x: Tensor, mask: [Bool], with embedding: Tensor) -> Tensor {
        let (b, n, d) = (x.shape[0], x.shape[1], x.shape[2])
        precondition(mask.count == b * n, "replaceMasked: \(mask.count) flags for \(b)×\(n) tokens")
        precondition(embedding.count == d, "replaceMasked: embedding \(embedding.shape) for width \(d)")
        var y = x
        embedding.withPointer { e in y.withMutablePointer { yp in
            for (row, masked) in mask.enumerated() where masked { (yp + row * d).update(from: e, count: d) }
        } }
        return y
    }

    /// The adjoint: masked rows of dy are added into `embeddingGrad` (in token order) and are zero in
    /// the returned dx; the other rows pass through.
    public static func replaceMaskedBackward(_ dy: Tensor, mask: [Bool], embeddingGrad: UnsafeMutablePointer<Float>) -> Tensor {
        let d = dy.shape[dy.rank - 1]
        precondition(mask.count * d == dy.count, "replaceMaskedBackward: \(mask.count) flags for \(dy.shape)")
        var dx = dy
        dx.withMutablePointer { g in
            for (row, masked) in mask.enumerated() where masked {
                Vector.add(g + row * d, into: embeddingGrad, d)
                (g + row * d).update(repeating: 0, count: d)
            }
        }
        return dx
    }
}
