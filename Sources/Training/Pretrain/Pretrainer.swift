import Foundation
import Tensor
import ViT
import Checkpoint
import ImageKit
import Objectives

/// Runs the pretraining of any objective: AdamW with a per-iteration cosine schedule, the
/// objective's own step and after-step hook (its schedules, EMA), metrics of whatever losses it
/// reports, atomic checkpoints, exact resume.
///
/// Every random draw is a function of (seed, epoch, sample) for data and (seed, step) for masks, so a
/// run stopped and resumed at any step produces the same weights as an uninterrupted one.
///
/// In a distributed job (`collective` of N ranks) every rank reads the same batches and computes
/// its shard; rank 0 alone reads and writes the run folder (its state is shared with the other
/// ranks before the first step), and a stop on any rank stops every rank after the same step.
public final class Pretrainer {
    public let config: PretrainingConfig
    public let recipe: PretrainRecipe
    public let run: RunDirectory
    public let network: PretrainingNetwork
    /// Splits each batch over the cores (one network copy per worker), or over the ranks of a job
    /// (see `DataParallelStep`).
    let stepper: DataParallelStep
    /// The processes of the job (`SingleProcess` unless started by mpirun).
    public let collective: any Collective
    /// Rank 0 writes the run folder, metrics and plots; the other ranks only train.
    var writes: Bool { collective.isRoot }
    let dataset: any ImageDataset
    /// AdamW, the lr schedule and the objective's update hooks: everything after a step's loss.
    var update: PretrainUpdate
    /// Optimizer steps done so far.
    public private(set) var step = 0
    public let stepsPerEpoch: Int
    public var totalSteps: Int { stepsPerEpoch * recipe.epochs }
    /// Images in the training set.
    public var imageCount: Int { dataset.count }
    /// Training seconds of earlier invocations (from the checkpoint) and when this one started.
    var trainSeconds: Double = 0
    /// Shards per batch of the invocation that wrote the checkpoint resumed from (nil: fresh, or unrecorded).
    var checkpointShards: Int?
    let invocationStart = Date()
    /// Process CPU seconds of earlier invocations (nil: resumed from a checkpoint that did not record
    /// them, so the run's total is unknown) and this process's CPU clock when this invocation started.
    var trainCPUSeconds: Double? = 0
    let invocationCPUStart = ProcessCPUTime.seconds()

    public struct Summary: Codable, Sendable {
        public var steps: Int
        public var epochs: Double
        public var finalLoss: Float?
        public var seconds: Double
        public var imagesPerSecond: Double
        public var stoppedEarly: Bool
        /// Wall time of the whole run so far, all invocations.
        public var totalSeconds: Double
        /// Process CPU time (all threads) of the whole run so far, all invocations, of this process
        /// (in an MPI job: rank 0's, which writes the results); nil when an earlier invocation did
        /// not record it.
        public var totalCPUSeconds: Double?
        /// Images skipped as unreadable in this invocation (absent when none).
        public var unreadableImages: [String]?
    }

    public struct TrainingError: Error, CustomStringConvertible { public let description: String }

    /// A new run (writes config.json and recipe.json) or, with `resume`, the run in `run`. In a
    /// distributed job only rank 0 touches `run`; the other ranks take its weights and position.
    public init(config: PretrainingConfig, recipe: PretrainRecipe, run: RunDirectory, resume: Bool,
                collective: any Collective = SingleProcess()) throws {
        let problems = config.validationErrors()
        guard problems.isEmpty else { throw TrainingError(description: "invalid model: " + problems.joined(separator: "; ")) }
        guard recipe.objective == config.objective else {
            throw TrainingError(description: "the recipe is for \(recipe.objective) but the model is \(config.objective)")
        }
        let optionProblems = recipe.objectiveOptions.validationErrors(encoder: config.encoder)
        guard optionProblems.isEmpty else { throw TrainingError(description: "invalid recipe: " + optionProblems.joined(separator: "; ")) }
        do { try config.settings.checkReferences() } catch { throw TrainingError(description: "\(error)") }
        self.config = config
        self.recipe = recipe
        self.run = run
        // Every image of a labelled folder without test/ or val/: pretraining reads no labels.
        let full = try Datasets.open(recipe.data, split: .train, testShare: 0)
        dataset = recipe.subset.map { SubsetDataset(full, count: $0) } ?? full
        stepsPerEpoch = dataset.count / recipe.batchSize
        guard stepsPerEpoch > 0 else {
            throw TrainingError(description: "the dataset has \(dataset.count) images, fewer than one batch of \(recipe.batchSize): "
                                + "a smaller batch (--batch-size) would train")
        }
        if collective.isDistributed && recipe.batchSize < collective.size {
            throw TrainingError(description: "a batch of \(recipe.batchSize) cannot give each of \(collective.size) ranks an image")
        }
        self.collective = collective
        network = PretrainingNetwork(config: config)
        stepper = DataParallelStep(network: network, shards: Parallel.workers, collective: collective)
        update = PretrainUpdate(network: network, recipe: recipe, stepsPerEpoch: stepsPerEpoch)
        if !collective.isRoot {
            // Rank 0's state arrives below.
        } else if resume {
            try loadCheckpoint()
        } else {
            network.initialize(seed: recipe.seed)
            try run.writeJSON(config, to: "config.json")
            try run.writeJSON(recipe, to: "recipe.json")
        }
        collective.shareValues(network.checkpointParameters)
        update.optimizer.share(over: collective)
        step = collective.share(step)
        trainSeconds = collective.share(trainSeconds)
    }

    // MARK: Loop

    public func train(maxSteps: Int? = nil, stop: StopFlag = StopFlag(), progress: ProgressReporter = ProgressReporter()) throws -> Summary {
        let startStep = step
        let lastStep = min(totalSteps, maxSteps.map { startStep + $0 } ?? totalSteps)
        let started = Date()
        var lastLoss: Float?
        var window: (images: Int, seconds: Double, data: Double) = (0, 0, 0)
        var windowStart = Date()
        let unreadable = UnreadableImages(earlier: run.earlierUnreadableImages)
        if startStep > 0 && writes {
            progress.log("resuming at step \(startStep) of \(totalSteps) (epoch \(startStep / stepsPerEpoch))")
            if let note = TrainingCheckpoint.shardChangeNote(saved: checkpointShards, now: stepper.shards) { progress.log(note) }
            if let warning = datasetChangeWarning(checkpointImages, now: dataset.count, data: recipe.data) { progress.log(warning) }
        }

        epochs: while step < lastStep {
            let epoch = step / stepsPerEpoch
            let loader = makeLoader(epoch: epoch, startBatch: step % stepsPerEpoch)
            while step < lastStep, step / stepsPerEpoch == epoch {
                let waitStart = Date()
                guard let batch = try loader.next() else { break }
                unreadable.report(loader, to: progress)
                let dataSeconds = Date().timeIntervalSince(waitStart)
                let clock = TrainingClock(step: step, stepsPerEpoch: stepsPerEpoch, epochs: recipe.epochs)
                var rng = SeededRandom(seed: recipe.seed, stream: UInt64(step))
                let images = viewGroups.map { groups in
                    PretrainingBatch(groups: zip(groups, batch.views).map { PretrainingBatch.Group(views: $0.views, images: $1) })
                } ?? PretrainingBatch(images: batch.images)
                let (report, applied) = try update.iterate(network, clock: clock) {
                    stepper.trainStep(images, rng: &rng, options: recipe.objectiveOptions, clock: clock)
                }
                let lr = applied.lr
                step += 1
                lastLoss = report.total
                // Every rank agrees whether to stop after this step (a signal may reach only some).
                let stopping = collective.any(stop.isSet)
                guard writes else {
                    if stopping { break epochs }
                    continue
                }

                window.images += batch.images.shape[0]
                window.data += dataSeconds
                let now = Date()
                window.seconds = now.timeIntervalSince(windowStart)
                let rate = Double(window.images) / max(window.seconds, 1e-9)
                let eta = Double(lastStep - step) * Double(recipe.batchSize) / max(rate, 1e-9)
                var text = String(format: "epoch %d loss %.4f", epoch, report.total)
                let parts = report.losses.dropFirst() + report.schedule
                if !parts.isEmpty { text += " (" + parts.map { "\($0.name) " + String(format: "%.4f", $0.value) }.joined(separator: " ") + ")" }
                text += String(format: " lr %.2e %.0f img/s", lr, rate)
                progress.update(label: "pretrain", done: step, total: totalSteps, text: text, eta: eta)
                if step % 10 == 0 || step == 1 || step == lastStep || step % stepsPerEpoch == 0 {
                    var m: [String: Any] = ["step": step, "epoch": Double(step) / Double(stepsPerEpoch), "lr": lr, "img_per_s": rate,
                                            "data_share": window.data / max(window.seconds, 1e-9),
                                            "elapsed_s": Date().timeIntervalSince(started)]
                    for named in report.losses + report.schedule { m[named.name] = named.value }
                    run.appendMetrics(m)
                    window = (0, 0, 0)
                    windowStart = now
                }
                if step % recipe.checkpointEvery == 0 || step == lastStep {
                    try saveCheckpoint()
                    try? writeLossPlot()
                }
                if stopping {
                    try saveCheckpoint()
                    progress.log("stopped at step \(step); checkpoint saved — resume with --resume")
                    break epochs
                }
            }
        }
        let seconds = Date().timeIntervalSince(started)
        let done = step - startStep
        return Summary(steps: step, epochs: Double(step) / Double(stepsPerEpoch), finalLoss: lastLoss, seconds: seconds,
                       imagesPerSecond: Double(done * recipe.batchSize) / max(seconds, 1e-9), stoppedEarly: step < totalSteps,
                       totalSeconds: trainSeconds + Date().timeIntervalSince(invocationStart), totalCPUSeconds: totalCPUSeconds,
                       unreadableImages: unreadable.listed)
    }

    /// The view groups the objective asks for (nil: one view per image at the model's size).
    public var viewGroups: [ViewGroupSpec]? { network.dataViews(options: recipe.objectiveOptions) }

    /// This epoch's batches from `startBatch` on, shaped as the objective asks.
    func makeLoader(epoch: Int, startBatch: Int) -> BatchLoader {
        let c = config.encoder
        guard let groups = viewGroups else {
            return BatchLoader(dataset: dataset, batchSize: recipe.batchSize, shuffle: true, dropLast: true, seed: recipe.seed,
                               epoch: epoch, startBatch: startBatch, channels: c.inChans, imageSize: c.imgSize, mean: c.mean,
                               std: c.std, augment: Augment(size: c.imgSize, scale: recipe.augmentScale), workers: 1)
        }
        let views = MultiViewTransform(groups: groups.map { g in
            MultiViewTransform.Group(views: g.views, transform: SampleTransform(
                channels: c.inChans, imageSize: g.size, mean: c.mean, std: c.std,
                augment: Augment(size: g.size, scale: g.scale ?? recipe.augmentScale), photometric: g.photometric))
        })
        return BatchLoader(dataset: dataset, batchSize: recipe.batchSize, shuffle: true, dropLast: true, seed: recipe.seed,
                           epoch: epoch, startBatch: startBatch, views: views, workers: 1)
    }

    /// loss.png: the objective's losses against the step.
    public func writeLossPlot() throws {
        let objective = network.objectiveType
        try run.writeLossPlot(keys: objective.lossNames, title: "\(objective.displayName) pretraining loss")
    }

    // MARK: Checkpoints

    /// Model (online + momentum), optimizer moments and the position in the schedule, in one
    /// safetensors file written atomically.
    public func saveCheckpoint() throws {
        var extra = ["objective": config.objective, TrainingCheckpoint.shardsKey: String(stepper.shards), "images": String(dataset.count)]
        extra[Self.cpuSecondsKey] = totalCPUSeconds.map { String($0) }
        try TrainingCheckpoint.save(model: network.checkpointParameters, optimizerOver: network.parameters, optimizer: update.optimizer,
                                    step: step, seconds: trainSeconds + Date().timeIntervalSince(invocationStart),
                                    extra: extra, to: run.file(RunDirectory.checkpointName))
    }

    /// The checkpoint metadata key of the run's process CPU seconds so far.
    static let cpuSecondsKey = "train_cpu_seconds"

    /// This rank's process CPU seconds over the whole run (earlier invocations + this one); nil when unknown.
    var totalCPUSeconds: Double? { trainCPUSeconds.map { $0 + ProcessCPUTime.seconds() - invocationCPUStart } }

    func loadCheckpoint() throws {
        let position = try TrainingCheckpoint.load(into: network.checkpointParameters, optimizer: &update.optimizer,
                                                   from: run.file(RunDirectory.checkpointName))
        step = position.step
        trainSeconds = position.seconds
        // A run resumed at step 0 has no earlier work; otherwise the checkpoint must say how much there was.
        trainCPUSeconds = position.metadata[Self.cpuSecondsKey].flatMap(Double.init) ?? (position.step == 0 ? 0 : nil)
        checkpointImages = position.metadata["images"].flatMap(Int.init)
        checkpointShards = position.shards
        run.dropMetrics(after: step)
    }

    /// The number of training images when the checkpoint resumed from was written (nil: older checkpoints).
    var checkpointImages: Int?
}
