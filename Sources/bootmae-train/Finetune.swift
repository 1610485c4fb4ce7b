import ArgumentParser
import Distributed
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

    @OptionGroup var split: TestShareOption

    @Option(help: "Pretraining run folder or model directory to start from, or 'none' to train from scratch (not needed with --resume). Without --data, a run folder's own dataset (its recipe.json) is fine-tuned on.")
    var initFrom: String?

    @Option(help: "With --init-from none: the architecture preset (matches `pretrain --preset`).")
    var preset: ModelPreset = .tiny

    @Option(help: "With --init-from none: attention biases of the architecture (qv as BootMAE, qkv as MAE).")
    var qkvBias: String = "qv"

    @Option(help: "With --init-from none: input channels, 1 (grayscale) or 3 (RGB). Default: the dataset's: 1 for IDX files, 3 for image folders.")
    var channels: Int?

    @Option(help: "With --init-from none: input size in pixels (default: the preset's; tiny uses 28). A pretrained encoder keeps its own.")
    var imgSize: Int?

    @Option(help: "Images per step (default: 256, or for small datasets the largest power of two that leaves 4 steps per epoch, at least 8 unless the data holds fewer).")
    var batchSize: Int?

    @Option(help: "Base learning rate; the peak lr is blr × batch / 256, or blr itself when the batch is chosen for a small dataset.")
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
        try ensure(initFrom != nil || common.resume,
                   "name where to start: --init-from RUN_OR_MODEL_DIR, or --init-from none to train from scratch")
        try ensure(qkvBias == "qv" || qkvBias == "qkv", "--qkv-bias is qv or qkv")
        let architectureFlags = givenFlags().filter { ["--preset", "--qkv-bias", "--channels", "--img-size"].contains($0) }
        try ensure(initFrom == "none" || architectureFlags.isEmpty || (common.resume && initFrom == nil),
                   "\(architectureFlags.joined(separator: ", ")) describe a model trained from scratch (--init-from none); "
                   + "a pretrained encoder keeps its own architecture and channels")
        try ensure(channels.map { $0 == 1 || $0 == 3 } ?? true, "--channels is 1 or 3")
        try ensure(imgSize.map { $0 >= 1 } ?? true, "--img-size must be positive")
        try ensure(batchSize.map { $0 >= 1 } ?? true, "--batch-size must be positive")
        try ensure(blr > 0 && lr.map { $0 > 0 } ?? true, "the learning rate (--blr, --lr) must be positive")
        try ensure(layerDecay > 0 && layerDecay <= 1, "--layer-decay must be within 0 (exclusive) and 1")
        try ensure(warmupEpochs.map { $0 >= 0 } ?? true, "--warmup-epochs cannot be negative")
        try ensure(weightDecay >= 0, "--weight-decay cannot be negative")
        try ensure(labelSmoothing >= 0 && labelSmoothing < 1, "--label-smoothing must be within 0 and 1 (exclusive)")
        try ensure(cropScale > 0 && cropScale <= 1, "--crop-scale is the smallest area share kept, within 0 (exclusive) and 1")
        try ensure(checkpointEvery >= 1, "--checkpoint-every must be positive")
        if let (config, recipe) = common.recordedRun(ViTConfig.self, FinetuneRecipe.self) {
            try ensureAgrees(resumeDifferences(config: config, recipe: recipe), run: common.out)
        }
    }

    /// Where this command line differs from the recorded run (the flags it does not give take the
    /// recorded values; see `differingFields`).
    func resumeDifferences(config: ViTConfig, recipe recorded: FinetuneRecipe) -> [ResumeDifference] {
        let given = common.recipeFlags
        let batch = batchSize ?? recorded.batchSize
        var derived = recorded
        derived.data = common.data.map { canonicalPath($0) } ?? canonicalPath(recorded.data)
        derived.seed = given.contains("--seed") ? common.seed : recorded.seed
        derived.epochs = common.epochs ?? recorded.epochs
        derived.batchSize = batch
        derived.lr = lr ?? (given.contains("--blr") ? resumedPeakLearningRate(base: blr, batch: batch, recorded: recorded.lr) : recorded.lr)
        derived.warmupEpochs = warmupEpochs ?? recorded.warmupEpochs
        if given.contains("--weight-decay") { derived.weightDecay = weightDecay }
        if given.contains("--layer-decay") { derived.layerDecay = layerDecay }
        if given.contains("--label-smoothing") { derived.labelSmoothing = labelSmoothing }
        if given.contains("--crop-scale") { derived.cropScale = cropScale...1 }
        if given.contains("--checkpoint-every") { derived.checkpointEvery = checkpointEvery }
        derived.subset = common.subset ?? recorded.subset
        if given.contains("--test-share") { derived.testShare = split.testShare }
        var recordedFields = flattenedJSON(recorded)
        recordedFields["data"] = canonicalPath(recorded.data) as NSString
        let flags = ["data": "--data", "seed": "--seed", "epochs": "--epochs", "batchSize": "--batch-size",
                     "lr": given.contains("--lr") || !given.contains("--blr") ? "--lr" : "--blr", "warmupEpochs": "--warmup-epochs",
                     "weightDecay": "--weight-decay", "layerDecay": "--layer-decay", "labelSmoothing": "--label-smoothing",
                     "cropScale": "--crop-scale", "checkpointEvery": "--checkpoint-every", "subset": "--subset", "testShare": "--test-share"]
        var found = differingFields(recorded: recordedFields, given: flattenedJSON(derived), defaults: [:], givenFlags: given,
                                    flagOf: { flags[$0] })
        if let initFrom {
            let start = initFrom == "none" ? nil : canonicalPath(initFrom)
            if start != recorded.initFrom.map({ canonicalPath($0) }) {
                found.append(ResumeDifference(name: "--init-from", recorded: recorded.initFrom ?? "none", given: initFrom))
            }
        }
        // The architecture flags of a from-scratch run, against its config.json.
        if let channels, channels != config.inChans {
            found.append(ResumeDifference(name: "--channels", recorded: "\(config.inChans)", given: "\(channels)"))
        }
        if let imgSize, imgSize != config.imgSize {
            found.append(ResumeDifference(name: "--img-size", recorded: "\(config.imgSize)", given: "\(imgSize)"))
        }
        if given.contains("--qkv-bias"), qkvBias != config.qkvBias.rawValue {
            found.append(ResumeDifference(name: "--qkv-bias", recorded: config.qkvBias.rawValue, given: qkvBias))
        }
        if given.contains("--preset") {
            let shape = preset.shape(channels: config.inChans)
            if (shape.embedDim, shape.depth, shape.numHeads) != (config.embedDim, config.depth, config.numHeads) {
                found.append(ResumeDifference(name: "--preset", recorded: "\(config.embedDim)×\(config.depth), \(config.numHeads) heads",
                                              given: "\(preset.rawValue) (\(shape.embedDim)×\(shape.depth), \(shape.numHeads) heads)"))
            }
        }
        return found
    }

    /// A fresh run's model and recipe, with the log lines of what was chosen from the data.
    func freshRun() throws -> (ViTConfig, FinetuneRecipe, notes: [String]) {
        let source = initFrom == "none" ? nil : initFrom   // validate() made sure it is set
        var dataPath = common.dataPath, notes: [String] = []
        if let source, common.data == nil {
            if let recorded = recordedTraining(of: source) {
                dataPath = recorded.path
                notes.append("data: \(recorded.path) (what \(source) trained on; --data to change)")
            } else {
                notes.append("data: \(dataPath) (the default: \(source) does not say which data it was trained on; --data to change)")
            }
        }
        let config: ViTConfig, dataset: any ImageDataset
        do {
            dataset = try Datasets.open(dataPath, split: .train, testShare: split.share(recordedBy: nil))
            if let source {
                config = try Classifier.pretrainedEncoder(source).0
            } else {
                // The encoder (preprocessing, position table) of the recipe whose attention biases it has.
                let family: any PretrainingObjective.Type = qkvBias == "qkv" ? MAE.self : BootMAE.self
                var c = try preset.pretrainingConfig(family, channels: channels ?? dataset.channels, imgSize: imgSize).encoder
                c.qkvBias = qkvBias == "qkv" ? .qkv : .qv
                config = c
            }
        } catch {
            throw fail("error: \(error)", code: 1)
        }
        try requireClasses(dataset, of: dataPath)
        // A from-scratch model the flags make invalid (--img-size not a multiple of the patch) is a usage error.
        let problems = config.validationErrors()
        try ensure(problems.isEmpty, problems.map(inFlagTerms).joined(separator: "; "))
        let images = common.subset.map { min($0, dataset.count) } ?? dataset.count
        let batch = batchSize ?? defaultBatchSize(images: images)
        if batch > images { throw batchTooLarge(batch, images: images, data: dataPath) }
        let epochs = common.epochs ?? 50
        let recipe = FinetuneRecipe(data: URL(fileURLWithPath: dataPath).standardizedFileURL.path, initFrom: source, seed: common.seed,
                                    epochs: epochs, batchSize: batch, lr: lr ?? peakLearningRate(base: blr, batch: batch, batchChosen: batchSize == nil),
                                    warmupEpochs: warmupEpochs ?? max(1, Double(epochs) * 0.05), weightDecay: weightDecay,
                                    layerDecay: layerDecay, labelSmoothing: labelSmoothing, cropScale: cropScale...1,
                                    checkpointEvery: checkpointEvery, subset: common.subset,
                                    testShare: dataset.heldOut != nil ? try split.share(recordedBy: nil) : nil)  // only what was held out
        notes += batchNotes(batch: batch, chosen: batchSize == nil, images: images, lr: recipe.lr, scaledFrom: lr == nil ? blr : nil)
        if imgSize == nil, let warning = imageSizeWarning(dataset, data: dataPath, imgSize: config.imgSize, patchSize: config.patchSize,
                                                         preset: source == nil ? preset.rawValue : nil) {
            notes.append(warning)
        }
        if let warning = dataset.ignoredFilesWarning { notes.append(warning) }
        if let note = split.note(dataset, data: dataPath) { notes.append(note) }
        return (config, recipe, notes)
    }

    func run() throws {
        // One process checks and plans a fresh run before the folder is touched (a usage error exits
        // 64 and creates nothing); under mpirun rank 0 plans it inside the job (only it reads the
        // pretrained model).
        let early = common.resume || MPIJob.launchedByMPI ? nil : try reportingUsageErrors(freshRun)
        try runTraining(common) { dir, stop, job in
            // Rank 0 reads or makes the run's config and recipe; every rank trains with them.
            let (config, recipe, notes) = try runSetup(common, dir: dir, job: job) { try early ?? freshRun() }
            let trainer = try Finetuner(config: config, recipe: recipe, run: dir, resume: common.resume, collective: job)
            let progress = ProgressReporter()
            guard job.isRoot else {
                _ = try trainer.train(maxSteps: common.maxSteps, stop: stop, progress: progress)
                return
            }
            for note in notes { progress.log(note) }
            progress.log("finetune \(recipe.initFrom.map { "from \($0)" } ?? "from scratch"): \(channelsText(config.inChans)), "
                         + "\(trainer.imageCount) images in \(trainer.classifier.classes.count) classes, \(trainer.stepsPerEpoch) steps × \(recipe.epochs) epochs, batch \(recipe.batchSize)\(job.isDistributed ? " over \(job.size) ranks" : ""), lr \(recipe.lr) → \(dir.url.path)")
            let summary = try trainer.train(maxSteps: common.maxSteps, stop: stop, progress: progress)
            try dir.writeJSON(summary, to: "result.json")
            if !summary.stoppedEarly, let warning = Exporter.nearChanceWarning(run: dir.url.path) { progress.log(warning) }
            print(String(format: "{\"steps\": %d, \"epochs\": %d, \"top1\": %@, \"best_top1\": %@, \"stopped_early\": %@}",
                         summary.steps, summary.epochs, summary.top1.map { String(format: "%.4f", $0) } ?? "null",
                         summary.bestTop1.map { String(format: "%.4f", $0) } ?? "null", summary.stoppedEarly ? "true" : "false"))
        }
    }
}
