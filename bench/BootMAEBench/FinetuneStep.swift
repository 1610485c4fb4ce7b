import Foundation
import Tensor
import Training
import ViT

/// One fine-tuning step of the tiny classifier the project trains on Fashion-MNIST (128 wide,
/// 6 deep, 4 heads, 28 px patch 4 → 50 tokens, batch 256): forward, cross-entropy, backward,
/// then AdamW, each in img/s and ms (medians). Random weights and images. The whole batch runs on
/// one classifier (ops split over the threads); `finetune-step --compare-shards` times data parallelism.
func finetuneStepRates(seconds: Double) {
    var config = ViTConfig(imgSize: 28, patchSize: 4, inChans: 1, embedDim: 128, depth: 6, numHeads: 4, mlpRatio: 4,
                           qkvBias: .qv, layerNormEps: 1e-6, mean: [0.5], std: [0.5], posEmbed: .sincosBootMAE)
    config.globalPool = .mean
    let classifier = Classifier(config: config, classes: (0..<10).map(String.init))
    try! classifier.initialize(from: nil, seed: 3)
    var optimizer = AdamW(parameters: classifier.parameters, weightDecay: 0.05) { name, p in
        .init(decay: AdamW.officialDecay(name, p, exempt: ["cls_token", "pos_embed"]))
    }
    var rng = SeededRandom(seed: 7)
    let batch = 256
    let images = Tensor(shape: [batch, 1, 28, 28], data: (0..<(batch * 784)).map { _ in rng.normal() })
    let labels = (0..<batch).map { $0 % 10 }
    func measure(_ name: String, _ body: () -> Void) {
        let t = timeMedians(seconds: seconds, minRuns: 5, body)
        print(String(format: "finetune %-32@ batch %d  %7.1f img/s  %7.1f ms  %7.1f img/cpu-s", name as NSString, batch,
                     Double(batch) / t.wall, t.wall * 1000, Double(batch) / t.cpu))
    }
    measure("step tiny 128x6 28px (fwd+bwd)") {
        classifier.parameters.zeroGrads()
        _ = classifier.trainStep(images, labels: labels, smoothing: 0.1)
    }
    measure("forward only") { _ = classifier.forward(images) }
    measure("adamw") { optimizer.step(classifier.parameters, lr: 1e-4) }
}
