import Checkpoint
import Objectives
import Foundation
import Tensor
import Training
import ViT

/// `bootmae-bench train-step [--objective bootmae|ibot|lomar|peco] [--model-dir D] [--tokenizer T] [--preset tiny] [--batch 128] [--seconds 3] [--min-iterations 3]
///  [--threads 2] [--shards N] [--json] [--serve] [--breakdown] [--compare-shards A,B] [--with-one-thread] [--rounds 5] [--malloc-arenas N]
///  [--gemm auto|own|blas|avx512|avx2|portable] [--compare-gemm blas,own] [--compare-attention fused,gemm]
///  [--compare-linear-bias store,pass] [--compare-local-crops 0,4,8] [--compare-prefetch-c on,off]
///  [--compare-k-order resident,sweep] [--compare-gemm-driver new,old] [--hash-after N]`
///
/// One pretraining step of `--objective` (default bootmae) as `Pretrainer` runs it — the plan (masks)
/// drawn inside the step, forward and backward over the shards, the objective's `prepareUpdate`
/// (iBOT: per-tensor clip, scheduled weight decay), AdamW with the objective's betas and decay,
/// `afterStep` (BootMAE: momentum EMA; iBOT: teacher EMA and centres) — on a fixed random batch
/// with the view groups the objective's `dataViews` asks for (no data loading; iBOT: 2 global crops;
/// PeCo: the frozen tokenizer's codes computed in the step, from `--tokenizer T` or the one the
/// `--model-dir` config names). What differs per objective is in TrainStepObjective.swift. The network is the preset's
/// (1-channel, as for Fashion-MNIST); `--model-dir` loads its weights from a pretraining directory,
/// which must describe exactly that network. `--shards` splits the batch over that many
/// data-parallel network copies (default: one per thread, as the trainer does). `--breakdown`
/// prints where one step's time goes, phase by phase (StepBreakdown.swift); `--compare-shards 1,2`
/// alternates the two settings in this process and prints medians; `--malloc-arenas` overrides
/// glibc's arena limit (`applyMallocArenas`). `--gemm` picks who runs the GEMMs (`BOOTMAE_GEMM`'s
/// values) and `--compare-gemm blas,own` alternates such settings, `--compare-attention fused,gemm` the
/// fused attention kernel and the two-GEMM path, `--compare-linear-bias store,pass` the Linear bias
/// in the GEMM's store or in a pass of its own, `--compare-prefetch-c on,off` the GEMM prefetching
/// each tile's C or not, `--compare-k-order resident,sweep` C's row blocks kept in cache across K
/// blocks or swept per K block, `--compare-gemm-driver new,old` both of these against neither
/// (GEMMOptions.swift), `--compare-local-crops 0,4,8` (iBOT) that many local crops per image at their
/// default size and scale. `--hash-after N` prints the SHA-256 of every checkpoint tensor after N steps
/// (ParameterHash.swift), to show two settings compute the same bits (GEMM switches only: each variant
/// starts from a network with the default options). With `--serve`
/// it answers stdin lines:
///   measure <seconds> <min-iterations>   one timing, as a JSON line
///   check <io.safetensors>               losses for given inputs, no update (BootMAE: tensors "images" and
///                                        "ids_shuffle"; iBOT: "images" and "masks"; PeCo: also "codes",
///                                        TrainStepObjective.swift)
final class TrainStepMode {
    let objective: any TrainStepObjective
    let network: PretrainingNetwork
    var optimizer: AdamW
    var batch: PretrainingBatch
    let threads: Int
    /// Data-parallel shards per step (1: the whole batch on `network`, ops split over threads).
    var shards: Int
    private var steppers: [Int: DataParallelStep] = [:]
    var steps = 0
    /// A small fixed rate: many timed steps must not drive random weights to overflow.
    static let lr: Float = 1e-4
    /// The objective's options (a `--compare-local-crops` variant changes them with the batch).
    var options: any ObjectiveOptions
    var clock: TrainingClock { objective.clock(step: steps) }
    var name: String { objective.type.name }

    init(_ options: Options) throws {
        (threads, shards) = try configureStepRuntime(options)
        try applyGEMMPath(options)
        objective = try trainStepObjective(named: try options.string("--objective") ?? BootMAE.name)
        self.options = objective.options
        let presetName = try options.string("--preset") ?? "tiny"
        guard let preset = ModelPreset(rawValue: presetName) else { throw BenchError("unknown --preset \(presetName) (tiny, small, base)") }
        let type = objective.type
        let config = try preset.pretrainingConfig(type, channels: 1, maskRatio: objective.maskRatio, flags: try objective.objectiveFlags(options))
        if let dir = try options.string("--model-dir") {
            let loaded = try PretrainingDirectory.load(URL(fileURLWithPath: dir))
            guard loaded.config == config else {
                throw BenchError("\(dir) holds \(loaded.config), not the \(presetName) \(type.displayName) preset \(config)")
            }
            network = loaded
        } else {
            network = PretrainingNetwork(config: config)
            network.initialize(seed: 0)
        }
        let exempt = network.noDecayNames
        optimizer = AdamW(parameters: network.parameters, beta1: Float(type.defaultBetas.beta1), beta2: Float(type.defaultBetas.beta2),
                          weightDecay: Float(type.defaultWeightDecay)) { name, p in
            .init(decay: AdamW.officialDecay(name, p, exempt: exempt))
        }
        batch = Self.randomBatch(images: try options.int("--batch", default: 128), network: network, options: objective.options)
    }

    /// `--compare-local-crops 0,4,8` (iBOT): the step with that many local crops per image at the
    /// default size and scale, each count's batch drawn once (its global crops the same in all).
    func localCropVariants(_ options: Options) throws -> [StepVariant] {
        guard let list = try options.string("--compare-local-crops") else { return [] }
        guard let base = objective.options as? IBOT.Options else { throw BenchError("--compare-local-crops needs --objective ibot") }
        return try list.split(separator: ",").map { word in
            guard let n = Int(word), n >= 0 else { throw BenchError("--compare-local-crops \(word): expected a count ≥ 0") }
            var o = base
            o.localCrops = n
            let b = Self.randomBatch(images: batch.count, network: network, options: o)
            let size = o.localCropSize(for: network.config.encoder)
            return StepVariant(name: "\(n) local crops of \(size) px") { self.options = o; self.batch = b }
        }
    }

    /// Normal noise in every view group the objective asks for, drawn group after group.
    static func randomBatch(images: Int, network: PretrainingNetwork, options: any ObjectiveOptions) -> PretrainingBatch {
        let c = network.config.encoder
        let groups = network.dataViews(options: options) ?? [ViewGroupSpec(views: 1, size: c.imgSize)]
        var rng = SeededRandom(seed: 7)
        return PretrainingBatch(groups: groups.map { g in
            let shape = [g.views * images, c.inChans, g.size, g.size]
            return PretrainingBatch.Group(views: g.views, images: Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.normal() }))
        })
    }

    /// What `Pretrainer.train` does per batch, minus data loading and logging.
    func step() {
        var rng = SeededRandom(seed: 0, stream: UInt64(steps))
        network.parameters.zeroGrads()
        let report = stepper(shards: shards).trainStep(batch, rng: &rng, options: options, clock: clock)
        update(report)
    }

    /// The end of a step after its backward pass, as `Pretrainer.train`: the objective's
    /// adjustment (clipping, frozen tensors, scheduled decay), AdamW, then `afterStep`.
    func update(_ report: StepReport, phase: PhaseMarker? = nil) {
        precondition(report.total.isFinite, "train-step: the \(name) loss became \(report.total) at step \(steps)")
        let adjustment = network.prepareUpdate(options: options, clock: clock, baseWeightDecay: objective.type.defaultWeightDecay)
        if let phase, adjustment != UpdateAdjustment() { phase("clip, freeze (prepareUpdate)") }
        optimizer.step(network.parameters, lr: Self.lr, weightDecay: adjustment.weightDecay.map { Float($0) }, frozen: adjustment.frozen)
        phase?("AdamW")
        network.afterStep(options: options, clock: clock, report: report)
        phase?(objective.afterStepPhase)
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
        let t = timing.medianSeconds, batch = self.batch.count
        let result: [String: Any] = ["event": "train_step", "engine": "swift", "batch": batch, "threads": threads,
                                     "iterations": timing.times.count, "median_s": t, "img_per_s": Double(batch) / t,
                                     "faults_per_call": timing.faultsPerCall]
        return result.merging(memoryStatus()) { a, _ in a }
    }

    /// Losses of the untouched network for given inputs (the same numbers PyTorch must give).
    func check(_ path: String) throws -> [String: Any] {
        try objective.check(try SafeTensorsFile(contentsOf: URL(fileURLWithPath: path)), path: path, network: network, clock: clock)
    }

    func run(_ options: Options) throws {
        if options.flag("--serve") {
            let ready: [String: Any] = ["engine": "swift", "batch": batch.count, "threads": threads]
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
            + attentionVariants(options) + linearBiasVariants(options) + prefetchVariants(options) + kOrderVariants(options) + driverVariants(options)
            + localCropVariants(options)
        if try options.string("--hash-after") != nil {
            let n = try options.int("--hash-after", default: 3)
            // Each setting from the same fresh start (a new network, seed 0), one hash per setting.
            for v in variants.isEmpty ? [StepVariant(name: "as configured") {}] : variants {
                v.setUp()
                let fresh = try TrainStepMode(options)
                for _ in 0..<n { fresh.step() }
                print("\(v.name): parameters after \(n) steps: sha256 \(parameterHash(fresh.network.checkpointParameters))")
            }
            return
        }
        if !variants.isEmpty {
            compareVariants("\(name) train step", batch: batch.count, threads: threads, step: step, variants,
                            rounds: rounds, seconds: seconds)
            return
        }
        let r = measure(seconds: try options.double("--seconds", default: 3), minIterations: try options.int("--min-iterations", default: 3))
        if options.flag("--json") {
            emitJSON(r)
        } else {
            print(String(format: "%@ train step batch %d: %.1f img/s, %.1f ms/step (median of %d)", name as NSString, r["batch"] as! Int,
                         r["img_per_s"] as! Double, (r["median_s"] as! Double) * 1000, r["iterations"] as! Int))
        }
    }
}
