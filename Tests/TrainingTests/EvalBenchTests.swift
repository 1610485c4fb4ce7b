import Foundation
import Tensor
import XCTest
import Training

/// Timing of the frozen-feature evaluations at Fashion-MNIST size (60 000 train, 10 000 test,
/// 128-D synthetic features). Skipped unless BOOTMAE_BENCH=1; run it in release:
/// `BOOTMAE_BENCH=1 swift test -c release --filter EvalBenchTests`.
final class EvalBenchTests: XCTestCase {
    private func features(count: Int, seed: UInt64) -> FeatureSet {
        let (dim, classes) = (128, 10)
        var crng = SeededRandom(seed: 1)
        let centres = (0..<(classes * dim)).map { _ in crng.normal() * 0.25 }
        var rng = SeededRandom(seed: seed)
        var f = [Float](repeating: 0, count: count * dim), labels = [Int](repeating: 0, count: count)
        for i in 0..<count {
            let c = Int(rng.next() % UInt64(classes))
            labels[i] = c
            for j in 0..<dim { f[i * dim + j] = centres[c * dim + j] + rng.normal() }
        }
        return FeatureSet(features: f, labels: labels, dim: dim)
    }

    func testKNNAndLinearProbeTimes() throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["BOOTMAE_BENCH"] == "1", "set BOOTMAE_BENCH=1 to run")
        TensorRuntime.configure(threads: ProcessInfo.processInfo.activeProcessorCount)
        let train = features(count: 60_000, seed: 2), test = features(count: 10_000, seed: 3)

        var clock = ContinuousClock.now
        let knn = try KNNClassifier().evaluate(train: train, test: test)
        let knnSeconds = (ContinuousClock.now - clock) / .seconds(1)
        print(String(format: "k-NN (k 20, T 0.07) 10000 × 60000 × 128: %.2f s, top-1 %.4f", knnSeconds, knn.top1))

        clock = ContinuousClock.now
        let probe = try LinearProbe(.init(epochs: 50)).fit(train: train, test: test)
        let probeSeconds = (ContinuousClock.now - clock) / .seconds(1)
        print(String(format: "linear probe 50 epochs on 60000 × 128 (batch 256, test top-1 every epoch): %.2f s, "
                     + "top-1 %.4f, loss %.4f → %.4f", probeSeconds, probe.result.top1 ?? 0,
                     probe.result.epochLosses.first ?? 0, probe.result.epochLosses.last ?? 0))
    }
}
