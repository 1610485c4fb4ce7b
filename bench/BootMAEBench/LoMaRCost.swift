import Foundation
import Objectives
import Tensor
import Training
import ViT

/// `bootmae-bench lomar-cost`: LoMaR's claim (junchen14/LoMaR README) measured — one
/// pretraining step (forward + backward, no optimizer) of MAE and LoMaR with the same encoder (the
/// tiny preset, 128×6, patch 4) at several image sizes, alternated in rounds in one process. LoMaR's
/// window is fixed across sizes (default K = 4, its 28 px default), so its tokens per image,
/// M·(K² + 1), do not grow with the image while MAE's (N/4 + 1 encoder, N + 1 decoder) do.
///
/// First it prints the forward FLOPs per image of both from the configs (linear layers, attention
/// matmuls, the iRPE lookups), the arithmetic behind the claim; `--flops-only` stops there
/// (no timing: usable on a busy machine).
///
///   bootmae-bench lomar-cost [--sizes 28,56,112] [--batch 32] [--window 4] [--threads 2] [--seconds 2] [--rounds 2] [--flops-only]
struct LoMaRCostMode {
    let sizes: [Int]
    let batch: Int
    let window: Int
    let seconds: Double
    let rounds: Int
    let threads: Int
    let shards: Int
    let flopsOnly: Bool

    init(_ options: Options) throws {
        let list = try options.string("--sizes") ?? "28,56,112"
        let parsed = list.split(separator: ",").map { Int($0) }
        guard !parsed.isEmpty, parsed.allSatisfy({ ($0 ?? 0) > 0 && $0! % 4 == 0 }) else {
            throw BenchError("--sizes needs image sizes (multiples of the patch, 4) separated by commas, got '\(list)'")
        }
        sizes = parsed.map { $0! }
        batch = try options.int("--batch", default: 32)
        window = try options.int("--window", default: 4)
        seconds = try options.double("--seconds", default: 2)
        rounds = try options.int("--rounds", default: 2)
        (threads, shards) = try configureStepRuntime(options)
        flopsOnly = options.flag("--flops-only")
    }

    /// 2 × multiply-adds of one pre-norm block on `t` tokens of width `d` (MLP `h`), attention over
    /// the same `t` tokens, plus iRPE's q·W lookup (50 buckets per head dimension) when present.
    static func blockFLOPs(tokens t: Double, width d: Double, hidden h: Double, rpe: Bool) -> Double {
        2 * t * d * 3 * d + 2 * 2 * t * t * d + 2 * t * d * d + 2 * 2 * t * d * h + (rpe ? 2 * t * d * Double(RelativePositionBuckets.count) : 0)
    }

    /// Forward FLOPs per image: MAE (encoder on the visible patches + cls, decoder on all N + 1) and
    /// LoMaR (the whole image patch-embedded, the encoder on M windows of K² + 1 tokens each, the head).
    static func forwardFLOPs(mae: PretrainingConfig, lomar: PretrainingConfig) -> (mae: Double, lomar: Double) {
        let e = mae.encoder
        let (n, p, d, h) = (Double(e.numPatches), Double(e.patchDim), Double(e.embedDim), Double(e.mlpHidden))
        let patchEmbed = 2 * n * p * d
        let s = mae.settings(of: MAE.self)!
        let visible = Double(e.numPatches - s.maskedCount(patches: e.numPatches)) + 1
        let dd = Double(s.decoderEmbedDim)
        let maeFLOPs = patchEmbed + Double(e.depth) * blockFLOPs(tokens: visible, width: d, hidden: h, rpe: false)
            + 2 * visible * d * dd + Double(s.decoderDepth) * blockFLOPs(tokens: n + 1, width: dd, hidden: dd * e.mlpRatio, rpe: false)
            + 2 * n * dd * p
        let l = lomar.settings(of: LoMaR.self)!
        let k = l.windowSize(grid: e.gridSize)
        let m = Double(min(l.windows, e.gridSize - k + 1))
        let w = Double(k * k + 1)
        let lomarFLOPs = patchEmbed + m * Double(e.depth) * blockFLOPs(tokens: w, width: d, hidden: h, rpe: true)
            + 2 * m * Double(k * k) * d * p
        return (maeFLOPs, lomarFLOPs)
    }

    struct Case {
        let name: String
        let step: DataParallelStep
        let options: any ObjectiveOptions
        let images: PretrainingBatch
        let tokens: String
    }

    func makeCases(size: Int) throws -> [Case] {
        var rng = SeededRandom(seed: 7)
        let images = PretrainingBatch(images: Tensor(shape: [batch, 1, size, size], data: (0..<(batch * size * size)).map { _ in rng.normal() }))
        let grid = size / 4, n = grid * grid
        let mae = try ModelPreset.tiny.pretrainingConfig(MAE.self, channels: 1, imgSize: size)
        let lomarFlags = try ObjectiveFlagValues(parsing: ["--window-size", "\(window)"], declared: LoMaR.flags, objective: LoMaR.name)
        let lomar = try ModelPreset.tiny.pretrainingConfig(LoMaR.self, channels: 1, imgSize: size, maskRatio: LoMaR.defaultMaskRatio,
                                                           flags: lomarFlags)
        let windows = min(lomar.settings(of: LoMaR.self)!.windows, grid - window + 1)
        func network(_ config: PretrainingConfig) -> DataParallelStep {
            let net = PretrainingNetwork(config: config)
            net.initialize(seed: 3)
            return DataParallelStep(network: net, shards: shards)
        }
        let maskedMAE = MaskingSpec.maskedCount(ratio: 0.75, patches: n)
        return [Case(name: "mae", step: network(mae), options: MAE.Options(), images: images,
                     tokens: "enc \(n - maskedMAE + 1) + dec \(n + 1)"),
                Case(name: "lomar", step: network(lomar), options: LoMaR.Options(), images: images,
                     tokens: "\(windows)×\(window * window + 1) = \(windows * (window * window + 1))")]
    }

    func run() throws {
        print("LoMaR vs MAE: one pretraining step (forward + backward, no optimizer), tiny preset 128×6, patch 4, batch \(batch), "
              + "\(threads) thread(s), \(shards) shard(s); LoMaR window \(window)×\(window), median of ≥ \(seconds) s per case, \(rounds) round(s)")
        print("forward FLOPs per image (analytic; backward ≈ 2× more):")
        for size in sizes {
            let mae = try ModelPreset.tiny.pretrainingConfig(MAE.self, channels: 1, imgSize: size)
            let lomar = try ModelPreset.tiny.pretrainingConfig(LoMaR.self, channels: 1, imgSize: size, maskRatio: LoMaR.defaultMaskRatio,
                flags: try ObjectiveFlagValues(parsing: ["--window-size", "\(window)"], declared: LoMaR.flags, objective: LoMaR.name))
            let f = Self.forwardFLOPs(mae: mae, lomar: lomar)
            print(String(format: "  %4d px  grid %3d  MAE %7.1f MFLOP  LoMaR %7.1f MFLOP  MAE/LoMaR %5.2f", size, size / 4, f.mae / 1e6, f.lomar / 1e6,
                         f.mae / f.lomar))
        }
        if flopsOnly { return }
        let clock = TrainingClock(step: 0, stepsPerEpoch: 100, epochs: 1)
        var rows: [(size: Int, mae: Double, lomar: Double, tokens: [String])] = []
        for size in sizes {
            let cases = try makeCases(size: size)
            // Best round of each case: wall time, and the process CPU time of all threads (the steadier
            // figure on a shared machine, where other people's load stretches the wall time).
            var best = [Double](repeating: .infinity, count: cases.count)
            var bestCPU = [Double](repeating: .infinity, count: cases.count)
            for _ in 0..<rounds {
                for (i, c) in cases.enumerated() {
                    let t = timeMedians(seconds: seconds) {
                        var rng = SeededRandom(seed: 1)
                        c.step.network.parameters.zeroGrads()
                        _ = c.step.trainStep(c.images, rng: &rng, options: c.options, clock: clock)
                    }
                    best[i] = min(best[i], t.wall / Double(batch))
                    bestCPU[i] = min(bestCPU[i], t.cpu / Double(batch))
                }
            }
            rows.append((size, best[0], best[1], cases.map(\.tokens)))
            print(String(format: "  %4d px  grid %3d  MAE %8.2f ms/img (%@)  LoMaR %8.2f ms/img (%@)  MAE/LoMaR %5.2f",
                         size, size / 4, best[0] * 1000, cases[0].tokens as NSString, best[1] * 1000, cases[1].tokens as NSString,
                         best[0] / best[1]))
            print(String(format: "  %4d px  CPU (all threads)  MAE %8.2f ms/img  LoMaR %8.2f ms/img  MAE/LoMaR %5.2f",
                         size, bestCPU[0] * 1000, bestCPU[1] * 1000, bestCPU[0] / bestCPU[1]))
        }
        // Where the curves cross: linear interpolation of log(MAE/LoMaR) between neighbouring sizes.
        for (a, b) in zip(rows, rows.dropFirst()) {
            let (ra, rb) = (log(a.mae / a.lomar), log(b.mae / b.lomar))
            if ra < 0 && rb >= 0 {
                let f = -ra / (rb - ra)
                print(String(format: "crossover: about %.0f px (between %d and %d px)", Double(a.size) + f * Double(b.size - a.size), a.size, b.size))
            }
        }
        if let last = rows.last, let first = rows.first {
            print(String(format: "at %d px: MAE/LoMaR %.2f; LoMaR %d→%d px: ×%.2f, MAE: ×%.2f", last.size, last.mae / last.lomar,
                         first.size, last.size, last.lomar / first.lomar, last.mae / first.mae))
        }
    }
}
