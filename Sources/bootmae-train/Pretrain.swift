import ArgumentParser
import Foundation
import Tensor
import Training
import ViT

/// `bootmae-train pretrain`: MAE or BootMAE pretraining into a run folder, resumable.
struct Pretrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pretrain a ViT with BootMAE or MAE on an image folder or an IDX dataset.",
        discussion: """
        Writes RUN_DIR/{config.json, recipe.json, checkpoint.safetensors, metrics.jsonl, loss.png, result.json}.
        Ctrl-C (SIGINT) or SIGTERM saves a checkpoint before exiting; --resume continues exactly where it stopped.
        """)

    @OptionGroup var common: CommonTrainingOptions

    @Option(help: "Objective: bootmae (momentum targets + target-aware decoders) or mae.")
    var objective: PretrainingConfig.Objective = .bootmae

    @Option(help: "Model size: tiny (128 wide, 6 deep; for a 2-core CPU), small (192×12), base (ViT-B/16).")
    var preset: ModelPreset = .tiny

    @Option(help: "Input size in pixels (default: the preset's; tiny uses 28, Fashion-MNIST's native size).")
    var imgSize: Int?

    @Option(help: "Input channels: 1 (grayscale) or 3 (RGB). Default: the dataset's: 1 for IDX files, 3 for image folders (converted to RGB, as torchvision does).")
    var channels: Int?

    @Option(help: "Patch size (default: the preset's).")
    var patchSize: Int?

    @Option(help: "Share of patches masked.")
    var maskRatio: Double = 0.75

    @Option(help: "Images per step.")
    var batchSize: Int = 256

    @Option(help: "Base learning rate; the peak lr is blr × batch / 256 (the official linear scaling rule).")
    var blr: Double = 1.5e-4

    @Option(help: "Peak learning rate (overrides --blr).")
    var lr: Double?

    @Option(help: "Final learning rate of the cosine schedule (default: BootMAE peak/24 as 1e-4 vs 2.4e-3 officially; MAE 0).")
    var minLR: Double?

    @Option(help: "Warmup epochs (default: 5% of the epochs, as 40 of 800 officially).")
    var warmupEpochs: Double?

    @Option(help: "AdamW weight decay (β = 0.9, 0.95).")
    var weightDecay: Double = 0.05

    @Option(help: "BootMAE momentum encoder: EMA decay at the start.")
    var emaStart: Double = 0.999

    @Option(help: "BootMAE momentum encoder: EMA decay after the ramp.")
    var emaEnd: Double = 0.9999

    @Option(help: "Epochs of the EMA ramp (default: 1/8 of the epochs, as 100 of 800 officially).")
    var emaRampEpochs: Double?

    @Option(help: "BootMAE feature-loss weight λ (ramped in over the first 25% of epochs).")
    var featureWeight: Double = 1

    @Flag(help: "BootMAE: plain masked MSE instead of the neighbourhood-weighted loss.")
    var noWeightMask = false

    @Flag(help: "BootMAE ablation: decoders without cross-attention to encoder features (plain blocks on the latent).")
    var noDecoderContext = false

    @Option(help: "Masking: block (BootMAE's block + random top-up + roll) or random (MAE). Default: the objective's.")
    var masking: String?

    @Option(help: "Write a checkpoint every N steps (and at the end, and on SIGINT/SIGTERM).")
    var checkpointEvery: Int = 200

    func validate() throws {
        try ensure(batchSize >= 1, "--batch-size must be positive")
        try ensure(imgSize.map { $0 >= 1 } ?? true && patchSize.map { $0 >= 1 } ?? true, "--img-size and --patch-size must be positive")
        try ensure(channels.map { $0 == 1 || $0 == 3 } ?? true, "--channels is 1 or 3")
        try ensure((0.05...0.95).contains(maskRatio), "--mask-ratio must be within 0.05...0.95")
        try ensure(masking.map { $0 == "block" || $0 == "random" } ?? true, "--masking is block or random")
        try ensure(blr > 0 && lr.map { $0 > 0 } ?? true, "the learning rate (--blr, --lr) must be positive")
        try ensure(minLR.map { $0 >= 0 && $0 <= (lr ?? blr * Double(batchSize) / 256) } ?? true, "--min-lr must be within 0 and the peak lr")
        try ensure(warmupEpochs.map { $0 >= 0 } ?? true && emaRampEpochs.map { $0 >= 0 } ?? true, "--warmup-epochs and --ema-ramp-epochs cannot be negative")
        try ensure(weightDecay >= 0, "--weight-decay cannot be negative")
        try ensure((0...1).contains(emaStart) && (0...1).contains(emaEnd), "--ema-start and --ema-end are decays within 0...1")
        try ensure(featureWeight >= 0, "--feature-weight cannot be negative")
        try ensure(objective == .bootmae || !noDecoderContext, "--no-decoder-context is a BootMAE ablation")
        try ensure(objective == .bootmae || !noWeightMask, "--no-weight-mask is a BootMAE option (MAE's loss has no weight mask)")
        try ensure(checkpointEvery >= 1, "--checkpoint-every must be positive")
    }

    func run() throws {
        try runTraining(common) { dir, stop in
            let progress = ProgressReporter()
            let (config, recipe): (PretrainingConfig, PretrainRecipe)
            if common.resume {
                config = try dir.readJSON(PretrainingConfig.self, from: "config.json")
                recipe = try dir.readJSON(PretrainRecipe.self, from: "recipe.json")
                try checkRecordedDataset(recipe.data, run: dir)
            } else {
                let dataset = try Datasets.open(common.dataPath, split: .train)
                var built = preset.pretrainingConfig(objective: objective, imgSize: imgSize, patchSize: patchSize,
                                                     channels: channels ?? dataset.channels, maskRatio: maskRatio)
                if noDecoderContext { built.decoderContext = false }
                config = built
                let epochs = common.epochs ?? 100
                let peak = lr ?? blr * Double(batchSize) / 256
                recipe = PretrainRecipe(
                    data: common.absoluteDataPath, seed: common.seed, epochs: epochs, batchSize: batchSize, lr: peak,
                    minLR: minLR ?? (objective == .bootmae ? peak / 24 : 0),
                    warmupEpochs: warmupEpochs ?? Double(epochs) * 0.05, weightDecay: weightDecay,
                    ema: EMASchedule(start: emaStart, end: emaEnd, rampEpochs: emaRampEpochs ?? Double(epochs) / 8),
                    featureWeight: featureWeight, weightMask: !noWeightMask,
                    masking: masking ?? objective.defaultMasking, checkpointEvery: checkpointEvery,
                    subset: common.subset)
            }
            let trainer = try Pretrainer(config: config, recipe: recipe, run: dir, resume: common.resume)
            progress.log("pretrain \(config.objective.rawValue): \(config.encoder.embedDim)×\(config.encoder.depth) ViT, "
                         + "\(config.encoder.imgSize) px / patch \(config.encoder.patchSize), \(channelsText(config.encoder.inChans)), "
                         + "\(trainer.imageCount) images, \(trainer.stepsPerEpoch) steps × \(recipe.epochs) epochs, "
                         + "batch \(recipe.batchSize), lr \(recipe.lr) → \(dir.url.path)")
            let summary = try trainer.train(maxSteps: common.maxSteps, stop: stop, progress: progress)
            try dir.writeJSON(summary, to: "result.json")
            try? trainer.writeLossPlot()
            let loss = summary.finalLoss.map { String(format: "%.4f", $0) } ?? "null"
            print("{\"steps\": \(summary.steps), \"epochs\": \(String(format: "%.2f", summary.epochs)), \"final_loss\": \(loss), "
                  + "\"img_per_s\": \(String(format: "%.1f", summary.imagesPerSecond)), \"stopped_early\": \(summary.stoppedEarly)}")
        }
    }
}

/// The shared shape of a training command: threads, SIGINT/SIGTERM handling, the run folder (with
/// this command line recorded), errors as one-line messages, and exit status 130 after an
/// interruption (the checkpoint is saved, but the run is not finished).
func runTraining(_ common: CommonTrainingOptions, _ body: (RunDirectory, StopFlag) throws -> Void) throws {
    TensorRuntime.configure(threads: common.threads)
    let stop = installStopHandlers()
    do {
        let dir = try RunDirectory(common.out, mode: common.mode)
        if common.resume && dir.isFinished {
            // Nothing to do, and nothing to rewrite: its result.json stays as the run left it.
            FileHandle.standardError.write(Data("\(common.out) already finished (see its result.json); nothing to resume. To train longer, start a new run.\n".utf8))
            return
        }
        dir.recordCommand()
        try body(dir, stop)
    } catch {
        throw fail("error: \(error)", code: 1)
    }
    if stop.isSet { throw ExitCode(130) }
}

/// Flags every training subcommand shares.
struct CommonTrainingOptions: ParsableArguments {
    @Option(help: "Dataset: an IDX folder or an ImageFolder root (root/<class>/<image>). Default: Fashion-MNIST in /usr/share/datasets/fashion-mnist.")
    var data: String?

    @Option(help: "Run folder for checkpoints, metrics and results.")
    var out: String

    @Option(help: "Random seed (data order, augmentation, masks, initialisation).")
    var seed: UInt64 = 0

    @Option(help: "Epochs to train (default: 100 for pretrain, 50 for finetune).")
    var epochs: Int?

    @Option(help: "Stop after N steps in this invocation (smoke runs; resume later).")
    var maxSteps: Int?

    @Flag(help: "Continue the run in --out from its checkpoint, with its saved recipe (only --threads and --max-steps may be given too).")
    var resume = false

    @Flag(help: "Start over in an --out folder that already holds a run.")
    var overwrite = false

    @Option(help: "Compute threads.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Train on only N images of the train split (spread evenly over it): quick experiments.")
    var subset: Int?

    var mode: RunDirectory.Mode { resume ? .resume : (overwrite ? .overwrite : .fresh) }

    static let defaultData = "/usr/share/datasets/fashion-mnist"
    var dataPath: String { data ?? Self.defaultData }
    /// Recorded in recipe.json absolute, so --resume works from any working directory.
    var absoluteDataPath: String { URL(fileURLWithPath: dataPath).standardizedFileURL.path }

    /// Flags --resume accepts; the rest describe a run, and the saved recipe already does.
    static let resumeFlags: Set<String> = ["--out", "--resume", "--threads", "--max-steps"]

    func validate() throws {
        try ensure(!(resume && overwrite), "--resume and --overwrite exclude each other")
        try ensure(maxSteps.map { $0 >= 1 } ?? true, "--max-steps must be positive")
        try ensure(epochs.map { $0 >= 1 } ?? true, "--epochs must be positive")
        try ensure(subset.map { $0 >= 1 } ?? true, "--subset must be positive")
        try ensure(threads >= 1, "--threads must be positive")
        if resume {
            // Silently ignoring them would train with other settings than the user asked for.
            let ignored = givenFlags().filter { !Self.resumeFlags.contains($0) }
            try ensure(ignored.isEmpty, "--resume continues the run with the recipe saved in \(out)/recipe.json, so "
                       + "\(ignored.joined(separator: ", ")) cannot change it; drop them, or start a new run (another --out, or --overwrite)")
        }
    }
}

extension PretrainingConfig.Objective: ExpressibleByArgument {}
extension ModelPreset: ExpressibleByArgument {}

/// SIGINT / SIGTERM set a flag the loop polls; a second signal exits at once.
func installStopHandlers() -> StopFlag {
    let flag = StopFlag()
    for sig in [SIGINT, SIGTERM] {
        signal(sig, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler { @Sendable in
            if flag.isSet { exit(130) }
            FileHandle.standardError.write(Data("\nstopping after this step (signal again to quit at once)\n".utf8))
            flag.set()
        }
        source.resume()
        signalSources.append(source)
    }
    return flag
}

/// Keeps the signal sources alive for the life of the process.
nonisolated(unsafe) var signalSources: [DispatchSourceSignal] = []

/// A resumed run reads the dataset its recipe.json names; say so when it is gone (moved, say).
func checkRecordedDataset(_ path: String, run: RunDirectory) throws {
    guard !FileManager.default.fileExists(atPath: path) else { return }
    throw ValidationError("the run's dataset \(path) no longer exists; if it moved, set \"data\" in "
                          + "\(run.file("recipe.json").path) to its new path")
}

/// The dataset a measurement of `model` reads by default: the one its run trained on (its
/// recipe.json), else Fashion-MNIST.
func defaultDataset(of model: String) -> String {
    struct Recorded: Decodable { let data: String }
    let recipe = URL(fileURLWithPath: model).appendingPathComponent("recipe.json")
    return (try? JSONDecoder().decode(Recorded.self, from: Data(contentsOf: recipe)))?.data ?? CommonTrainingOptions.defaultData
}

/// The long flags on this process's command line after the subcommand ("--lr=1" counts as "--lr"),
/// for rules about flags that carry a default and so cannot be told apart from absent ones.
func givenFlags() -> [String] {
    CommandLine.arguments.dropFirst(2).filter { $0.hasPrefix("--") }.map { String($0.prefix { $0 != "=" }) }
}

/// Throws `message` as a usage error (exit 64) unless `condition` holds.
func ensure(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw ValidationError(message()) }
}

/// "1 channel (grayscale)" or "3 channels (RGB)", for run headers.
func channelsText(_ channels: Int) -> String {
    channels == 1 ? "1 channel (grayscale)" : "\(channels) channels (RGB)"
}
