import Tensor

/// The encoder on token sequences that are not a whole image: LoMaR's K×K windows of patch
/// embeddings (mask tokens already substituted) → prepend cls → blocks → norm
/// (junchen14/LoMaR models_lomar.py `forward_encoder`). Only for encoders without absolute
/// positions: a window carries position only through the blocks' relative position encoding,
/// whose bucket table follows the sequence length.
extension VisionTransformer {
    public struct TokenCache: Sendable {
        let blocks: [Block.Cache]
        let norm: LayerNorm.Cache?
    }

    /// patches (R, T, D) → (R, 1 + T, D) after the final norm (the last block's output without one).
    public func forwardTokens(_ patches: Tensor) -> (Tensor, TokenCache) {
        precondition(!hasAbsolutePositions, "token sequences other than a whole image need an encoder without absolute positions")
        let (x, blockCaches, normCache) = forwardBlocks(prependClass(patches))
        return (x, TokenCache(blocks: blockCaches, norm: normCache))
    }

    /// Accumulates every encoder gradient (cls summed over the rows) and returns d patches (R, T, D).
    public func backwardTokens(_ dTokens: Tensor, cache: TokenCache) -> Tensor {
        var dx = dTokens
        if let norm, let nc = cache.norm { dx = norm.backward(dx, cache: nc) }
        for (block, bc) in zip(blocks, cache.blocks).reversed() { dx = block.backward(dx, cache: bc) }
        // Without absolute positions this only sums cls's gradient and drops its row.
        return classAndPositionBackward(dx)
    }

    /// Inference on token rows: `forwardTokens`' output computed without caches (blocks in place,
    /// intermediates in the workspace), the same arithmetic as `infer` on whole images.
    public func inferTokens(_ patches: Tensor, workspace: InferenceWorkspace = InferenceWorkspace()) -> Tensor {
        precondition(!hasAbsolutePositions, "token sequences other than a whole image need an encoder without absolute positions")
        var x = prependClass(patches)
        for block in blocks { block.infer(&x, workspace: workspace) }
        return norm?.infer(x) ?? x
    }

    /// [cls; patches]: (R, T, D) → (R, 1 + T, D).
    func prependClass(_ patches: Tensor) -> Tensor {
        let (r, t, d) = (patches.shape[0], patches.shape[1], patches.shape[2])
        return Tensor(shape: [r, t + 1, d]) { out in
            patches.withPointer { pp in clsToken.value.withPointer { cls in
                for ri in 0..<r {
                    (out + ri * (t + 1) * d).update(from: cls, count: d)
                    (out + (ri * (t + 1) + 1) * d).update(from: pp + ri * t * d, count: t * d)
                }
            } }
        }
    }
}
