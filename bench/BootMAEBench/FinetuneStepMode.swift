import Foundation
import Tensor
import Training
import ViT

/// `bootmae-bench finetune-step [--threads 2] [--shards N] [--batch 256] [--seconds 3] [--compare-shards A,B]
///  [--with-one-thread] [--rounds 5] [--malloc-arenas N]`
///
/// One fine-tuning step as `Finetuner` runs it — classifier forward, label-smoothed cross-entropy,
/// backward, AdamW — for the tiny classifier the project trains on Fashion-MNIST (128 wide, 6 deep,
/// 4 heads, 28 px patch 4), on a fixed random batch (no data loading). `--shards` splits the batch
/// over that many data-parallel classifier copies (default: one per thread, as the trainer does; 1
/// is the whole batch on one classifier with every op split over the threads). `--compare-shards 1,2`
/// alternates the settings in this process and prints medians, spread and page faults per step.
final class FinetuneStepMode {
    let classifier: Classifier
    var optimizer: AdamW
    let images: Tensor
    let labels: [Int]
    let threads: Int
    var shards: Int
    private var steppers: [Int: FinetuneStep] = [:]
    /// A small fixed rate: many timed steps must not drive random weights to overflow.
    static let lr: Float = 1e-4

    init(_ options: Options) throws {
        (threads, shards) = try configureStepRuntime(options)
        var config = ViTConfig(imgSize: 28, patchSize: 4, inChans: 1, embedDim: 128, depth: 6, numHeads: 4, mlpRatio: 4,
                               qkvBias: .qv, layerNormEps: 1e-6, mean: [0.5], std: [0.5], posEmbed: .sincosBootMAE)
        config.globalPool = .mean
        classifier = Classifier(config: config, classes: (0..<10).map(String.init))
        try classifier.initialize(from: nil, seed: 3)
        optimizer = AdamW(parameters: classifier.parameters, weightDecay: 0.05) { name, p in
            .init(decay: AdamW.officialDecay(name, p, exempt: ["cls_token", "pos_embed"]))
        }
        let batch = try options.int("--batch", default: 256)
        var rng = SeededRandom(seed: 7)
        images = Tensor(shape: [batch, 1, 28, 28], data: (0..<(batch * 784)).map { _ in rng.normal() })
        labels = (0..<batch).map { $0 % 10 }
    }

    /// What `Finetuner.train` does per batch, minus data loading and logging.
    func step() {
        classifier.parameters.zeroGrads()
        let loss = stepper(shards: shards).trainStep(images, labels: labels, smoothing: 0.1)
        precondition(loss.isFinite, "finetune-step: the loss became \(loss)")
        optimizer.step(classifier.parameters, lr: Self.lr)
    }

    func stepper(shards: Int) -> FinetuneStep {
        if let s = steppers[shards] { return s }
        let s = FinetuneStep(classifier: classifier, shards: shards)
        steppers[shards] = s
        return s
    }

    func run(_ options: Options) throws {
        let (rounds, seconds) = (try options.int("--rounds", default: 5), try options.double("--seconds", default: 3))
        let batch = images.shape[0]
        let variants = try shardVariants(options, threads: threads) { self.shards = $0 }
        if !variants.isEmpty {
            compareVariants("finetune step", batch: batch, threads: threads, step: step, variants, rounds: rounds, seconds: seconds)
            return
        }
        let timing = timeRuns(seconds: seconds, minIterations: try options.int("--min-iterations", default: 3)) { step() }
        print(String(format: "finetune step batch %d, %d shard(s): %.1f img/s, %.1f ms/step, %.0f faults/step (median of %d)",
                     batch, shards, Double(batch) / timing.medianSeconds, timing.medianSeconds * 1000, timing.faultsPerCall,
                     timing.times.count))
    }
}
