import Foundation
import Tensor
import ViT
import Checkpoint

/// Supervised fine-tuning (or training from scratch) of a `Classifier`: AdamW (β 0.9/0.999) with
/// layer-wise lr decay, warmup + cosine per iteration, label smoothing, RandomResizedCrop + flip;
/// top-1 on the test split after every epoch; atomic checkpoints and exact resume.
///
/// In a distributed job (`collective` of N ranks) every rank reads the same batches and computes
/// its shard; rank 0 alone reads and writes the run folder and evaluates, and a stop on any rank
/// stops every rank after the same step.
public final class Finetuner {
    public let recipe: FinetuneRecipe
    public let run: RunDirectory
    public let classifier: Classifier
    /// Splits each batch over the cores (one classifier copy per worker), or over the ranks of a
    /// job (see `FinetuneStep`).
    let stepper: FinetuneStep
    /// The processes of the job (`SingleProcess` unless started by mpirun).
    public let collective: any Collective
    /// Rank 0 writes the run folder and evaluates; the other ranks only train.
    var writes: Bool { collective.isRoot }
    let train: any ImageDataset
    let test: any ImageDataset
    var optimizer: AdamW
    let schedule: CosineSchedule
    public private(set) var step = 0
    public let stepsPerEpoch: Int
    var trainSeconds: Double = 0
    /// Shards per batch of the invocation that wrote the checkpoint resumed from (nil: fresh, or unrecorded).
    var checkpointShards: Int?
    let invocationStart = Date()

    public struct EpochResult: Codable, Sendable {
        public var epoch: Int
        public var top1: Double
        public var trainLoss: Double
    }

    public struct Summary: Codable, Sendable {
        public var steps: Int
        public var epochs: Int
        public var top1: Double?
        public var bestTop1: Double?
        public var history: [EpochResult]
        public var seconds: Double
        public var totalSeconds: Double
        public var stoppedEarly: Bool
        /// Training images skipped as unreadable in this invocation (absent when none).
        public var unreadableImages: [String]?
    }

    public struct FinetuneError: Error, CustomStringConvertible { public let description: String }

    public init(config: ViTConfig, recipe: FinetuneRecipe, run: RunDirectory, resume: Bool,
                collective: any Collective = SingleProcess()) throws {
        self.recipe = recipe
        self.run = run
        let share = recipe.testShare ?? HeldOutSplit.defaultShare
        let full = try Datasets.open(recipe.data, split: .train, testShare: share)
        train = recipe.subset.map { SubsetDataset(full, count: $0) } ?? full
        let fullTest = try Datasets.open(recipe.data, split: .test, testShare: share)
        test = recipe.testSubset.map { SubsetDataset(fullTest, count: $0) } ?? fullTest
        guard !train.classes.isEmpty else {
            throw FinetuneError(description: "\(recipe.data) has no labels: fine-tuning needs class folders or an IDX label file")
        }
        classifier = Classifier(config: config, classes: train.classes)
        if collective.isDistributed && recipe.batchSize < collective.size {
            throw FinetuneError(description: "a batch of \(recipe.batchSize) cannot give each of \(collective.size) ranks an image")
        }
        self.collective = collective
        stepper = FinetuneStep(classifier: classifier, shards: Parallel.workers, collective: collective)
        stepsPerEpoch = train.count / recipe.batchSize
        guard stepsPerEpoch > 0 else { throw FinetuneError(description: "the training split has \(train.count) images, fewer than one batch of \(recipe.batchSize): "
                                                                    + "a smaller batch (--batch-size) would train") }
        let depth = config.depth
        optimizer = AdamW(parameters: classifier.parameters, beta1: 0.9, beta2: 0.999, weightDecay: Float(recipe.weightDecay)) { name, p in
            .init(decay: AdamW.officialDecay(name, p, exempt: ["cls_token", "pos_embed"]),
                  lrScale: Float(layerDecayScale(name, depth: depth, decay: recipe.layerDecay)))
        }
        schedule = CosineSchedule(base: recipe.lr, final: recipe.minLR, totalSteps: stepsPerEpoch * recipe.epochs,
                                  warmupSteps: Int((recipe.warmupEpochs * Double(stepsPerEpoch)).rounded()))
        if !collective.isRoot {
            // Rank 0's weights (pretrained or from its checkpoint) arrive below.
            try classifier.initialize(from: nil, seed: recipe.seed)
        } else if resume {
            let position = try TrainingCheckpoint.load(into: classifier.parameters, optimizer: &optimizer,
                                                       from: run.file(RunDirectory.checkpointName))
            step = position.step
            trainSeconds = position.seconds
            checkpointImages = position.metadata["images"].flatMap(Int.init)
            checkpointShards = position.shards
            run.dropMetrics(after: step)
        } else {
            let pretrained = try recipe.initFrom.map { try Classifier.pretrainedEncoder($0).1 }
            try classifier.initialize(from: pretrained, seed: recipe.seed)
            try run.writeJSON(classifier.model.config, to: "config.json")
            try run.writeJSON(recipe, to: "recipe.json")
        }
        collective.shareValues(classifier.parameters)
        optimizer.share(over: collective)
        step = collective.share(step)
        trainSeconds = collective.share(trainSeconds)
    }

    /// The number of training images when the checkpoint resumed from was written (nil: older checkpoints).
    var checkpointImages: Int?

    public var totalSteps: Int { stepsPerEpoch * recipe.epochs }
    /// Images in the training split.
    public var imageCount: Int { train.count }

    public func train(maxSteps: Int? = nil, stop: StopFlag = StopFlag(), progress: ProgressReporter = ProgressReporter()) throws -> Summary {
        let c = classifier.model.config
        let startStep = step
        let lastStep = min(totalSteps, maxSteps.map { startStep + $0 } ?? totalSteps)
        let started = Date()
        var history = writes ? (try? run.readJSON([EpochResult].self, from: "history.json")) ?? [] : []
        var lossSum = 0.0, lossCount = 0
        var stopped = false
        let unreadable = UnreadableImages(earlier: run.earlierUnreadableImages)
        if writes, let warning = datasetChangeWarning(checkpointImages, now: train.count, data: recipe.data) { progress.log(warning) }
        if startStep > 0 && writes, let note = TrainingCheckpoint.shardChangeNote(saved: checkpointShards, now: stepper.shards) {
            progress.log(note)
        }
        while step < lastStep && !stopped {
            let epoch = step / stepsPerEpoch
            let loader = BatchLoader(dataset: train, batchSize: recipe.batchSize, shuffle: true, dropLast: true, seed: recipe.seed,
                                         epoch: epoch, startBatch: step % stepsPerEpoch, channels: c.inChans, imageSize: c.imgSize,
                                         mean: c.mean, std: c.std, augment: Augment(size: c.imgSize, scale: recipe.cropScale), workers: 1)
            while step < lastStep, step / stepsPerEpoch == epoch, let batch = try loader.next() {
                unreadable.report(loader, to: progress)
                let lr = Float(schedule.value(at: step))
                classifier.parameters.zeroGrads()
                let loss = stepper.trainStep(batch.images, labels: batch.labels, smoothing: Float(recipe.labelSmoothing))
                guard loss.isFinite else {
                    throw FinetuneError(description: Divergence.message(loss: loss, step: step, totalSteps: totalSteps, lr: lr,
                                                                       lrFlags: "--lr (or --blr)"))
                }
                optimizer.step(classifier.parameters, lr: lr)
                step += 1
                lossSum += Double(loss); lossCount += 1
                // Every rank agrees whether to stop after this step (a signal may reach only some).
                let stopping = collective.any(stop.isSet)
                guard writes else {
                    if stopping { stopped = true; break }
                    continue
                }
                let elapsed = Date().timeIntervalSince(started)
                let rate = Double((step - startStep) * recipe.batchSize) / max(elapsed, 1e-9)
                progress.update(label: "finetune", done: step, total: totalSteps,
                                text: String(format: "epoch %d loss %.4f lr %.2e %.0f img/s", epoch, loss, lr, rate),
                                eta: Double(lastStep - step) * Double(recipe.batchSize) / max(rate, 1e-9))
                if step % 10 == 0 { run.appendMetrics(["step": step, "epoch": Double(step) / Double(stepsPerEpoch), "loss": loss, "lr": lr, "img_per_s": rate]) }
                if step % recipe.checkpointEvery == 0 { try saveCheckpoint() }
                if stopping { stopped = true; break }
            }
            if step % stepsPerEpoch == 0 && !stopped && writes {
                let top1 = try Evaluation.top1(classifier, dataset: test, batchSize: 500, progress: nil).top1
                let result = EpochResult(epoch: step / stepsPerEpoch, top1: top1, trainLoss: lossCount > 0 ? lossSum / Double(lossCount) : .nan)
                history.append(result)
                lossSum = 0; lossCount = 0
                try run.writeJSON(history, to: "history.json")
                run.appendMetrics(["step": step, "epoch": Double(step) / Double(stepsPerEpoch), "test_top1": top1])
                progress.log(String(format: "epoch %d: test top-1 %.2f%% (train loss %.4f)", result.epoch, 100 * top1, result.trainLoss))
                try saveCheckpoint()
                try? run.writeLossPlot(keys: ["loss"], title: "fine-tuning loss")
            }
        }
        if step > startStep && writes { try saveCheckpoint() }
        let seconds = Date().timeIntervalSince(started)
        return Summary(steps: step, epochs: step / stepsPerEpoch, top1: history.last?.top1, bestTop1: history.map(\.top1).max(),
                       history: history, seconds: seconds, totalSeconds: trainSeconds + Date().timeIntervalSince(invocationStart),
                       stoppedEarly: step < totalSteps, unreadableImages: unreadable.listed)
    }

    public func saveCheckpoint() throws {
        try TrainingCheckpoint.save(model: classifier.parameters, optimizerOver: classifier.parameters, optimizer: optimizer, step: step,
                                    seconds: trainSeconds + Date().timeIntervalSince(invocationStart),
                                    extra: ["kind": "finetune", TrainingCheckpoint.shardsKey: String(stepper.shards), "images": String(train.count)],
                                    to: run.file(RunDirectory.checkpointName))
    }
}
