import Checkpoint
import Foundation
import Objectives
import Tensor
import Training
import ViT

/// The objective a `train-step` times (`--objective`), and what the bench needs of it beyond the
/// seam: its options at full strength, where in a run the timed steps sit (the schedules read the
/// clock), and how the `check` command turns a file of inputs into the losses PyTorch must give.
/// Everything else — network, batch, step, optimizer, EMA — `TrainStepMode` does through the seam.
protocol TrainStepObjective {
    var type: any PretrainingObjective.Type { get }
    var options: any ObjectiveOptions { get }
    /// The clock of the `step`-th timed step.
    func clock(step: Int) -> TrainingClock
    /// The phase name of `afterStep` in `--breakdown`.
    var afterStepPhase: String { get }
    /// Losses of `network`, untouched, for the inputs in `file` (no update).
    func check(_ file: SafeTensorsFile, path: String, network: PretrainingNetwork, clock: TrainingClock) throws -> [String: Any]
    /// The `--mask-ratio` the network is built with.
    var maskRatio: Double { get }
    /// The objective's own flags the network is built with (PeCo: its tokenizer), from the bench's
    /// options (`--model-dir` is the directory the network will be loaded from, if any).
    func objectiveFlags(_ options: Options) throws -> ObjectiveFlagValues
}

extension TrainStepObjective {
    /// The preset's 0.75 (BootMAE's and MAE's default; LoMaR's window masks 12 of 16 with it, as many
    /// as its own 0.8 does; iBOT draws its own ratios).
    var maskRatio: Double { 0.75 }
    func objectiveFlags(_ options: Options) throws -> ObjectiveFlagValues { ObjectiveFlagValues() }
}

/// `--objective NAME` → the objective's bench case.
func trainStepObjective(named name: String) throws -> any TrainStepObjective {
    switch name {
    case BootMAE.name: return BootMAEStep()
    case IBOT.name: return try IBOTStep()
    case LoMaR.name: return LoMaRStep()
    case PeCo.name: return PeCoStep()
    default: throw BenchError("train-step times bootmae, ibot, lomar or peco, not '\(name)'")
    }
}

/// BootMAE as the official recipe runs it at full strength: block masks, weighted loss, λ = 1, EMA
/// decay 0.999; every timed step sits in the first epoch of a long run (λ and the decay stay fixed).
struct BootMAEStep: TrainStepObjective {
    var type: any PretrainingObjective.Type { BootMAE.self }
    let options: any ObjectiveOptions = BootMAE.Options(masking: .block, ema: EMASchedule(start: 0.999, end: 0.999, rampEpochs: 0),
                                                        featureWeight: 1, weightMask: true)
    func clock(step: Int) -> TrainingClock { TrainingClock(step: step, stepsPerEpoch: 1_000_000, epochs: 1) }
    var afterStepPhase: String { "momentum EMA update" }

    /// The tensors "images" and "ids_shuffle" (each image's patch order: kept patches first).
    func check(_ file: SafeTensorsFile, path: String, network: PretrainingNetwork, clock: TrainingClock) throws -> [String: Any] {
        guard let model = network.objective as? BootMAE else { throw BenchError("check needs a BootMAE network") }
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
}

/// iBOT with its default options for a 100-epoch run (2 global crops, block masks with
/// `pred_ratio` 0 / 0.3 ± 0.2, teacher temperatures warmed up over 30 epochs, per-tensor clip 3,
/// cosine momentum and weight decay). The timed steps sit at the start of epoch 1: past the first
/// epoch's frozen last layer (as in 99 of the 100 epochs), so every student tensor is updated.
struct IBOTStep: TrainStepObjective {
    static let epochs = 100
    static let stepsPerEpoch = 1_000_000
    var type: any PretrainingObjective.Type { IBOT.self }
    let options: any ObjectiveOptions
    init() throws { options = try IBOT.options(flags: ObjectiveFlagValues(), epochs: Self.epochs) }
    func clock(step: Int) -> TrainingClock {
        TrainingClock(step: Self.stepsPerEpoch + step, stepsPerEpoch: Self.stepsPerEpoch, epochs: Self.epochs)
    }
    var afterStepPhase: String { "teacher EMA and centres" }

    /// The tensors "images" (views·B, C, S, S; view-major, as a view group) and "masks" (views, B,
    /// H, W; 1 = masked): the student's masks given instead of drawn. Forward, loss and backward
    /// run (the step always computes gradients); no update, no centre change.
    func check(_ file: SafeTensorsFile, path: String, network: PretrainingNetwork, clock: TrainingClock) throws -> [String: Any] {
        let x = try file.tensor("images")
        let (shape, flags) = try file.integers("masks")
        let c = network.config.encoder
        guard shape.count == 4, shape[2] == c.gridSize, shape[3] == c.gridSize,
              x.shape == [shape[0] * shape[1], c.inChans, c.imgSize, c.imgSize] else {
            throw BenchError("\(path): masks \(shape) and images \(x.shape) do not fit \(c.gridSize)×\(c.gridSize) patches "
                             + "of \(c.inChans)×\(c.imgSize)×\(c.imgSize) crops")
        }
        let (views, count, n) = (shape[0], shape[1], c.numPatches)
        guard views == (options as? IBOT.Options)?.globalCrops else { throw BenchError("\(path): \(views) views, not the options' global crops") }
        let masks = (0..<(views * count)).map { crop in flags[(crop * n)..<((crop + 1) * n)].map { $0 != 0 } }
        network.parameters.zeroGrads()
        let report = network.step(PretrainingBatch(groups: [.init(views: views, images: x)]),
                                  plan: IBOTPlan(views: views, count: count, masks: masks), options: options, clock: clock)
        var out: [String: Any] = ["event": "check"]
        for entry in report.losses + report.schedule { out[entry.name] = Double(entry.value) }
        return out
    }
}

/// LoMaR with its defaults (window of half the grid, 4 windows per image, 80% of each masked,
/// standardized pixel target) and the official code's pairing of rows with images and windows
/// (row r: image r mod N, window r mod M), so PyTorch can run the official forward unchanged; the
/// other pairing costs the same (as many rows of as many tokens). No schedule, no EMA.
struct LoMaRStep: TrainStepObjective {
    var type: any PretrainingObjective.Type { LoMaR.self }
    let options: any ObjectiveOptions = LoMaR.Options(windowPairing: .official)
    func clock(step: Int) -> TrainingClock { TrainingClock(step: step, stepsPerEpoch: 1_000_000, epochs: 1) }
    var afterStepPhase: String { "after step (nothing: LoMaR has no EMA)" }

    /// The tensors "images" (B, C, S, S) and, per window row, "row_image", "row_top", "row_left" and
    /// "mask" (rows, K²; 1 = masked, the window's patches row-major): the plan given instead of drawn.
    func check(_ file: SafeTensorsFile, path: String, network: PretrainingNetwork, clock: TrainingClock) throws -> [String: Any] {
        guard let model = network.objective as? LoMaR else { throw BenchError("check needs a LoMaR network") }
        let x = try file.tensor("images")
        let images = try file.integers("row_image").values, tops = try file.integers("row_top").values
        let lefts = try file.integers("row_left").values
        let (maskShape, flags) = try file.integers("mask")
        let k = model.windowSize, c = network.config.encoder
        guard x.shape.count == 4, x.shape[0] > 0, images.count == tops.count, images.count == lefts.count,
              maskShape == [images.count, k * k], images.count % x.shape[0] == 0,
              images.allSatisfy({ (0..<x.shape[0]).contains($0) }),
              (tops + lefts).allSatisfy({ (0...(c.gridSize - k)).contains($0) }) else {
            throw BenchError("\(path): images \(x.shape), \(images.count) rows and mask \(maskShape) do not describe "
                             + "\(k)×\(k) windows of a \(c.gridSize)×\(c.gridSize) grid")
        }
        let plan = LoMaRPlan(batch: x.shape[0], size: k,
                             windows: images.indices.map { TokenWindow(image: images[$0], top: tops[$0], left: lefts[$0]) },
                             masks: images.indices.map { r in flags[(r * k * k)..<((r + 1) * k * k)].map { $0 != 0 } })
        network.parameters.zeroGrads()
        let report = network.step(PretrainingBatch(groups: [.init(views: 1, images: x)]), plan: plan, options: options, clock: clock)
        var out: [String: Any] = ["event": "check"]
        for entry in report.losses { out[entry.name] = Double(entry.value) }
        return out
    }
}

/// PeCo's stage 2 as `bootmae-train pretrain --objective peco` runs it: its default mask ratio 0.4
/// (20 of 49 patches in BEiT block masks, smallest block 4, drawn in the step), the frozen
/// tokenizer's codes of every image computed in the step as the trainer computes them (tokenizer
/// encoder forward, `quant_proj`, nearest code; no gradient), then the masked-code cross-entropy
/// and its backward; AdamW β (0.9, 0.98), no clip, no EMA. The tokenizer is the directory
/// `--tokenizer` names, else the one the `--model-dir` network's config names.
struct PeCoStep: TrainStepObjective {
    var type: any PretrainingObjective.Type { PeCo.self }
    let options: any ObjectiveOptions = PeCo.Options()
    var maskRatio: Double { PeCo.defaultMaskRatio }
    func clock(step: Int) -> TrainingClock { TrainingClock(step: step, stepsPerEpoch: 1_000_000, epochs: 1) }
    var afterStepPhase: String { "after step (nothing: PeCo has no EMA)" }

    func objectiveFlags(_ options: Options) throws -> ObjectiveFlagValues {
        var tokenizer = try options.string("--tokenizer")
        if tokenizer == nil, let dir = try options.string("--model-dir") {
            let url = URL(fileURLWithPath: dir)
            tokenizer = PretrainingNetwork(config: try PretrainingDirectory.readConfig(url)).codePredictor?.tokenizerDirectory(besides: url)?.path
        }
        guard let tokenizer else {
            throw BenchError("train-step --objective peco needs --tokenizer DIR (an exported peco-tokenizer) or a --model-dir whose config names one")
        }
        return try ObjectiveFlagValues(parsing: ["--tokenizer", tokenizer], declared: PeCo.flags, objective: PeCo.name)
    }

    /// The tensors "images" (B, C, S, S), "masks" (B, N; 1 = masked) and "codes" (B, N: PyTorch's
    /// tokenizer's). The step runs as in training, its codes from our tokenizer (forward, loss and
    /// backward; no update); `code_mismatches` counts the patches whose code differs from PyTorch's.
    func check(_ file: SafeTensorsFile, path: String, network: PretrainingNetwork, clock: TrainingClock) throws -> [String: Any] {
        guard let model = network.objective as? PeCo, let tokenizer = model.settings.tokenizer else {
            throw BenchError("check needs a PeCo network with its tokenizer")
        }
        let x = try file.tensor("images")
        let (shape, flags) = try file.integers("masks")
        let (codeShape, theirs) = try file.integers("codes")
        let c = network.config.encoder, n = c.numPatches
        guard shape.count == 2, shape[1] == n, codeShape == shape, x.shape == [shape[0], c.inChans, c.imgSize, c.imgSize] else {
            throw BenchError("\(path): masks \(shape), codes \(codeShape) and images \(x.shape) do not fit \(n) patches "
                             + "of \(c.inChans)×\(c.imgSize)×\(c.imgSize) images")
        }
        let masks = (0..<shape[0]).map { b in flags[(b * n)..<((b + 1) * n)].map { $0 != 0 } }
        network.parameters.zeroGrads()
        let plan = PeCoPlan(masks: masks, maskedInBatch: masks.joined().filter { $0 }.count)
        let report = network.step(PretrainingBatch(groups: [.init(views: 1, images: x)]), plan: plan, options: options, clock: clock)
        let ours = try FrozenTokenizers.load(tokenizer).codes(x).joined()
        var out: [String: Any] = ["event": "check", "code_mismatches": zip(ours, theirs).filter { $0 != $1 }.count]
        for entry in report.losses { out[entry.name] = Double(entry.value) }
        return out
    }
}
