import Tensor
import ViT
import XCTest
@testable import Training

/// A data-parallel fine-tuning step must give the whole batch's loss and gradients: the loss
/// averaged over the whole batch, the shards' gradients summed (equal up to summation order:
/// 1e-5 relative to each tensor's largest gradient).
final class FinetuneStepTests: XCTestCase {
    let config = ViTConfig(imgSize: 8, patchSize: 2, inChans: 1, embedDim: 16, depth: 2, numHeads: 2, mlpRatio: 2,
                           qkvBias: .qv, layerNormEps: 1e-6, mean: [0.5], std: [0.5], posEmbed: .sincosBootMAE)
    let classes = ["a", "b", "c"]

    func compare(batch: Int, shards: Int, smoothing: Float) throws {
        let single = Classifier(config: config, classes: classes), sharded = Classifier(config: config, classes: classes)
        try single.initialize(from: nil, seed: 5)
        try sharded.initialize(from: nil, seed: 5)
        // A visible head: the official init scales it by 0.001, which would hide errors in the encoder's gradients.
        for c in [single, sharded] {
            let head = c.model.head!.weight
            for i in 0..<head.value.count { head.value.data[i] *= 1000 }
        }
        var rng = SeededRandom(seed: 9)
        let images = Tensor(shape: [batch, 1, 8, 8], data: (0..<(batch * 64)).map { _ in rng.normal() })
        let labels = (0..<batch).map { ($0 * 7 + 1) % classes.count }

        let savedWorkers = Parallel.workers
        Parallel.workers = 2
        defer { Parallel.workers = savedWorkers }
        single.parameters.zeroGrads()
        let expected = single.trainStep(images, labels: labels, smoothing: smoothing)
        let step = FinetuneStep(classifier: sharded, shards: shards)
        XCTAssertEqual(step.shards, shards)
        for _ in 0..<2 {  // twice: the copies' gradients must start from zero again
            sharded.parameters.zeroGrads()
            let got = step.trainStep(images, labels: labels, smoothing: smoothing)
            XCTAssertEqual(got, expected, accuracy: 1e-5 * max(1, abs(expected)))
            for ((name, a), (_, b)) in zip(single.parameters.entries, sharded.parameters.entries) where a.trainable {
                let scale = a.grad.data.map { abs($0) }.max() ?? 0
                XCTAssertGreaterThan(scale, 0, "\(name) got no gradient")
                for i in 0..<a.grad.count {
                    XCTAssertEqual(b.grad.data[i], a.grad.data[i], accuracy: 1e-5 * max(scale, 1e-6), "\(name)[\(i)]")
                }
            }
        }
    }

    func testShardsMatchTheWholeBatch() throws {
        try compare(batch: 5, shards: 2, smoothing: 0.1)
        try compare(batch: 6, shards: 3, smoothing: 0)
    }

    func testMoreShardsThanImagesStillCoverTheBatch() throws {
        try compare(batch: 2, shards: 3, smoothing: 0.1)
    }

    /// The main classifier's updated weights reach the copies before the next step.
    func testCopiesFollowTheMainWeights() throws {
        let single = Classifier(config: config, classes: classes), sharded = Classifier(config: config, classes: classes)
        try single.initialize(from: nil, seed: 5)
        try sharded.initialize(from: nil, seed: 5)
        var rng = SeededRandom(seed: 3)
        let images = Tensor(shape: [4, 1, 8, 8], data: (0..<256).map { _ in rng.normal() })
        let labels = [0, 1, 2, 0]
        let step = FinetuneStep(classifier: sharded, shards: 2)
        single.parameters.zeroGrads()
        sharded.parameters.zeroGrads()
        _ = single.trainStep(images, labels: labels, smoothing: 0.1)
        _ = step.trainStep(images, labels: labels, smoothing: 0.1)
        for c in [single, sharded] {  // the same plain update on both
            for (_, p) in c.parameters.entries where p.trainable {
                for i in 0..<p.value.count { p.value.data[i] -= 0.5 * p.grad.data[i] }
            }
            c.parameters.zeroGrads()
        }
        let expected = single.trainStep(images, labels: labels, smoothing: 0.1)
        XCTAssertEqual(step.trainStep(images, labels: labels, smoothing: 0.1), expected, accuracy: 1e-5 * max(1, abs(expected)))
    }
}
