import Tensor
import ViT

/// PeCo's visual tokenizer (stage 1), at the smallest faithful size: a ViT-VQ with one code per
/// ViT patch, so the code grid is the patch grid of the stage-2 model.
///
///   image → ViT encoder (patch p, sin-cos positions, blocks, norm) → patch tokens
///         → `quant_proj` Linear(D → d) → nearest code (EMA codebook, `VectorQuantizer`)
///         → `post_quant` Linear(d → D') → + fixed sin-cos positions → blocks → norm
///         → `decoder_pred` Linear(D' → C·p·p): each patch's pixels in (c, py, px) order
///
/// Loss = pixel MSE + β·commitment + λ_per·perceptual (`PerceptualLoss` on a frozen
/// self-supervised ViT of our own). Deviations from the paper (whose code could not be found):
/// a ViT encoder/decoder instead of VQGAN's convolutional ones, and no adversarial term (VQGAN's
/// GAN loss is left out at this scale); the perceptual term, the paper's one new idea, is kept.
public struct PeCoTokenizer: Sendable {
    public let settings: Settings
    public let encoder: VisionTransformer
    public let quantProj: Linear
    public let quantizer: VectorQuantizer
    public let postQuant: Linear
    /// (1, N, D'): fixed sin-cos positions of the decoder's patch tokens (no cls).
    public let decoderPosEmbed: Tensor
    public let decoderBlocks: [Block]
    public let decoderNorm: LayerNorm
    public let decoderPred: Linear
    /// The frozen network of the perceptual loss (nil when the config names none).
    public let perceptual: PerceptualLoss?

    /// What the optimizer updates: encoder, projections, decoder.
    public let parameters: ParameterList
    /// The quantizer's state (codebook, EMA usage and sums, health).
    public let quantizerState: ParameterList
    public static let perceptualPrefix = "perceptual."

    public init(encoder c: ViTConfig, settings: Settings) {
        self.settings = settings
        var enc = c
        if enc.posEmbed == nil { enc.posEmbed = .sincosMAE }
        encoder = VisionTransformer(config: enc, parts: .init(norm: true))
        var p = encoder.parameters
        quantProj = Linear(c.embedDim, settings.codeDim, name: "quant_proj", into: &p)
        var state = ParameterList()
        quantizer = VectorQuantizer(codes: settings.codebookSize, dim: settings.codeDim, name: "quantizer", into: &state)
        quantizerState = state
        let d = settings.decoderEmbedDim, eps = Float(c.layerNormEps)
        postQuant = Linear(settings.codeDim, d, name: "post_quant", into: &p)
        let table = SinCosPositionalEmbedding.table(grid: c.gridSize, dim: d, order: .columnFirst)
        decoderPosEmbed = Tensor(shape: [1, c.numPatches, d], data: Array(table.data[d...]))   // row 0 is cls's
        decoderBlocks = (0..<settings.decoderDepth).map {
            Block(dim: d, heads: settings.decoderNumHeads, mlpHidden: Int(Double(d) * c.mlpRatio), bias: .qkv, eps: eps,
                  name: "decoder_blocks.\($0)", into: &p)
        }
        decoderNorm = LayerNorm(d, eps: eps, name: "decoder_norm", into: &p)
        decoderPred = Linear(d, c.patchSize * c.patchSize * c.inChans, name: "decoder_pred", into: &p)
        parameters = p
        perceptual = settings.perceptualEncoder.map { net in
            PerceptualLoss(network: VisionTransformer(config: net, parts: .init(norm: false)),
                           layers: settings.perceptualLayers ?? PerceptualLoss.defaultLayers(depth: net.depth),
                           inputMean: c.mean, inputStd: c.std)
        }
    }

    // MARK: Tokens (the frozen tokenizer of stage 2)

    /// z_e: the encoder's patch tokens projected to the code width, (B·N, d).
    func encode(_ images: Tensor) -> (z: Tensor, patches: Tensor, cache: VisionTransformer.Cache) {
        let (tokens, cache) = encoder.forward(images)
        let (z, patches) = project(tokens)
        return (z, patches, cache)
    }

    /// Encoder tokens (B, 1 + N, D) → z_e (B·N, d) and the patch tokens it came from.
    func project(_ tokens: Tensor) -> (z: Tensor, patches: Tensor) {
        let patches = DecoderInput.dropClass(tokens)
        let z = quantProj.forward(patches)
        return (z.reshaped([z.count / settings.codeDim, settings.codeDim]), patches)
    }

    /// Each image's code grid, (B, N) row-major patch order: what stage 2 predicts. Deterministic
    /// (no dropout, no sampling): the same image always gives the same codes. The encoder runs its
    /// inference path (`infer`: the arithmetic of `forward`, bit for bit, nothing kept for backward).
    public func codes(_ images: Tensor) -> [[Int]] {
        let indices = quantizer.nearest(project(encoder.infer(images)).z)
        let n = encoder.config.numPatches
        return (0..<images.shape[0]).map { Array(indices[($0 * n)..<(($0 + 1) * n)]) }
    }

    /// Pixels (B, C, H, W), in the input normalization, of code grids.
    public func decode(_ codes: [[Int]]) -> Tensor {
        let q = quantizer.lookup(codes.flatMap { $0 })
        return decodeQuantized(q.reshaped([codes.count, encoder.config.numPatches, settings.codeDim])).image
    }

    struct Decoded {
        let image: Tensor, prediction: Tensor, input: Tensor, normed: Tensor, normCache: LayerNorm.Cache, blockCaches: [Block.Cache]
    }

    /// The decoder on quantized tokens (B, N, d).
    func decodeQuantized(_ q: Tensor) -> Decoded {
        let c = encoder.config
        var x = postQuant.forward(q)
        let (b, n, d) = (x.shape[0], x.shape[1], x.shape[2])
        x.withMutablePointer { xp in decoderPosEmbed.withPointer { pos in for i in 0..<b { Vector.add(pos, into: xp + i * n * d, n * d) } } }
        var caches: [Block.Cache] = []
        for block in decoderBlocks {
            let (y, cache) = block.forward(x)
            x = y
            caches.append(cache)
        }
        let (normed, normCache) = decoderNorm.forward(x)
        let prediction = decoderPred.forward(normed)
        let image = PatchOps.unpatchify(prediction, patch: c.patchSize, channels: c.inChans, height: c.imgSize, width: c.imgSize)
        return Decoded(image: image, prediction: prediction, input: q, normed: normed, normCache: normCache, blockCaches: caches)
    }

    // MARK: Training step

    public struct Output: Sendable {
        public let total: Float
        public let pixel: Float
        public let commitment: Float
        public let perceptual: Float
        /// (B, C, H, W): the reconstruction.
        public let reconstruction: Tensor
        public let indices: [Int]
        /// The step's code statistics and the restart candidates the plan asked for.
        public let counts: [Float]
        public let sums: [Float]
        public let candidates: [Float]
    }

    /// Forward, and with `backward` every trainable gradient (accumulated). `lossBatch`: the images
    /// the losses average over when `images` are one shard of them; `plan` names the batch's
    /// restart candidates (the rows of this shard's images are filled in, others stay zero).
    public func step(_ images: Tensor, plan: TokenizerPlan, lambdaPerceptual: Float, beta: Float,
                     backward: Bool = true, lossBatch: Int? = nil) -> Output {
        let c = encoder.config
        let (b, n, d) = (images.shape[0], c.numPatches, settings.codeDim)
        let whole = lossBatch ?? b
        let (z, patches, encoderCache) = encode(images)
        let q = quantizer.forward(z, beta: beta, normalizer: Float(whole * n * d))
        let decoded = decodeQuantized(q.quantized.reshaped([b, n, d]))

        let target = PatchOps.patchify(images, patch: c.patchSize)
        let pixels = target.lastDim
        let (pixel, pixelGrad) = WeightedMSE.forwardBackward(prediction: decoded.prediction, target: target,
                                                              weight: [Float](repeating: 1, count: b * n),
                                                              normalizer: Float(whole * n * pixels))
        var dPrediction = pixelGrad
        var perceptualLoss: Float = 0
        if let perceptual, lambdaPerceptual != 0 {
            let (loss, dImage) = perceptual.forwardBackward(reconstruction: decoded.image, target: images, lossBatch: whole, backward: backward)
            perceptualLoss = loss
            if let dImage {
                var dPatches = PatchOps.patchify(dImage, patch: c.patchSize)
                dPatches.scale(by: lambdaPerceptual)
                dPrediction.add(dPatches)
            }
        }
        if backward {
            var g = decoderPred.backward(dPrediction, input: decoded.normed)
            g = decoderNorm.backward(g, cache: decoded.normCache)
            for (block, cache) in zip(decoderBlocks, decoded.blockCaches).reversed() { g = block.backward(g, cache: cache) }
            let dq = postQuant.backward(g, input: decoded.input)
            let dz = quantizer.backward(dq.reshaped([b * n, d]), output: q)
            let dPatches = quantProj.backward(dz.reshaped([b, n, d]), input: patches)
            _ = encoder.backward(DecoderInput.dropClassBackward(dPatches), cache: encoderCache)
        }
        let stats = VectorQuantizer.statistics(z, indices: q.indices, codes: quantizer.codes)
        var candidates = [Float](repeating: 0, count: quantizer.codes * d)
        for (slot, row) in plan.candidates.enumerated() where plan.images.contains(row.image) {
            let r = (row.image - plan.images.lowerBound) * n + row.patch
            for j in 0..<d { candidates[slot * d + j] = z.data[r * d + j] }
        }
        return Output(total: pixel + q.commitment + lambdaPerceptual * perceptualLoss, pixel: pixel, commitment: q.commitment,
                      perceptual: perceptualLoss, reconstruction: decoded.image, indices: q.indices, counts: stats.counts,
                      sums: stats.sums, candidates: candidates)
    }
}

/// One tokenizer step's random choices: for each code, the (image, patch) whose encoding it
/// restarts at if it is dead after the step, drawn uniformly from the whole batch; a shard keeps
/// every candidate and the range of batch images it holds (so it fills in only its own).
public struct TokenizerPlan: ShardablePlan, Equatable {
    public struct Row: Sendable, Equatable { public let image: Int, patch: Int }
    public let candidates: [Row]
    /// The images of the batch this plan's step sees.
    public let images: Range<Int>

    public init(candidates: [Row], images: Range<Int>) { self.candidates = candidates; self.images = images }

    public static func draw(codes: Int, batch: Int, patches: Int, rng: inout SeededRandom) -> TokenizerPlan {
        let rows = (0..<codes).map { _ in Row(image: Int(rng.next() % UInt64(batch)), patch: Int(rng.next() % UInt64(patches))) }
        return TokenizerPlan(candidates: rows, images: 0..<batch)
    }

    public func shard(_ range: Range<Int>) -> TokenizerPlan {
        TokenizerPlan(candidates: candidates, images: (images.lowerBound + range.lowerBound)..<(images.lowerBound + range.upperBound))
    }
}
