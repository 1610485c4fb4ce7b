import ArgumentParser
import Foundation
import Tensor
import Training
import Objectives
import ViT

/// `bootmae-train finetune`: a classifier from a pretrained encoder (or from scratch with --init-from none).
struct Finetune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fine-tune a pretrained encoder as a classifier (or train one from scratch with --init-from none).",
        discussion: "Mean pooling + fresh fc_norm + head, layer-wise lr decay, warmup + cosine, label smoothing. "
            + "Writes RUN_DIR/{config.json, recipe.json, checkpoint.safetensors, history.json, metrics.jsonl, result.json}.")

    @OptionGroup var common: CommonTrainingOptions

    @Option(help: "Pretraining run folder or model directory to start from, or 'none' to train from scratch (not needed with --resume).")
    var initFrom: String?

    @Option(help: "With --init-from none: the architecture preset (matches `pretrain --preset`).")
    var preset: ModelPreset = .tiny

    @Option(help: "With --init-from none: attention biases of the architecture (qv as BootMAE, qkv as MAE).")
    var qkvBias: String = "qv"

    @Option(help: "With --init-from none: input channels, 1 (grayscale) or 3 (RGB). Default: the dataset's: 1 for IDX files, 3 for image folders.")
    var channels: Int?

    @Option(help: "Images per step.")
    var batchSize: Int = 256

    @Option(help: "Base learning rate; the peak lr is blr × batch / 256.")
    var blr: Double = 5e-4

    @Option(help: "Peak learning rate (overrides --blr).")
    var lr: Double?

    @Option(help: "Layer-wise lr decay (official: 0.6 BootMAE ViT-B, 0.65 MAE ViT-B, 0.75 ViT-L).")
    var layerDecay: Double = 0.75

    @Option(help: "Warmup epochs (default: 5% of the epochs).")
    var warmupEpochs: Double?

    @Option(help: "AdamW weight decay.")
    var weightDecay: Double = 0.05

    @Option(help: "Label smoothing.")
    var labelSmoothing: Double = 0.1

    @Option(help: "Smallest area share kept by RandomResizedCrop.")
    var cropScale: Double = 0.35

    @Option(help: "Write a checkpoint every N steps (and after every epoch).")
    var checkpointEvery: Int = 200

    /// What rank 0 hands every rank of a job before training.
    struct Setup: Codable {
        var config: ViTConfig
        var recipe: FinetuneRecipe
    }

    func validate() throws {
        try ensure(initFrom != nil || common.resume,
                   "name where to start: --init-from RUN_OR_MODEL_DIR, or --init-from none to train from scratch")
        try ensure(qkvBias == "qv" || qkvBias == "qkv", "--qkv-bias is qv or qkv")
        let architectureFlags = givenFlags().filter { ["--preset", "--qkv-bias", "--channels"].contains($0) }
        try ensure(initFrom == "none" || architectureFlags.isEmpty,
                   "\(architectureFlags.joined(separator: ", ")) describe a model trained from scratch (--init-from none); "
                   + "a pretrained encoder keeps its own architecture and channels")
        try ensure(channels.map { $0 == 1 || $0 == 3 } ?? true, "--channels is 1 or 3")
        try ensure(batchSize >= 1, "--batch-size must be positive")
        try ensure(blr > 0 && lr.map { $0 > 0 } ?? true, "the learning rate (--blr, --lr) must be positive")
        try ensure(layerDecay > 0 && layerDecay <= 1, "--layer-decay must be within 0 (exclusive) and 1")
        try ensure(warmupEpochs.map { $0 >= 0 } ?? true, "--warmup-epochs cannot be negative")
        try ensure(weightDecay >= 0, "--weight-decay cannot be negative")
        try ensure(labelSmoothing >= 0 && labelSmoothing < 1, "--label-smoothing must be within 0 and 1 (exclusive)")
        try ensure(cropScale > 0 && cropScale <= 1, "--crop-scale is the smallest area share kept, within 0 (exclusive) and 1")
        try ensure(checkpointEvery >= 1, "--checkpoint-every must be positive")
    }

    func run() throws {
        try runTraining(common) { dir, stop, job in
            // Rank 0 reads or makes the run's config and recipe; every rank trains with them.
            let run = try onRoot(job) { () throws -> Setup in
                if common.resume {
                    let recipe = try dir.readJSON(FinetuneRecipe.self, from: "recipe.json")
                    try checkRecordedDataset(recipe.data, run: dir)
                    return Setup(config: try dir.readJSON(ViTConfig.self, from: "config.json"), recipe: recipe)
                }
                let config: ViTConfig
                let source = initFrom == "none" ? nil : initFrom   // validate() made sure it is set
                if let source {
                    config = try Classifier.pretrainedEncoder(source).0
                } else {
                    let dataset = try Datasets.open(common.dataPath, split: .train)
                    // The encoder (preprocessing, position table) of the recipe whose attention biases it has.
                    let family: any PretrainingObjective.Type = qkvBias == "qkv" ? MAE.self : BootMAE.self
                    var c = try preset.pretrainingConfig(family, channels: channels ?? dataset.channels).encoder
                    c.qkvBias = qkvBias == "qkv" ? .qkv : .qv
                    config = c
                }
                let epochs = common.epochs ?? 50
                let recipe = FinetuneRecipe(data: common.absoluteDataPath, initFrom: source, seed: common.seed, epochs: epochs, batchSize: batchSize,
                                        lr: lr ?? blr * Double(batchSize) / 256, warmupEpochs: warmupEpochs ?? max(1, Double(epochs) * 0.05),
                                        weightDecay: weightDecay, layerDecay: layerDecay, labelSmoothing: labelSmoothing,
                                        cropScale: cropScale...1, checkpointEvery: checkpointEvery, subset: common.subset)
                return Setup(config: config, recipe: recipe)
            }
            let (config, recipe) = (run.config, run.recipe)
            let trainer = try Finetuner(config: config, recipe: recipe, run: dir, resume: common.resume, collective: job)
            let progress = ProgressReporter()
            guard job.isRoot else {
                _ = try trainer.train(maxSteps: common.maxSteps, stop: stop, progress: progress)
                return
            }
            progress.log("finetune \(recipe.initFrom.map { "from \($0)" } ?? "from scratch"): \(channelsText(config.inChans)), "
                         + "\(trainer.imageCount) images in \(trainer.classifier.classes.count) classes, \(trainer.stepsPerEpoch) steps × \(recipe.epochs) epochs, batch \(recipe.batchSize)\(job.isDistributed ? " over \(job.size) ranks" : ""), lr \(recipe.lr) → \(dir.url.path)")
            let summary = try trainer.train(maxSteps: common.maxSteps, stop: stop, progress: progress)
            try dir.writeJSON(summary, to: "result.json")
            print(String(format: "{\"steps\": %d, \"epochs\": %d, \"top1\": %@, \"best_top1\": %@, \"stopped_early\": %@}",
                         summary.steps, summary.epochs, summary.top1.map { String(format: "%.4f", $0) } ?? "null",
                         summary.bestTop1.map { String(format: "%.4f", $0) } ?? "null", summary.stoppedEarly ? "true" : "false"))
        }
    }
}
