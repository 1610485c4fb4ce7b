import Tensor

/// The ViT encoder of timm / MAE / BootMAE:
///   patch_embed → prepend cls_token → + pos_embed → blocks → norm
/// plus the optional classification pieces of a fine-tuned model (fc_norm, head).
/// Parameter names are the official checkpoint keys, so weights load by name.
public struct VisionTransformer: Sendable {
    /// Which optional modules exist; decided by the checkpoint (a pretrained encoder has `norm`,
    /// a timm avg-pool or BootMAE fine-tuned one has `fc_norm` + `head` and no `norm`).
    public struct Parts: Sendable, Equatable {
        public var norm: Bool
        public var fcNorm: Bool
        public var headClasses: Int?
        public init(norm: Bool = true, fcNorm: Bool = false, headClasses: Int? = nil) {
            self.norm = norm; self.fcNorm = fcNorm; self.headClasses = headClasses
        }
    }

    public let config: ViTConfig
    public let parts: Parts
    public private(set) var parameters = ParameterList()

    public let patchEmbed: PatchEmbed
    public let clsToken: Parameter
    public let posEmbed: Parameter
    public let blocks: [Block]
    public let norm: LayerNorm?
    public let fcNorm: LayerNorm?
    public let head: Linear?

    public struct Cache: Sendable {
        let patchEmbed: PatchEmbed.Cache
        let blocks: [Block.Cache]
        let norm: LayerNorm.Cache?
        let batch: Int
    }

    public init(config c: ViTConfig, parts: Parts = Parts()) {
        self.config = c
        self.parts = parts
        let eps = Float(c.layerNormEps)
        var p = ParameterList()
        clsToken = Parameter(Tensor(zeros: [1, 1, c.embedDim]))
        p.add("cls_token", clsToken)
        // A generated sin-cos table is fixed; a checkpoint's table is learnable (timm semantics).
        let fixedTable: Tensor? = switch c.posEmbed ?? .checkpoint {
        case .checkpoint: nil
        case .sincosBootMAE: SinCosPositionalEmbedding.table(grid: c.gridSize, dim: c.embedDim, order: .rowFirst)
        case .sincosMAE: SinCosPositionalEmbedding.table(grid: c.gridSize, dim: c.embedDim, order: .columnFirst)
        case .absent: Tensor(zeros: [1, c.numTokens, c.embedDim])
        }
        posEmbed = Parameter(fixedTable ?? Tensor(zeros: [1, c.numTokens, c.embedDim]), trainable: fixedTable == nil)
        // Registered whenever there are absolute positions, so full checkpoints carry the table; a
        // frozen one gets no gradient. Without positions (`none`) nothing is registered or saved (a
        // table in a checkpoint is ignored on loading); the frozen zero table stays only so readers
        // of `posEmbed` see zeros.
        if c.posEmbed != .absent { p.add("pos_embed", posEmbed) }
        patchEmbed = PatchEmbed(channels: c.inChans, patch: c.patchSize, dim: c.embedDim, name: "patch_embed.proj", into: &p)
        blocks = (0..<c.depth).map { i in
            Block(dim: c.embedDim, heads: c.numHeads, mlpHidden: c.mlpHidden, bias: c.qkvBias, eps: eps,
                  layerScale: c.layerScaleInit.map { Float($0) }, relativePosition: c.relativePosition, name: "blocks.\(i)", into: &p)
        }
        norm = parts.norm ? LayerNorm(c.embedDim, eps: eps, name: "norm", into: &p) : nil
        fcNorm = parts.fcNorm ? LayerNorm(c.embedDim, eps: eps, name: "fc_norm", into: &p) : nil
        head = parts.headClasses.map { Linear(c.embedDim, $0, name: "head", into: &p) }
        parameters = p
    }

    // MARK: Encoder

    /// images (B, C, H, W), normalized → all tokens (B, 1 + N, D) after the final norm
    /// (raw block output when the model has no `norm`).
    public func forward(_ images: Tensor) -> (Tensor, Cache) {
        let (patches, pc) = patchEmbed.forward(images)
        let (x, blockCaches, normCache) = forwardBlocks(addClassAndPosition(patches))
        return (x, Cache(patchEmbed: pc, blocks: blockCaches, norm: normCache, batch: images.shape[0]))
    }

    /// Every block, then the final norm when the model has one, keeping what backward needs.
    func forwardBlocks(_ tokens: Tensor) -> (Tensor, [Block.Cache], LayerNorm.Cache?) {
        var x = tokens
        var caches: [Block.Cache] = []
        caches.reserveCapacity(blocks.count)
        for block in blocks {
            let (y, cache) = block.forward(x)
            x = y
            caches.append(cache)
        }
        var normCache: LayerNorm.Cache?
        if let norm { (x, normCache) = norm.forward(x) }
        return (x, caches, normCache)
    }

    /// Backward from d tokens: accumulates every parameter gradient and returns d images.
    public func backward(_ dTokens: Tensor, cache: Cache) -> Tensor {
        var dx = dTokens
        if let norm, let nc = cache.norm { dx = norm.backward(dx, cache: nc) }
        for (block, bc) in zip(blocks, cache.blocks).reversed() { dx = block.backward(dx, cache: bc) }
        return patchEmbed.backward(classAndPositionBackward(dx), cache: cache.patchEmbed)
    }

    /// Packs every block's four weight matrices (qkv, proj, fc1, fc2: nearly all of the FLOPs)
    /// for the inference GEMM (`PackedMatrix`) at `precision` (bf16 where the CPU has bf16
    /// instructions, else fp32). With `releasingPlainValues` the plain copies are freed and the
    /// encoder serves inference only (forward, infer; no backward). Returns false, changing
    /// nothing, on CPUs without AVX-512.
    @discardableResult
    public func packForInference(releasingPlainValues: Bool, precision: InferencePrecision = .fp32) -> Bool {
        packForInference(releasingPlainValues: releasingPlainValues, kernel: InferenceKernel.best(for: precision))
    }

    /// `packForInference` for a given kernel (the bench compares AMX with AVX512-BF16); false,
    /// changing nothing, for BLAS or a kernel this CPU does not run.
    @discardableResult
    public func packForInference(releasingPlainValues: Bool, kernel: InferenceKernel) -> Bool {
        guard kernel != .fp32BLAS, kernel.runsHere else { return false }
        for block in blocks {
            for weight in [block.attn.qkv.weight, block.attn.proj.weight, block.mlp.fc1.weight, block.mlp.fc2.weight] {
                weight.packForInference(releasingPlainValues: releasingPlainValues, kernel: kernel)
            }
        }
        return true
    }

    /// The kernel the blocks' Linear layers run (`fp32-blas` until `packForInference`).
    public var inferenceKernel: InferenceKernel {
        blocks.first?.attn.qkv.weight.packed?.kernel ?? .fp32BLAS
    }

    /// Inference: the tokens `forward` returns, computed without anything kept for backward.
    /// Callers that run many forwards (the server) pass a workspace they keep.
    public func infer(_ images: Tensor, workspace: InferenceWorkspace = InferenceWorkspace()) -> Tensor {
        let x = intermediateTokens(images, blocks: blocks.count, workspace: workspace)
        return norm?.infer(x) ?? x
    }

    /// Tokens after the first `blocks` transformer blocks (no final norm), without keeping caches:
    /// the intermediate features linear probes read (BootMAE probes block 10 of 12).
    ///
    /// With several `Parallel` workers and `InferenceSplit.byImage`, the batch is split into one
    /// shard of whole images per worker, each run with single-threaded kernels in its own part of
    /// the workspace; the tokens are the same as one pass over the batch (rows never mix).
    public func intermediateTokens(_ images: Tensor, blocks count: Int,
                                   workspace: InferenceWorkspace = InferenceWorkspace()) -> Tensor {
        precondition(count >= 1 && count <= blocks.count, "block count \(count) outside 1...\(blocks.count)")
        let batch = images.shape[0]
        let shards = InferenceSplit.current == .byImage ? min(Parallel.workers, batch) : 1
        guard shards > 1 else { return tokensOfShard(images, blocks: count, workspace: workspace) }
        let spaces = workspace.shards(shards)
        let p = config.patchSize
        let (t, d) = (1 + (images.shape[2] / p) * (images.shape[3] / p), config.embedDim)
        return Tensor(shape: [batch, t, d]) { out in
            Parallel.runConcurrently(shards) { s in
                let items = (s * batch / shards)..<((s + 1) * batch / shards)
                let part = tokensOfShard(images.batchSlice(items), blocks: count, workspace: spaces[s])
                part.withPointer { (out + items.lowerBound * t * d).update(from: $0, count: part.count) }
            }
        }
    }

    private func tokensOfShard(_ images: Tensor, blocks count: Int, workspace: InferenceWorkspace) -> Tensor {
        var x = addClassAndPosition(patchEmbed.forward(images).0)
        for block in blocks.prefix(count) { block.infer(&x, workspace: workspace) }
        return x
    }

    /// False for `pos_embed: none` (LoMaR): tokens get no absolute position.
    public var hasAbsolutePositions: Bool { config.posEmbed != .absent }

    /// How the position table is resized for a crop of `patches` patches: nil on the model's grid
    /// (the table as it is) and without absolute positions.
    func positionInterpolation(patches: Int) -> PositionInterpolation? {
        hasAbsolutePositions ? PositionInterpolation(sourceGrid: config.gridSize, patches: patches) : nil
    }

    /// [cls; patch tokens] + pos_embed: (B, N, D) → (B, 1 + N, D) (no add without absolute positions).
    /// A crop on another grid than the model's adds the table interpolated to its grid (iBOT's local crops).
    func addClassAndPosition(_ patches: Tensor) -> Tensor {
        let (b, n, d) = (patches.shape[0], patches.shape[1], patches.shape[2])
        let t = n + 1
        guard hasAbsolutePositions else {
            return Tensor(shape: [b, t, d]) { out in
                patches.withPointer { pp in clsToken.value.withPointer { cls in
                    for bi in 0..<b {
                        (out + bi * t * d).update(from: cls, count: d)
                        (out + bi * t * d + d).update(from: pp + bi * n * d, count: n * d)
                    }
                } }
            }
        }
        let table = positionInterpolation(patches: n).map { $0.forward(posEmbed.value) } ?? posEmbed.value
        precondition(table.count == t * d, "pos_embed \(posEmbed.shape) does not fit \(n) patches of width \(d)")
        return Tensor(shape: [b, t, d]) { out in
            patches.withPointer { pp in table.withPointer { pos in clsToken.value.withPointer { cls in
                for bi in 0..<b {
                    let dst = out + bi * t * d
                    for k in 0..<d { dst[k] = cls[k] + pos[k] }
                    let src = pp + bi * n * d
                    for k in 0..<(n * d) { dst[d + k] = src[k] + pos[d + k] }
                }
            } } }
        }
    }

    /// Gradient of `addClassAndPosition`: sums into cls_token / pos_embed, returns d patches.
    func classAndPositionBackward(_ dx: Tensor) -> Tensor {
        let (b, t, d) = (dx.shape[0], dx.shape[1], dx.shape[2])
        dx.withPointer { g in
            clsToken.withGradPointer { gc in for bi in 0..<b { Vector.add(g + bi * t * d, into: gc, d) } }
            guard posEmbed.trainable else { return }
            if let interpolation = positionInterpolation(patches: t - 1) {
                // The crop's table gradient (summed over images), then back through the resize.
                var dTable = Tensor(zeros: [1, t, d])
                dTable.withMutablePointer { gt in for bi in 0..<b { Vector.add(g + bi * t * d, into: gt, t * d) } }
                let dSource = interpolation.backward(dTable)
                posEmbed.withGradPointer { gp in dSource.withPointer { Vector.add($0, into: gp, dSource.count) } }
            } else {
                posEmbed.withGradPointer { gp in for bi in 0..<b { Vector.add(g + bi * t * d, into: gp, t * d) } }
            }
        }
        return Tensor(shape: [b, t - 1, d]) { out in
            dx.withPointer { g in for bi in 0..<b { (out + bi * (t - 1) * d).update(from: g + (bi * t + 1) * d, count: (t - 1) * d) } }
        }
    }

    // MARK: Pooling and head

    /// One embedding per image from the encoder's tokens:
    ///   cls  → tokens[:, 0]                 (tokens are already normed)
    ///   mean → fc_norm(mean(tokens[:, 1:])) when the model has fc_norm, else mean(tokens[:, 1:]).
    public func pool(_ tokens: Tensor, _ pooling: ViTConfig.Pooling? = nil) -> Tensor {
        switch pooling ?? config.globalPool {
        case .cls:
            return TokenOps.select(tokens, token: 0)
        case .mean:
            let m = TokenOps.mean(tokens, from: 1)
            return fcNorm.map { $0.infer(m) } ?? m
        }
    }

    /// Logits (B, classes) from pooled features; nil when the model has no head.
    public func classify(_ pooled: Tensor) -> Tensor? {
        head?.forward(pooled)
    }

    /// Convenience: images → embeddings, through the inference path.
    public func embed(_ images: Tensor, pooling: ViTConfig.Pooling? = nil,
                      workspace: InferenceWorkspace = InferenceWorkspace()) -> Tensor {
        pool(infer(images, workspace: workspace), pooling)
    }
}
