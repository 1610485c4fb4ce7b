import Foundation
import Tensor
import XCTest
@testable import Training

/// Gaussian blobs: `classes` centres drawn N(0, spread²) per coordinate, points centre + N(0, 1).
private func blobs(count: Int, dim: Int, classes: Int, spread: Float, seed: UInt64, centresSeed: UInt64 = 7) -> FeatureSet {
    var crng = SeededRandom(seed: centresSeed)
    let centres = (0..<(classes * dim)).map { _ in crng.normal() * spread }
    var rng = SeededRandom(seed: seed)
    var features: [Float] = [], labels: [Int] = []
    for i in 0..<count {
        let c = i % classes
        labels.append(c)
        for j in 0..<dim { features.append(centres[c * dim + j] + rng.normal() + 3) }  // an offset BatchNorm must remove
    }
    return FeatureSet(features: features, labels: labels, dim: dim)
}

final class BatchNormTests: XCTestCase {
    private func randomTensor(_ shape: [Int], seed: UInt64, scale: Float = 1, offset: Float = 0) -> Tensor {
        var rng = SeededRandom(seed: seed)
        return Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.normal() * scale + offset })
    }

    /// L = Σ dy·y with y from training mode (batch statistics): the analytic dx against central differences.
    func testBackwardMatchesFiniteDifferences() {
        let (b, d) = (6, 5)
        let x = randomTensor([b, d], seed: 1, scale: 1.5, offset: 0.7)
        let dy = randomTensor([b, d], seed: 2)
        var bn = BatchNorm1d(features: d, eps: 1e-3)
        let (_, cache) = bn.forwardTraining(x)
        let dx = bn.backward(dy, cache: cache)

        func loss(_ input: Tensor) -> Double {
            var fresh = BatchNorm1d(features: d, eps: 1e-3)
            let y = fresh.forwardTraining(input).0
            return zip(y.data, dy.data).reduce(0) { $0 + Double($1.0) * Double($1.1) }
        }
        let h: Float = 1e-2
        var worst: Double = 0
        for i in 0..<x.count {
            var plus = x, minus = x
            plus.data[i] += h
            minus.data[i] -= h
            let numeric = (loss(plus) - loss(minus)) / Double(2 * h)
            worst = max(worst, abs(numeric - Double(dx.data[i])))
        }
        XCTAssertLessThan(worst, 2e-3, "max |analytic − numeric| of dx")
        // The gradient of a normalized output is orthogonal to constant shifts and to x̂ per feature.
        for j in 0..<d {
            let column = (0..<b).map { Double(dx.data[$0 * d + j]) }
            XCTAssertEqual(column.reduce(0, +), 0, accuracy: 1e-5)
        }
    }

    func testRunningStatisticsFollowPyTorchAndEvalUsesThem() {
        let d = 3
        var bn = BatchNorm1d(features: d)  // eps 1e-6, momentum 0.1
        XCTAssertEqual(bn.runningMean, [0, 0, 0])
        XCTAssertEqual(bn.runningVar, [1, 1, 1])
        let x1 = randomTensor([4, d], seed: 3, scale: 2, offset: 1)
        let x2 = randomTensor([7, d], seed: 4, scale: 0.5, offset: -2)

        func stats(_ x: Tensor) -> (mean: [Double], biased: [Double], unbiased: [Double]) {
            let b = x.rows
            var mean = [Double](repeating: 0, count: d), ss = [Double](repeating: 0, count: d)
            for r in 0..<b { for j in 0..<d { mean[j] += Double(x.data[r * d + j]) / Double(b) } }
            for r in 0..<b { for j in 0..<d { let t = Double(x.data[r * d + j]) - mean[j]; ss[j] += t * t } }
            return (mean, ss.map { $0 / Double(b) }, ss.map { $0 / Double(b - 1) })
        }
        let (s1, s2) = (stats(x1), stats(x2))
        let y1 = bn.forwardTraining(x1).0
        // Training output uses the biased batch variance.
        for r in 0..<4 {
            for j in 0..<d {
                XCTAssertEqual(Double(y1.data[r * d + j]), (Double(x1.data[r * d + j]) - s1.mean[j]) / (s1.biased[j] + 1e-6).squareRoot(),
                               accuracy: 1e-5)
            }
        }
        _ = bn.forwardTraining(x2)
        XCTAssertEqual(bn.batchesTracked, 2)
        for j in 0..<d {
            let mean = 0.9 * (0.9 * 0 + 0.1 * s1.mean[j]) + 0.1 * s2.mean[j]
            let variance = 0.9 * (0.9 * 1 + 0.1 * s1.unbiased[j]) + 0.1 * s2.unbiased[j]
            XCTAssertEqual(Double(bn.runningMean[j]), mean, accuracy: 1e-6)
            XCTAssertEqual(Double(bn.runningVar[j]), variance, accuracy: 1e-5)
        }
        // Evaluation: running statistics, not the batch's (a single row works).
        let x3 = randomTensor([2, d], seed: 5)
        let y3 = bn.forwardEval(x3)
        for r in 0..<2 {
            for j in 0..<d {
                let expected = (Double(x3.data[r * d + j]) - Double(bn.runningMean[j])) / (Double(bn.runningVar[j]) + 1e-6).squareRoot()
                XCTAssertEqual(Double(y3.data[r * d + j]), expected, accuracy: 1e-5)
            }
        }
        XCTAssertEqual(bn.forwardEval(Tensor(shape: [1, d], data: Array(x3.data[0..<d]))).data, Array(y3.data[0..<d]))
        // And it round-trips through JSON with the probe weights.
        let decoded = try? JSONDecoder().decode(BatchNorm1d.self, from: JSONEncoder().encode(bn))
        XCTAssertEqual(decoded, bn)
    }
}

final class LinearProbeTests: XCTestCase {
    private let settings = LinearProbe.Settings(epochs: 15, batchSize: 64, warmupEpochs: 2, seed: 3)

    func testLearnsSeparableBlobs() throws {
        let train = blobs(count: 800, dim: 16, classes: 4, spread: 1.5, seed: 1)
        let test = blobs(count: 400, dim: 16, classes: 4, spread: 1.5, seed: 2)
        let (model, result) = try LinearProbe(settings).fit(train: train, test: test)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(result.top1), 0.95)
        XCTAssertGreaterThanOrEqual(result.trainTop1, 0.95)
        XCTAssertEqual(result.epochLosses.count, 15)
        XCTAssertEqual(result.epochTestTop1.count, 15)
        XCTAssertLessThan(result.epochLosses.last!, result.epochLosses.first! * 0.5, "the loss falls")
        XCTAssertEqual(result.classes, 4)
        XCTAssertEqual(result.lr, 0.1 * 64 / 256, accuracy: 1e-12)
        XCTAssertEqual(Set(result.perClass.keys), ["0", "1", "2", "3"])
        XCTAssertEqual(result.epochTestTop1.last, result.top1)
        // The returned weights reproduce the reported accuracy, and survive JSON.
        let predictions = model.predict(test.features)
        XCTAssertEqual(Double(zip(predictions, test.labels).filter { $0 == $1 }.count) / 400, result.top1!)
        let decoded = try JSONDecoder().decode(LinearProbeModel.self, from: JSONEncoder().encode(model))
        XCTAssertEqual(decoded, model)
        XCTAssertEqual(model.namedTensors.map(\.0), ["head.0.running_mean", "head.0.running_var", "head.1.weight", "head.1.bias"])
        // Running statistics have converged to the train features' statistics (mean ≈ centre average + 3).
        XCTAssertEqual(model.norm.batchesTracked, 15 * (800 / 64))
        let columnMean = (0..<16).map { j in (0..<800).map { Double(train.features[$0 * 16 + j]) }.reduce(0, +) / 800 }
        for j in 0..<16 { XCTAssertEqual(Double(model.norm.runningMean[j]), columnMean[j], accuracy: 0.3) }
        // Deterministic from the seed.
        let again = try LinearProbe(settings).fit(train: train, test: test)
        XCTAssertEqual(again.model, model)
        XCTAssertEqual(again.result.epochLosses, result.epochLosses)
        // The result encodes as JSON.
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(result)) as? [String: Any]
        XCTAssertEqual(json?["evaluation"] as? String, "linear_probe")
    }

    func testRandomLabelsStayNearChance() throws {
        var train = blobs(count: 800, dim: 16, classes: 4, spread: 1.5, seed: 1)
        var test = blobs(count: 400, dim: 16, classes: 4, spread: 1.5, seed: 2)
        var rng = SeededRandom(seed: 99)
        train.labels = train.labels.map { _ in Int(rng.next() % 4) }
        test.labels = test.labels.map { _ in Int(rng.next() % 4) }
        let result = try LinearProbe(settings).fit(train: train, test: test).result
        // Chance is 0.25; 400 samples give a standard deviation of about 0.022.
        XCTAssertLessThan(try XCTUnwrap(result.top1), 0.34)
        XCTAssertGreaterThan(try XCTUnwrap(result.top1), 0.16)
    }

    func testRejectsUnlabeledFeatures() {
        var train = blobs(count: 20, dim: 4, classes: 2, spread: 1, seed: 1)
        train.labels[3] = -1
        XCTAssertThrowsError(try LinearProbe(settings).fit(train: train, test: nil)) { error in
            XCTAssertTrue("\(error)".contains("sample #3"), "\(error)")
        }
    }
}
