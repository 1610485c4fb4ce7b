import Tensor
import ViT

/// Reconstructions with LoMaR's own head, window by window: the patch grid is tiled by K×K windows
/// (the last row and column of tiles moved back to fit, so they may overlap the previous ones),
/// each window is encoded as in training with the plan's masked patches replaced by `mask_token`,
/// and `encoder_pred` predicts its patches. A patch covered by two tiles takes the first tile's
/// prediction. LoMaR trains on windows only, so this is the view of the image its head has; the
/// default mask is random, N − ⌊N·0.2⌋ patches (MAE's rule; each window then holds about its training share).
/// These are whole-image masks, what the service draws and `eval --masking` compares objectives on;
/// `eval` by default measures LoMaR's own task instead (`LoMaROwnMasks.swift`).
extension LoMaR: PixelReconstructing {
    public var defaultMasking: MaskingSpec { .random }
    public var maskedCount: Int { MaskingSpec.maskedCount(ratio: settings.maskRatio ?? 0.8, patches: encoder.config.numPatches) }

    /// Tiles' top (and left) rows: 0, K, 2K, … and grid − K.
    public static func tileStarts(grid: Int, size k: Int) -> [Int] {
        var starts = Array(stride(from: 0, through: grid - k, by: k))
        if starts.last != grid - k { starts.append(grid - k) }
        return starts
    }

    public func predictPixels(_ images: Tensor, plan: MaskPlan) -> PixelPrediction {
        predictPixels(images, plan: plan, rowsPerPass: 2048)
    }

    /// `rowsPerPass` bounds the window rows encoded at once, whole images per pass (an eval batch of
    /// 500 images at 112 px is 24 500 windows; kept whole, the forward held 22 GB).
    public func predictPixels(_ images: Tensor, plan: MaskPlan, rowsPerPass: Int) -> PixelPrediction {
        let c = encoder.config
        let (b, n, grid, k, p) = (images.shape[0], c.numPatches, c.gridSize, windowSize, c.patchSize)
        let starts = Self.tileStarts(grid: grid, size: k)
        let chunk = max(1, rowsPerPass / (starts.count * starts.count))
        let masked = plan.lossMask
        let workspace = InferenceWorkspace()
        let parts = stride(from: 0, to: b, by: chunk).map { lo in
            let range = lo..<min(b, lo + chunk)
            return predictTiles(images.batchSlice(range), mask: Array(masked[(lo * n)..<(range.upperBound * n)]), starts: starts,
                                workspace: workspace)
        }
        let patches = parts.count == 1 ? parts[0] : Tensor(concatenatingBatches: parts)
        let image = PixelTargets.unpatchifyChannelsLast(patches, patch: p, channels: c.inChans, height: c.imgSize, width: c.imgSize)
        return PixelPrediction(patches: PatchOps.patchify(image, patch: p),
                               normalization: pixelNormalization)
    }

    /// (B, N, p·p·C) predictions in (p, q, c) order for `images` tiled at `starts`, `mask` = B·N flags (1 = masked).
    func predictTiles(_ images: Tensor, mask: [Float], starts: [Int], workspace: InferenceWorkspace) -> Tensor {
        let c = encoder.config
        let (b, n, grid, k) = (images.shape[0], c.numPatches, c.gridSize, windowSize)
        let windows = (0..<b).flatMap { image in starts.flatMap { top in starts.map { TokenWindow(image: image, top: top, left: $0) } } }
        let patchOf = { (w: TokenWindow, i: Int) in (w.top + i / k) * grid + w.left + i % k }
        let flags = windows.flatMap { w in (0..<(k * k)).map { mask[w.image * n + patchOf(w, $0)] == 1 } }
        let prediction = inferWindows(images, windows: windows, size: k, maskFlags: flags, workspace: workspace)
        let dim = prediction.lastDim
        // Window rows back to (B, N, p·p·C), first tile first.
        var filled = [Bool](repeating: false, count: b * n)
        return Tensor(shape: [b, n, dim]) { out in
            prediction.withPointer { src in
                for (r, w) in windows.enumerated() {
                    for i in 0..<(k * k) {
                        let row = w.image * n + patchOf(w, i)
                        if filled[row] { continue }
                        filled[row] = true
                        (out + row * dim).update(from: src + (r * k * k + i) * dim, count: dim)
                    }
                }
            }
        }
    }

    /// The training forward without its caches: `images`' patches → the K×K `windows` → masked
    /// patches ← mask_token → cls + encoder + norm per window → encoder_pred: (R, K², p·p·C), (p, q, c) order.
    func inferWindows(_ images: Tensor, windows: [TokenWindow], size k: Int, maskFlags flags: [Bool],
                      workspace: InferenceWorkspace) -> Tensor {
        let rows = TokenOps.windows(encoder.patchEmbed.forward(images).0, gridWidth: encoder.config.gridSize, size: k, windows: windows)
        let latent = encoder.inferTokens(TokenOps.replaceMasked(rows, mask: flags, with: maskToken.value), workspace: workspace)
        return encoderPred.forward(DecoderInput.dropClass(latent))
    }
}
