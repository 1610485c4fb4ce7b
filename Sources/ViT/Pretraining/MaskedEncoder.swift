import Tensor

/// The encoder run on the visible tokens only, as MAE and BootMAE pretrain it: positional
/// embeddings are added to all tokens, then cls + visible tokens are gathered (in the mask plan's
/// shuffled order) and pass through the blocks and the final norm.
extension VisionTransformer {
    public struct VisibleEncoding: Sendable {
        /// (B, 1 + V, D) after the final norm: cls, then the visible patches in shuffled order.
        public let latent: Tensor
        /// Block outputs (before the final norm) of the requested blocks, (B, 1 + V, D) each.
        public let features: [Int: Tensor]
    }

    public struct VisibleCache: Sendable {
        let patchEmbed: PatchEmbed.Cache
        let kept: [[Int]]
        let tokens: Int
        let blocks: [Block.Cache]
        let norm: LayerNorm.Cache
    }

    public func forwardVisible(_ images: Tensor, plan: MaskPlan, featureLayers: [Int] = []) -> (VisibleEncoding, VisibleCache) {
        guard let norm else { preconditionFailure("pretraining needs an encoder with a final norm") }
        let (patches, pc) = patchEmbed.forward(images)
        let all = addClassAndPosition(patches)
        let kept = plan.keptTokens
        var x = TokenOps.gather(all, index: kept)
        var caches: [Block.Cache] = []
        var features: [Int: Tensor] = [:]
        for (i, block) in blocks.enumerated() {
            let (y, cache) = block.forward(x)
            x = y
            caches.append(cache)
            if featureLayers.contains(i) { features[i] = x }
        }
        let (latent, nc) = norm.forward(x)
        return (VisibleEncoding(latent: latent, features: features),
                VisibleCache(patchEmbed: pc, kept: kept, tokens: all.shape[1], blocks: caches, norm: nc))
    }

    /// Backward from the latent's gradient and the gradients that reached the tapped block outputs
    /// (the decoders' cross-attention contexts). Returns d images.
    public func backwardVisible(dLatent: Tensor, dFeatures: [Int: Tensor], cache: VisibleCache) -> Tensor {
        var dx = norm!.backward(dLatent, cache: cache.norm)
        for i in stride(from: blocks.count - 1, through: 0, by: -1) {
            if let df = dFeatures[i] { dx.add(df) }
            dx = blocks[i].backward(dx, cache: cache.blocks[i])
        }
        let dAll = TokenOps.scatterAdd(dx, index: cache.kept, tokens: cache.tokens)
        return patchEmbed.backward(classAndPositionBackward(dAll), cache: cache.patchEmbed)
    }

    /// Output of the last block on all tokens, before the final norm, without keeping caches:
    /// BootMAE's momentum target.
    public func lastBlockOutput(_ images: Tensor) -> Tensor {
        intermediateTokens(images, blocks: blocks.count)
    }
}
