import Checkpoint
import Objectives
import Foundation
import Tensor
import Training
import ViT

/// `bootmae-bench train-step [--model-dir D] [--preset tiny] [--batch 128] [--seconds 3] [--min-iterations 3]
///  [--threads 2] [--shards N] [--json] [--serve] [--breakdown] [--compare-shards A,B] [--with-one-thread] [--rounds 5] [--malloc-arenas N]
///  [--gemm auto|own|blas|avx512|avx2|portable] [--compare-gemm blas,own]`
///
/// One BootMAE pretraining step as `Pretrainer` runs it — block masks, forward and backward of
/// both decoders and the momentum target, AdamW, momentum EMA — on a fixed random batch (no data
/// loading). The network is the preset's (1-channel, as for Fashion-MNIST); `--model-dir` loads its
/// weights from a pretraining directory, which must describe exactly that network. `--shards`
/// splits the batch over that many data-parallel network copies (default: one per thread, as the
/// trainer does). `--breakdown` prints where one step's time goes, phase by phase (StepBreakdown.swift);
/// `--compare-shards 1,2` alternates the two settings in this process and prints medians; `--malloc-arenas`
/// overrides glibc's arena limit (`applyMallocArenas`). `--gemm` picks who runs the GEMMs
/// (`BOOTMAE_GEMM`'s values) and `--compare-gemm blas,own` alternates such settings (GEMMOptions.swift). With `--serve`
/// it answers stdin lines:
///   measure <seconds> <min-iterations>   one timing, as a JSON line
///   check <io.safetensors>               losses for the tensors "images" and "ids_shuffle" (no update)
final class TrainStepMode {
    let network: PretrainingNetwork
    var optimizer: AdamW
    let images: Tensor
    let threads: Int
    /// Data-parallel shards per step (1: the whole batch on `network`, ops split over threads).
    var shards: Int
    private var steppers: [Int: DataParallelStep] = [:]
    var steps = 0
    /// A small fixed rate: many timed steps must not drive random weights to overflow.
    static let lr: Float = 1e-4
    /// The official recipe at full strength: block masks, weighted loss, λ = 1, EMA decay 0.999.
    static let options = BootMAE.Options(masking: .block, ema: EMASchedule(start: 0.999, end: 0.999, rampEpochs: 0),
                                         featureWeight: 1, weightMask: true)
    /// Every timed step sits in the first epoch of a long run (λ and the EMA decay stay fixed).
    var clock: TrainingClock { TrainingClock(step: steps, stepsPerEpoch: 1_000_000, epochs: 1) }

    init(_ options: Options) throws {
        (threads, shards) = try configureStepRuntime(options)
        try applyGEMMPath(options)
        let presetName = try options.string("--preset") ?? "tiny"
        guard let preset = ModelPreset(rawValue: presetName) else { throw BenchError("unknown --preset \(presetName) (tiny, small, base)") }
        let config = try preset.pretrainingConfig(BootMAE.self, channels: 1)
        if let dir = try options.string("--model-dir") {
            let loaded = try PretrainingDirectory.load(URL(fileURLWithPath: dir))
            guard loaded.config == config else {
                throw BenchError("\(dir) holds \(loaded.config), not the \(presetName) BootMAE preset \(config)")
            }
            network = loaded
        } else {
            network = PretrainingNetwork(config: config)
            network.initialize(seed: 0)
        }
        let exempt = network.noDecayNames
        optimizer = AdamW(parameters: network.parameters, beta1: 0.9, beta2: 0.95, weightDecay: 0.05) { name, p in
            .init(decay: AdamW.officialDecay(name, p, exempt: exempt))
        }
        let batch = try options.int("--batch", default: 128)
        let c = config.encoder
        var rng = SeededRandom(seed: 7)
        let shape = [batch, c.inChans, c.imgSize, c.imgSize]
        images = Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.normal() })
    }

    /// What `Pretrainer.train` does per batch, minus data loading and logging.
    func step() {
        var rng = SeededRandom(seed: 0, stream: UInt64(steps))
        network.parameters.zeroGrads()
        let report = stepper(shards: shards).trainStep(PretrainingBatch(images: images), rng: &rng, options: Self.options, clock: clock)
        precondition(report.total.isFinite, "train-step: the loss became \(report.total) at step \(steps)")
        optimizer.step(network.parameters, lr: Self.lr)
        network.afterStep(options: Self.options, clock: clock, report: report)
        steps += 1
    }

    func stepper(shards: Int) -> DataParallelStep {
        if let s = steppers[shards] { return s }
        let s = DataParallelStep(network: network, shards: shards)
        steppers[shards] = s
        return s
    }

    func measure(seconds: Double, minIterations: Int) -> [String: Any] {
        let timing = timeRuns(seconds: seconds, minIterations: minIterations) { step() }
        let t = timing.medianSeconds, batch = images.shape[0]
        let result: [String: Any] = ["event": "train_step", "engine": "swift", "batch": batch, "threads": threads,
                                     "iterations": timing.times.count, "median_s": t, "img_per_s": Double(batch) / t,
                                     "faults_per_call": timing.faultsPerCall]
        return result.merging(memoryStatus()) { a, _ in a }
    }

    /// Losses of the untouched network for given images and masks (the same numbers PyTorch must give).
    func check(_ path: String) throws -> [String: Any] {
        guard let model = network.objective as? BootMAE else { throw BenchError("check needs a BootMAE network") }
        let file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: path))
        let x = try file.tensor("images")
        let (shape, ids) = try file.integers("ids_shuffle")
        let c = network.config.encoder
        guard shape.count == 2, shape[1] == c.numPatches, x.shape.count == 4, x.shape[0] == shape[0] else {
            throw BenchError("\(path): ids_shuffle \(shape) and images \(x.shape) do not fit \(c.numPatches) patches")
        }
        let order = (0..<shape[0]).map { Array(ids[($0 * shape[1])..<(($0 + 1) * shape[1])]) }
        let plan = MaskPlan(order: order, visible: c.numPatches - model.maskedCount)
        let out = model.step(x, plan: plan, weights: plan.neighbourhoodWeights(grid: c.gridSize), featureWeight: 1, backward: false)
        return ["event": "check", "loss": Double(out.loss), "pixel_loss": Double(out.pixelLoss), "feature_loss": Double(out.featureLoss)]
    }

    func run(_ options: Options) throws {
        if options.flag("--serve") {
            let ready: [String: Any] = ["engine": "swift", "batch": images.shape[0], "threads": threads]
            serveCommands(ready: ready.merging(engineDescription()) { a, _ in a }) { words in
                switch words[0] {
                case "measure":
                    return measure(seconds: try argument(words, 1, "seconds"), minIterations: try argument(words, 2, "min-iterations"))
                case "check":
                    guard words.count == 2 else { throw BenchError("check needs <io.safetensors>") }
                    return try check(words[1])
                default:
                    throw BenchError("unknown command '\(words[0])' (measure, check, quit)")
                }
            }
            return
        }
        if !options.flag("--json") { print("gemm: \(BLAS.path); OpenBLAS core \(BLAS.coreName)\(BLAS.coreFallback.map { " (\($0))" } ?? ""); CPU \(CPUFeatures.current.summary)") }
        if options.flag("--breakdown") {
            stepBreakdown(self, seconds: try options.double("--seconds", default: 3))
            return
        }
        let (rounds, seconds) = (try options.int("--rounds", default: 5), try options.double("--seconds", default: 3))
        let variants = try shardVariants(options, threads: threads) { self.shards = $0 } + gemmVariants(options)
        if !variants.isEmpty {
            compareVariants("bootmae train step", batch: images.shape[0], threads: threads, step: step, variants,
                            rounds: rounds, seconds: seconds)
            return
        }
        let r = measure(seconds: try options.double("--seconds", default: 3), minIterations: try options.int("--min-iterations", default: 3))
        if options.flag("--json") {
            emitJSON(r)
        } else {
            print(String(format: "bootmae train step batch %d: %.1f img/s, %.1f ms/step (median of %d)", r["batch"] as! Int,
                         r["img_per_s"] as! Double, (r["median_s"] as! Double) * 1000, r["iterations"] as! Int))
        }
    }
}
