import ArgumentParser
import Distributed
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

    @Option(help: "Images per step (default: 256, or for small datasets the largest power of two that leaves 4 steps per epoch, at least 8 unless the data holds fewer).")
    var batchSize: Int?

    @Option(help: "Base learning rate; the peak lr is blr × batch / 256 (the official linear scaling rule), or blr itself when the batch is chosen for a small dataset. Default: the objective's (MAE and BootMAE 1.5e-4).")
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

    /// This command's own long flags, without dashes (for "did you mean" on an unknown one): those its
    /// help lists, less the objectives' flags it lists beside them.
    static var longFlagNames: [String] {
        let objectives = Set(ObjectiveRegistry.all.flatMap { $0.flags.map(\.name) })
        let names = helpMessage(columns: 10_000).matches(of: /--([a-z0-9][a-z0-9-]*)/).map { String($0.1) }
        return names.reduce(into: [String]()) { if !objectives.contains($1) && !$0.contains($1) { $0.append($1) } }
    }

    static var objectiveHelp: String {
        ObjectiveRegistry.all.map { o in
            "\(o.name): \(o.summary)." + (o.flags.isEmpty ? "" : "\n" + o.flags.map { f in
                "  --\(f.name)\(f.takesValue ? " <value>" : "")\n      \(f.help)"
            }.joined(separator: "\n"))
        }.joined(separator: "\n\n")
    }

    /// The objective named on the command line; with --resume and no --objective, the recorded one
    /// (its own flags are parsed against it).
    var objectiveName: String {
        struct Recorded: Decodable { let objective: String }
        guard common.resume, !givenFlags().contains("--objective"),
              let recorded = try? RunDirectory(reading: common.out).readJSON(Recorded.self, from: "recipe.json") else { return objective }
        return recorded.objective
    }

    /// The objective and its flags, checked.
    func chosenObjective() throws -> (any PretrainingObjective.Type, ObjectiveFlagValues) {
        do {
            let type = try ObjectiveRegistry.require(objectiveName)
            return (type, try ObjectiveFlagValues(parsing: objectiveArguments, declared: type.flags, objective: type.name,
                                                   commandFlags: Self.longFlagNames))
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func validate() throws {
        try ensure(batchSize.map { $0 >= 1 } ?? true, "--batch-size must be positive")
        try ensure(imgSize.map { $0 >= 1 } ?? true && patchSize.map { $0 >= 1 } ?? true, "--img-size and --patch-size must be positive")
        try ensure(channels.map { $0 == 1 || $0 == 3 } ?? true, "--channels is 1 or 3")
        try ensure(maskRatio.map { (0.05...0.95).contains($0) } ?? true, "--mask-ratio must be within 0.05...0.95")
        let (type, flags) = try chosenObjective()
        try ensure(blr.map { $0 > 0 } ?? true && lr.map { $0 > 0 } ?? true, "the learning rate (--blr, --lr) must be positive")
        if let batchSize {  // else checked once the batch is chosen from the data
            let peak = lr ?? peakLearningRate(base: blr ?? type.defaultBaseLR, batch: batchSize, batchChosen: false)
            try ensure(minLR.map { $0 >= 0 && $0 <= peak } ?? true, "--min-lr must be within 0 and the peak lr")
        } else {
            try ensure(minLR.map { $0 >= 0 } ?? true, "--min-lr cannot be negative")
        }
        try ensure(warmupEpochs.map { $0 >= 0 } ?? true, "--warmup-epochs cannot be negative")
        try ensure(weightDecay.map { $0 >= 0 } ?? true, "--weight-decay cannot be negative")
        try ensure(checkpointEvery >= 1, "--checkpoint-every must be positive")
        // The objective's own flags: parsed and their values checked before any folder is touched.
        do { _ = try type.options(flags: flags, epochs: common.epochs ?? 100) } catch { throw ValidationError("\(error)") }
        if let (config, recipe) = common.recordedRun(PretrainingConfig.self, PretrainRecipe.self) {
            try ensureAgrees(try resumeDifferences(config: config, recipe: recipe), run: common.out)
        }
    }

    /// Where this command line differs from the recorded run: the recipe and model it would start,
    /// with the recorded values for every flag it does not give, compared field by field.
    func resumeDifferences(config recordedConfig: PretrainingConfig, recipe recorded: PretrainRecipe) throws -> [ResumeDifference] {
        let given = common.recipeFlags
        if given.contains("--objective") && objective != recorded.objective {
            return [ResumeDifference(name: "--objective", recorded: recorded.objective, given: objective)]
        }
        let (type, flags) = try chosenObjective()
        let defaultFlags = ObjectiveFlagValues()
        let epochs = common.epochs ?? recorded.epochs
        let batch = batchSize ?? recorded.batchSize
        func recipe(_ flags: ObjectiveFlagValues) throws -> PretrainRecipe {
            try PretrainRecipe.make(
                type, flags: flags, data: common.data.map { canonicalPath($0) } ?? recorded.data,
                seed: given.contains("--seed") ? common.seed : recorded.seed, epochs: epochs, batchSize: batch,
                lr: lr ?? blr.map { resumedPeakLearningRate(base: $0, batch: batch, recorded: recorded.lr) } ?? recorded.lr, minLR: minLR ?? recorded.minLR,
                warmupEpochs: warmupEpochs ?? recorded.warmupEpochs, weightDecay: weightDecay ?? recorded.weightDecay,
                checkpointEvery: given.contains("--checkpoint-every") ? checkpointEvery : recorded.checkpointEvery,
                subset: common.subset ?? recorded.subset)
        }
        var recordedRecipe = flattenedJSON(recorded)
        recordedRecipe["data"] = canonicalPath(recorded.data) as NSString
        let recipeFlags = ["data": "--data", "seed": "--seed", "epochs": "--epochs", "batchSize": "--batch-size",
                           "lr": given.contains("--lr") || !given.contains("--blr") ? "--lr" : "--blr", "minLR": "--min-lr",
                           "warmupEpochs": "--warmup-epochs", "weightDecay": "--weight-decay",
                           "checkpointEvery": "--checkpoint-every", "subset": "--subset"]
        let flagOf = { (key: String) -> String? in
            recipeFlags[key] ?? (key.hasPrefix("objective_options.") ? conventionalFlag(String(key.dropFirst("objective_options.".count))) : nil)
        }
        var found = differingFields(recorded: recordedRecipe, given: flattenedJSON(try recipe(flags)),
                                    defaults: flattenedJSON(try recipe(defaultFlags)), givenFlags: given, flagOf: flagOf)
        // The model: what the preset, sizes and the objective's flags build, against config.json.
        let encoder = recordedConfig.encoder
        func config(_ preset: ModelPreset, _ maskRatio: Double, _ flags: ObjectiveFlagValues) throws -> PretrainingConfig {
            try preset.pretrainingConfig(type, channels: channels ?? encoder.inChans, imgSize: imgSize ?? encoder.imgSize,
                                         patchSize: patchSize ?? encoder.patchSize, maskRatio: maskRatio, flags: flags)
        }
        let configFlags = ["embed_dim": "--preset", "depth": "--preset", "num_heads": "--preset", "in_chans": "--channels"]
        found += differingFields(recorded: flattenedJSON(recordedConfig), given: flattenedJSON(try config(preset, maskRatio ?? type.defaultMaskRatio, flags)),
                                            defaults: flattenedJSON(try config(.tiny, type.defaultMaskRatio, defaultFlags)), givenFlags: given,
                                            flagOf: { configFlags[$0] ?? conventionalFlag($0) })
        return found
    }

    /// A fresh run's model and recipe, with the log lines of what was chosen from the data.
    func freshRun() throws -> (PretrainingConfig, PretrainRecipe, notes: [String]) {
        let (type, flags) = try chosenObjective()
        let dataset: any ImageDataset
        // Every image, as the Pretrainer reads them (no labels, so no test split held out of a class folder).
        do { dataset = try Datasets.open(common.dataPath, split: .train, testShare: 0) } catch { throw fail("error: \(error)", code: 1) }
        let images = common.subset.map { min($0, dataset.count) } ?? dataset.count
        let batch = batchSize ?? defaultBatchSize(images: images)
        if batch > images { throw batchTooLarge(batch, images: images, data: common.dataPath) }
        let config = try preset.pretrainingConfig(type, channels: channels ?? dataset.channels, imgSize: imgSize, patchSize: patchSize,
                                                  maskRatio: maskRatio ?? type.defaultMaskRatio, flags: flags)
        // A model the flags leave incomplete (PeCo without --tokenizer) is a usage error before any folder is made.
        let problems = config.validationErrors()
        try ensure(problems.isEmpty, problems.map(inFlagTerms).joined(separator: "; "))
        let epochs = common.epochs ?? 100
        let recipe = try PretrainRecipe.make(
            type, flags: flags, data: common.absoluteDataPath, seed: common.seed, epochs: epochs, batchSize: batch,
            lr: lr ?? peakLearningRate(base: blr ?? type.defaultBaseLR, batch: batch, batchChosen: batchSize == nil), minLR: minLR, warmupEpochs: warmupEpochs,
            weightDecay: weightDecay, checkpointEvery: checkpointEvery, subset: common.subset)
        let optionProblems = recipe.objectiveOptions.validationErrors(encoder: config.encoder)
        try ensure(optionProblems.isEmpty, optionProblems.joined(separator: "; "))
        try ensure(recipe.minLR <= recipe.lr, "--min-lr \(recipe.minLR) is above the peak lr \(recipe.lr) (batch \(batch)); lower it or give --lr")
        var notes = batchNotes(batch: batch, chosen: batchSize == nil, images: images, lr: recipe.lr,
                               scaledFrom: lr == nil ? (blr ?? type.defaultBaseLR) : nil)
        if imgSize == nil, let warning = imageSizeWarning(dataset, data: common.dataPath, imgSize: config.encoder.imgSize,
                                                         patchSize: config.encoder.patchSize, preset: preset.rawValue) {
            notes.append(warning)
        }
        if let warning = dataset.ignoredFilesWarning { notes.append(warning) }
        if let held = (dataset as? ImageFolderDataset)?.heldOutSplit(share: HeldOutSplit.defaultShare) { notes.append(held.pretrainingNote) }
        return (config, recipe, notes)
    }

    func run() throws {
        // One process checks and plans a fresh run before the folder is touched (a usage error exits
        // 64 and creates nothing); under mpirun rank 0 plans it inside the job.
        let early = common.resume || MPIJob.launchedByMPI ? nil : try reportingUsageErrors(freshRun)
        try runTraining(common) { dir, stop, job in
            let progress = ProgressReporter()
            // Rank 0 reads or makes the run's config and recipe; every rank trains with them.
            let (config, recipe, notes) = try runSetup(common, dir: dir, job: job) { try early ?? freshRun() }
            let trainer = try Pretrainer(config: config, recipe: recipe, run: dir, resume: common.resume, collective: job)
            guard job.isRoot else {
                _ = try trainer.train(maxSteps: common.maxSteps, stop: stop, progress: progress)
                return
            }
            for note in notes { progress.log(note) }
            progress.log("pretrain \(config.objective): \(config.encoder.embedDim)×\(config.encoder.depth) ViT, "
                         + "\(config.encoder.imgSize) px / patch \(config.encoder.patchSize), \(channelsText(config.encoder.inChans)), "
                         + "\(trainer.imageCount) images, \(trainer.stepsPerEpoch) steps × \(recipe.epochs) epochs, "
                         + "batch \(recipe.batchSize)\(job.isDistributed ? " over \(job.size) ranks" : ""), lr \(recipe.lr)"
                         + "\(viewsText(trainer.viewGroups)) → \(dir.url.path)")
            let summary = try trainer.train(maxSteps: common.maxSteps, stop: stop, progress: progress)
            try dir.writeJSON(summary, to: "result.json")
            try? trainer.writeLossPlot()
            let loss = summary.finalLoss.map { String(format: "%.4f", $0) } ?? "null"
            print("{\"steps\": \(summary.steps), \"epochs\": \(String(format: "%.2f", summary.epochs)), \"final_loss\": \(loss), "
                  + "\"img_per_s\": \(String(format: "%.1f", summary.imagesPerSecond)), \"stopped_early\": \(summary.stoppedEarly)}")
        }
    }
}

/// ", crops per image: 2 × 28 px + 4 × 12 px" for multi-view objectives (iBOT), empty otherwise.
func viewsText(_ groups: [ViewGroupSpec]?) -> String {
    guard let groups, groups.reduce(0, { $0 + $1.views }) > 1 else { return "" }
    var counts: [(views: Int, size: Int)] = []  // consecutive groups of one size merged (iBOT's globals)
    for g in groups {
        if let last = counts.last, last.size == g.size { counts[counts.count - 1].views += g.views } else { counts.append((g.views, g.size)) }
    }
    return ", crops per image: " + counts.map { "\($0.views) × \($0.size) px" }.joined(separator: " + ")
}
