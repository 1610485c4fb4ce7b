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
