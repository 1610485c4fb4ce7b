import Tensor
import ViT

/// LoMaR's own task, as `eval` measures it: the windows and masks of a training step (M windows of
/// K×K patches per image, ⌊K²·mask_ratio⌋ of each masked, the run's `--window-pairing`), each window
/// encoded alone, and the masked patches of every window predicted, the patches its loss is over.
extension LoMaR: OwnMaskReconstructing {
    public func ownMasks(options: (any ObjectiveOptions)?) -> OwnMasks {
        let k = windowSize, masked = settings.maskedCount(window: k)
        let windows = LoMaRPlan.windowCount(grid: encoder.config.gridSize, size: k, count: settings.windows)
        let pairing = switch Self.windowPairing(options) {
        case .distinct: "windows distinct per image"
        case .official: "rows paired as the official code (row r: image r mod N, window r mod M)"
        }
        return OwnMasks(name: "windows", maskRatio: Double(masked) / Double(k * k),
                        detail: "\(windows) windows of \(k)×\(k) patches per image, \(masked) of \(k * k) masked in each, \(pairing)")
    }

    /// The pairing a run trained with (its options; nil: the default, distinct).
    static func windowPairing(_ options: (any ObjectiveOptions)?) -> WindowPairing {
        (options.map { PretrainingNetwork.cast($0, for: Self.self) } ?? Options()).windowPairing
    }

    public func predictOwnMasked(_ images: Tensor, options: (any ObjectiveOptions)?, rng: inout SeededRandom) -> MaskedPatchPrediction {
        predictOwnMasked(images, options: options, rng: &rng, rowsPerPass: 2048)
    }

    /// `rowsPerPass` bounds the window rows encoded at once, whole images per pass (as `predictPixels`).
    /// Rows pair images and windows as the run trained (`options`; nil: the default, distinct).
    public func predictOwnMasked(_ images: Tensor, options: (any ObjectiveOptions)?, rng: inout SeededRandom, rowsPerPass: Int) -> MaskedPatchPrediction {
        let c = encoder.config
        let (b, grid, k, p, channels) = (images.shape[0], c.gridSize, windowSize, c.patchSize, c.inChans)
        let plan = LoMaRPlan.draw(batch: b, grid: grid, size: k, count: settings.windows, masked: settings.maskedCount(window: k),
                                  pairing: Self.windowPairing(options), rng: &rng)
        let chunk = max(1, rowsPerPass / plan.windowsPerImage)
        let workspace = InferenceWorkspace()
        var rows: [Tensor] = [], imageOf: [Int] = [], patchOf: [Int] = []
        for lo in stride(from: 0, to: b, by: chunk) {
            let range = lo..<min(b, lo + chunk)
            let part = plan.shard(range)
            let prediction = inferWindows(images.batchSlice(range), windows: part.windows, size: k, maskFlags: part.maskFlags,
                                          workspace: workspace)
            let dim = prediction.lastDim
            // Masked window patches only, (p, q, c) → (c, py, px) order (the seam's patch layout).
            var picked: [Int] = []
            for (r, w) in part.windows.enumerated() {
                for i in 0..<(k * k) where part.masks[r][i] {
                    picked.append(r * k * k + i)
                    imageOf.append(lo + w.image)
                    patchOf.append((w.top + i / k) * grid + w.left + i % k)
                }
            }
            rows.append(Tensor(shape: [picked.count, dim]) { out in
                prediction.withPointer { src in
                    for (j, row) in picked.enumerated() {
                        for py in 0..<p { for px in 0..<p { for ch in 0..<channels {
                            out[j * dim + (ch * p + py) * p + px] = src[row * dim + (py * p + px) * channels + ch]
                        } } }
                    }
                }
            })
        }
        let all = rows.count == 1 ? rows[0] : Tensor(concatenatingBatches: rows)
        return MaskedPatchPrediction(rows: all, images: imageOf, patches: patchOf,
                                     normalization: pixelNormalization)
    }
}
