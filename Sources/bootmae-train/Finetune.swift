import ArgumentParser
import Foundation
import Tensor
import Training
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

    func validate() throws {
        if initFrom == nil && !common.resume {
            throw ValidationError("name where to start: --init-from RUN_OR_MODEL_DIR, or --init-from none to train from scratch")
        }
    }

    func run() throws {
        try runTraining(common) { dir, stop in
            let config: ViTConfig, recipe: FinetuneRecipe
            if common.resume {
                config = try dir.readJSON(ViTConfig.self, from: "config.json")
                recipe = try dir.readJSON(FinetuneRecipe.self, from: "recipe.json")
            } else {
                let source = initFrom == "none" ? nil : initFrom   // validate() made sure it is set
                if let source {
                    config = try Classifier.pretrainedEncoder(source).0
                } else {
                    let dataset = try Datasets.open(common.data, split: .train)
                    var c = preset.pretrainingConfig(objective: qkvBias == "qkv" ? .mae : .bootmae, imgSize: nil, patchSize: nil,
                                                     channels: dataset.channels, maskRatio: 0.75).encoder
                    c.qkvBias = qkvBias == "qkv" ? .qkv : .qv
                    config = c
                }
                let epochs = common.epochs ?? 50
                recipe = FinetuneRecipe(data: common.data, initFrom: source, seed: common.seed, epochs: epochs, batchSize: batchSize,
                                        lr: lr ?? blr * Double(batchSize) / 256, warmupEpochs: warmupEpochs ?? max(1, Double(epochs) * 0.05),
                                        weightDecay: weightDecay, layerDecay: layerDecay, labelSmoothing: labelSmoothing,
                                        cropScale: cropScale...1, checkpointEvery: checkpointEvery, subset: common.subset)
            }
            let trainer = try Finetuner(config: config, recipe: recipe, run: dir, resume: common.resume)
            let progress = ProgressReporter()
            progress.log("finetune \(recipe.initFrom.map { "from \($0)" } ?? "from scratch"): \(trainer.stepsPerEpoch) steps × \(recipe.epochs) epochs, batch \(recipe.batchSize), lr \(recipe.lr) → \(dir.url.path)")
            let summary = try trainer.train(maxSteps: common.maxSteps, stop: stop, progress: progress)
            try dir.writeJSON(summary, to: "result.json")
            print(String(format: "{\"steps\": %d, \"epochs\": %d, \"top1\": %@, \"best_top1\": %@, \"stopped_early\": %@}",
                         summary.steps, summary.epochs, summary.top1.map { String(format: "%.4f", $0) } ?? "null",
                         summary.bestTop1.map { String(format: "%.4f", $0) } ?? "null", summary.stoppedEarly ? "true" : "false"))
        }
    }
}
