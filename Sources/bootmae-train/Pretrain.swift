import ArgumentParser
import Foundation
import Tensor
import Training
import ViT
import Objectives

/// `bootmae-train pretrain`: pretraining with any registered objective into a run folder, resumable.
struct Pretrain: ParsableCommand {
    static var configuration: CommandConfiguration { CommandConfiguration(
        abstract: "Pretrain a ViT with a masked-image-modeling objective on an image folder or an IDX dataset.",
        discussion: """
        Writes RUN_DIR/{config.json, recipe.json, checkpoint.safetensors, metrics.jsonl, loss.png, result.json}.
        Ctrl-C (SIGINT) or SIGTERM saves a checkpoint before exiting; --resume continues exactly where it stopped.

        Objectives and their own options:

        \(Pretrain.objectiveHelp)
        """) }

    @OptionGroup var common: CommonTrainingOptions

    @Option(help: ArgumentHelp("Objective: \(ObjectiveRegistry.names.joined(separator: ", ")) (each one's own options are listed below).",
                               valueName: "name"))
    var objective: String = BootMAE.name

    @Option(help: "Model size: tiny (128 wide, 6 deep; for a 2-core CPU), small (192×12), base (ViT-B/16).")
    var preset: ModelPreset = .tiny

    @Option(help: "Input size in pixels (default: the preset's; tiny uses 28, Fashion-MNIST's native size).")
    var imgSize: Int?

    @Option(help: "Input channels: 1 (grayscale) or 3 (RGB). Default: the dataset's: 1 for IDX files, 3 for image folders (converted to RGB, as torchvision does).")
    var channels: Int?

    @Option(help: "Patch size (default: the preset's).")
    var patchSize: Int?

    @Option(help: "Share of patches masked (default: the objective's; MAE and BootMAE 0.75, LoMaR 0.8 of each window).")
    var maskRatio: Double?

    @Option(help: "Images per step.")
    var batchSize: Int = 256

    @Option(help: "Base learning rate; the peak lr is blr × batch / 256 (the official linear scaling rule). Default: the objective's (MAE and BootMAE 1.5e-4).")
    var blr: Double?

    @Option(help: "Peak learning rate (overrides --blr).")
    var lr: Double?

    @Option(help: "Final learning rate of the cosine schedule (default: the objective's; BootMAE peak/24 as 1e-4 vs 2.4e-3 officially, MAE 0).")
    var minLR: Double?

    @Option(help: "Warmup epochs (default: the objective's share; MAE and BootMAE 5% of the epochs, as 40 of 800 officially).")
    var warmupEpochs: Double?

    @Option(help: "AdamW weight decay (default: the objective's; MAE and BootMAE 0.05 with β = 0.9, 0.95).")
    var weightDecay: Double?

    @Option(help: "Write a checkpoint every N steps (and at the end, and on SIGINT/SIGTERM).")
    var checkpointEvery: Int = 200

    /// The chosen objective's own flags (`--feature-weight 0.5`), parsed against its declarations.
    @Argument(parsing: .allUnrecognized, help: .hidden)
    var objectiveArguments: [String] = []

    /// What rank 0 hands every rank of a job before training.
    struct Setup: Codable {
        var config: PretrainingConfig
        var recipe: PretrainRecipe
    }

    static var objectiveHelp: String {
        ObjectiveRegistry.all.map { o in
            "\(o.name): \(o.summary)." + (o.flags.isEmpty ? "" : "\n" + o.flags.map { f in
                "  --\(f.name)\(f.takesValue ? " <value>" : "")\n      \(f.help)"
            }.joined(separator: "\n"))
        }.joined(separator: "\n\n")
    }

    /// The objective and its flags, checked.
    func chosenObjective() throws -> (any PretrainingObjective.Type, ObjectiveFlagValues) {
        do {
            let type = try ObjectiveRegistry.require(objective)
            return (type, try ObjectiveFlagValues(parsing: objectiveArguments, declared: type.flags, objective: type.name))
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func validate() throws {
        try ensure(batchSize >= 1, "--batch-size must be positive")
        try ensure(imgSize.map { $0 >= 1 } ?? true && patchSize.map { $0 >= 1 } ?? true, "--img-size and --patch-size must be positive")
        try ensure(channels.map { $0 == 1 || $0 == 3 } ?? true, "--channels is 1 or 3")
        try ensure(maskRatio.map { (0.05...0.95).contains($0) } ?? true, "--mask-ratio must be within 0.05...0.95")
        let (type, flags) = try chosenObjective()
        try ensure(blr.map { $0 > 0 } ?? true && lr.map { $0 > 0 } ?? true, "the learning rate (--blr, --lr) must be positive")
        let peak = lr ?? (blr ?? type.defaultBaseLR) * Double(batchSize) / 256
        try ensure(minLR.map { $0 >= 0 && $0 <= peak } ?? true, "--min-lr must be within 0 and the peak lr")
        try ensure(warmupEpochs.map { $0 >= 0 } ?? true, "--warmup-epochs cannot be negative")
        try ensure(weightDecay.map { $0 >= 0 } ?? true, "--weight-decay cannot be negative")
        try ensure(checkpointEvery >= 1, "--checkpoint-every must be positive")
        // The objective's own flags: parsed and their values checked before any folder is touched.
        do { _ = try type.options(flags: flags, epochs: common.epochs ?? 100) } catch { throw ValidationError("\(error)") }
    }

    func run() throws {
        try runTraining(common) { dir, stop, job in
            let progress = ProgressReporter()
            // Rank 0 reads or makes the run's config and recipe; every rank trains with them.
            let run = try onRoot(job) { () throws -> Setup in
                if common.resume {
                    let recipe = try dir.readJSON(PretrainRecipe.self, from: "recipe.json")
                    try checkRecordedDataset(recipe.data, run: dir)
                    return Setup(config: try dir.readJSON(PretrainingConfig.self, from: "config.json"), recipe: recipe)
                }
                let (type, flags) = try chosenObjective()
                let dataset = try Datasets.open(common.dataPath, split: .train)
                let config = try preset.pretrainingConfig(type, channels: channels ?? dataset.channels, imgSize: imgSize, patchSize: patchSize,
                                                          maskRatio: maskRatio ?? type.defaultMaskRatio, flags: flags)
                let epochs = common.epochs ?? 100
                let recipe = try PretrainRecipe.make(
                    type, flags: flags, data: common.absoluteDataPath, seed: common.seed, epochs: epochs, batchSize: batchSize,
                    lr: lr ?? blr.map { $0 * Double(batchSize) / 256 }, minLR: minLR, warmupEpochs: warmupEpochs,
                    weightDecay: weightDecay, checkpointEvery: checkpointEvery, subset: common.subset)
                return Setup(config: config, recipe: recipe)
            }
            let (config, recipe) = (run.config, run.recipe)
            let trainer = try Pretrainer(config: config, recipe: recipe, run: dir, resume: common.resume, collective: job)
            guard job.isRoot else {
                _ = try trainer.train(maxSteps: common.maxSteps, stop: stop, progress: progress)
                return
            }
            progress.log("pretrain \(config.objective): \(config.encoder.embedDim)×\(config.encoder.depth) ViT, "
                         + "\(config.encoder.imgSize) px / patch \(config.encoder.patchSize), \(channelsText(config.encoder.inChans)), "
                         + "\(trainer.imageCount) images, \(trainer.stepsPerEpoch) steps × \(recipe.epochs) epochs, "
                         + "batch \(recipe.batchSize)\(job.isDistributed ? " over \(job.size) ranks" : ""), lr \(recipe.lr) → \(dir.url.path)")
            let summary = try trainer.train(maxSteps: common.maxSteps, stop: stop, progress: progress)
            try dir.writeJSON(summary, to: "result.json")
            try? trainer.writeLossPlot()
            let loss = summary.finalLoss.map { String(format: "%.4f", $0) } ?? "null"
            print("{\"steps\": \(summary.steps), \"epochs\": \(String(format: "%.2f", summary.epochs)), \"final_loss\": \(loss), "
                  + "\"img_per_s\": \(String(format: "%.1f", summary.imagesPerSecond)), \"stopped_early\": \(summary.stoppedEarly)}")
        }
    }
}
