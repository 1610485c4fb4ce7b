import Foundation
import Tensor
import XCTest
@testable import Training

final class KNNClassifierTests: XCTestCase {
    /// Test point (1, 0); train points at cosine similarity 1, 0.8, 0.6, 0 and −1 (stored at
    /// different lengths: similarity is cosine).
    private let train: [Float] = [3, 0,  0.4, 0.3,  6, 8,  0, 2,  -1, 0]
    private let trainLabels = [0, 1, 1, 2, 0]

    func testHandComputedWeightedVote() {
        let test: [Float] = [2, 0]
        func predict(k: Int, t: Float) -> Int {
            KNNClassifier(k: k, temperature: t).predict(test: test, train: train, trainLabels: trainLabels, dim: 2, classes: 3)[0]
        }
        // k = 3: neighbours (1.0, class 0), (0.8, class 1), (0.6, class 1).
        // T = 1:    class 0: e^1 = 2.718;       class 1: e^0.8 + e^0.6 = 2.226 + 1.822 = 4.048 → 1.
        XCTAssertEqual(predict(k: 3, t: 1), 1)
        // T = 0.07: class 0: e^14.29 = 1.6e6;  class 1: e^11.43 + e^8.57 = 9.2e4 + 5.3e3 → 0.
        XCTAssertEqual(predict(k: 3, t: 0.07), 0)
        // k = 5 adds (0, class 2) and (−1, class 0) — at T = 1: class 0 2.718 + 0.368 = 3.086 < 4.048 → still 1.
        XCTAssertEqual(predict(k: 5, t: 1), 1)
        // T = 0.5, k = 3: class 0 e^2 = 7.389; class 1 e^1.6 + e^1.2 = 4.953 + 3.320 = 8.273 → 1; k = 2 → 0.
        XCTAssertEqual(predict(k: 3, t: 0.5), 1)
        XCTAssertEqual(predict(k: 2, t: 0.5), 0)
        // k larger than the train set: all five vote.
        XCTAssertEqual(predict(k: 50, t: 1), 1)
    }

    func testTiesGoToTheLowestClass() {
        // (1, 0) is equally similar to (0.6, ±0.8): equal votes for classes 2 and 1 → 1.
        let knn = KNNClassifier(k: 2)
        XCTAssertEqual(knn.predict(test: [1, 0], train: [0.6, 0.8, 0.6, -0.8], trainLabels: [2, 1], dim: 2, classes: 3), [1])
        XCTAssertEqual(knn.predict(test: [1, 0], train: [0.6, -0.8, 0.6, 0.8], trainLabels: [1, 2], dim: 2, classes: 3), [1])
    }

    /// Clusters around random directions in 32-D: k-NN is perfect.
    func testSeparatedClustersArePerfect() throws {
        let (dim, classes) = (32, 5)
        var rng = SeededRandom(seed: 11)
        let centres = (0..<(classes * dim)).map { _ in rng.normal() }
        func sample(_ count: Int) -> FeatureSet {
            var f: [Float] = [], labels: [Int] = []
            for i in 0..<count {
                let c = i % classes
                labels.append(c)
                let length = 1 + rng.uniform() * 5
                for j in 0..<dim { f.append((centres[c * dim + j] + 0.05 * rng.normal()) * length) }
            }
            return FeatureSet(features: f, labels: labels, dim: dim, classes: ["a", "b", "c", "d", "e"])
        }
        let result = try KNNClassifier().evaluate(train: sample(300), test: sample(100))
        XCTAssertEqual(result.top1, 1)
        XCTAssertEqual(result.correct, 100)
        XCTAssertEqual(result.perClass, ["a": 1, "b": 1, "c": 1, "d": 1, "e": 1])
        XCTAssertEqual([result.k, result.trainCount, result.testCount, result.dim, result.classes], [20, 300, 100, 32, 5])
        XCTAssertEqual(result.temperature, 0.07, accuracy: 1e-7)
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(result)) as? [String: Any]
        XCTAssertEqual(json?["evaluation"] as? String, "knn")
    }

    /// Chunk sizes do not change anything, and a direct computation (double-precision dot products,
    /// full sort) agrees.
    func testChunkingGivesTheSameAnswerAsADirectComputation() throws {
        let (dim, classes, nTrain, nTest) = (24, 6, 500, 123)
        var rng = SeededRandom(seed: 5)
        let train = (0..<(nTrain * dim)).map { _ in rng.normal() }, test = (0..<(nTest * dim)).map { _ in rng.normal() }
        let trainLabels = (0..<nTrain).map { _ in Int(rng.next() % UInt64(classes)) }
        let testLabels = (0..<nTest).map { _ in Int(rng.next() % UInt64(classes)) }

        let whole = KNNClassifier(k: 10, temperature: 0.1, chunkSize: 1000)
            .predict(test: test, train: train, trainLabels: trainLabels, dim: dim, classes: classes)
        for chunk in [1, 7, 64, 123] {
            XCTAssertEqual(KNNClassifier(k: 10, temperature: 0.1, chunkSize: chunk)
                .predict(test: test, train: train, trainLabels: trainLabels, dim: dim, classes: classes), whole, "chunk \(chunk)")
        }

        func unit(_ x: [Float], _ r: Int) -> [Double] {
            let row = x[(r * dim)..<((r + 1) * dim)].map(Double.init)
            let norm = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return row.map { $0 / norm }
        }
        let trainUnit = (0..<nTrain).map { unit(train, $0) }
        var direct: [Int] = []
        for r in 0..<nTest {
            let q = unit(test, r)
            let sims = trainUnit.map { zip($0, q).reduce(0) { $0 + $1.0 * $1.1 } }
            let top = sims.indices.sorted { sims[$0] > sims[$1] || (sims[$0] == sims[$1] && $0 < $1) }.prefix(10)
            var votes = [Double](repeating: 0, count: classes)
            for i in top { votes[trainLabels[i]] += exp(sims[i] / 0.1) }
            direct.append(votes.indices.max { votes[$0] < votes[$1] || (votes[$0] == votes[$1] && $0 > $1) }!)
        }
        XCTAssertEqual(whole, direct)

        let result = try KNNClassifier(k: 10, temperature: 0.1, chunkSize: 16)
            .evaluate(train: FeatureSet(features: train, labels: trainLabels, dim: dim),
                      test: FeatureSet(features: test, labels: testLabels, dim: dim))
        XCTAssertEqual(result.correct, zip(direct, testLabels).filter { $0 == $1 }.count)
        XCTAssertLessThan(result.top1, 0.4, "random labels: near chance (1/6)")
    }

    func testTopKSelection() {
        var rng = SeededRandom(seed: 8)
        let x = (0..<1000).map { _ in Float(Int(rng.next() % 200)) }  // many ties
        var sims = [Float](repeating: 0, count: 25), indices = [Int](repeating: 0, count: 25)
        x.withUnsafeBufferPointer { KNNClassifier.topK($0.baseAddress!, 1000, k: 25, sims: &sims, indices: &indices) }
        let expected = x.indices.sorted { x[$0] > x[$1] || (x[$0] == x[$1] && $0 < $1) }.prefix(25)
        XCTAssertEqual(indices, Array(expected))
        XCTAssertEqual(sims, expected.map { x[$0] })
    }
}
