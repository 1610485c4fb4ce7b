import Tensor

/// The encoder run on all tokens with masked patches replaced by a learned mask embedding, as
/// BEiT and iBOT pretrain it: patch_embed (conv output incl. its bias) → masked rows ← mask
/// embedding → prepend cls → + pos_embed → blocks → norm. The substitution comes before the
/// positions, so masked tokens keep their position (bytedance/ibot models/vision_transformer.py
/// `prepare_tokens` / `mask_model`; microsoft/unilm beit/modeling_pretrain.py `forward_features`).
extension VisionTransformer {
    public struct MaskedEncoding: Sendable {
        /// (B, 1 + N, D) after the final norm (the last block's output when the model has no norm),
        /// cls then every patch in original order.
        public let latent: Tensor
        /// Block outputs (before the final norm) of the requested blocks, (B, 1 + N, D) each.
        public let features: [Int: Tensor]
    }

    public struct MaskedCache: Sendable {
        let patchEmbed: PatchEmbed.Cache
        let mask: [Bool]
        let maskEmbed: Parameter
        let blocks: [Block.Cache]
        let norm: LayerNorm.Cache?
    }

    /// `mask[b][i]`: patch i of image b is masked (row-major patch order).
    public func forwardMasked(_ images: Tensor, mask: [[Bool]], maskEmbed: Parameter,
                              featureLayers: [Int] = []) -> (MaskedEncoding, MaskedCache) {
        precondition(mask.count == images.shape[0], "forwardMasked: \(mask.count) masks for \(images.shape[0]) images")
        precondition(mask.allSatisfy { $0.count == config.numPatches }, "forwardMasked: a mask needs \(config.numPatches) flags")
        return forwardMasked(images, mask: mask.flatMap { $0 }, maskEmbed: maskEmbed, featureLayers: featureLayers)
    }

    /// `mask`: B·N flags, image-major (BEiT's `bool_masked_pos` flattened).
    public func forwardMasked(_ images: Tensor, mask: [Bool], maskEmbed: Parameter,
                              featureLayers: [Int] = []) -> (MaskedEncoding, MaskedCache) {
        let (patches, pc) = patchEmbed.forward(images)
        var x = addClassAndPosition(TokenOps.replaceMasked(patches, mask: mask, with: maskEmbed.value))
        var caches: [Block.Cache] = []
        caches.reserveCapacity(blocks.count)
        var features: [Int: Tensor] = [:]
        for (i, block) in blocks.enumerated() {
            let (y, cache) = block.forward(x)
            x = y
            caches.append(cache)
            if featureLayers.contains(i) { features[i] = x }
        }
        var normCache: LayerNorm.Cache?
        if let norm { (x, normCache) = norm.forward(x) }
        return (MaskedEncoding(latent: x, features: features),
                MaskedCache(patchEmbed: pc, mask: mask, maskEmbed: maskEmbed, blocks: caches, norm: normCache))
    }

    /// Backward from the latent's gradient and the gradients that reached the tapped block outputs:
    /// accumulates every encoder gradient and the mask embedding's (the sum over masked patches;
    /// masked patches pass nothing to the patch embedding). Returns d images.
    public func backwardMasked(dLatent: Tensor, dFeatures: [Int: Tensor] = [:], cache: MaskedCache) -> Tensor {
        var dx = dLatent
        if let norm, let nc = cache.norm { dx = norm.backward(dx, cache: nc) }
        for i in stride(from: blocks.count - 1, through: 0, by: -1) {
            if let df = dFeatures[i] { dx.add(df) }
            dx = blocks[i].backward(dx, cache: cache.blocks[i])
        }
        let dPatches = cache.maskEmbed.withGradPointer {
            TokenOps.replaceMaskedBackward(classAndPositionBackward(dx), mask: cache.mask, embeddingGrad: $0)
        }
        return patchEmbed.backward(dPatches, cache: cache.patchEmbed)
    }
}
