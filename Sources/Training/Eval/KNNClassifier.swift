import Foundation
import Tensor

/// Weighted k-nearest-neighbour classification of frozen features, as DINO's k-NN evaluation
/// (`eval_knn.py`): features L2-normalized, cosine similarity to every train feature, the k most
/// similar vote for their class with weight exp(similarity / T). Ties go to the lowest class index
/// (and, among equally similar neighbours at the k-th place, to the lowest train index).
///
/// Similarities come from one GEMM per chunk of test rows (chunk × train), then a partial top-k
/// pass per row, in parallel over the rows of the chunk; memory is chunk × train floats.
public struct KNNClassifier: Sendable {
    public var k: Int
    public var temperature: Float
    /// Test rows per similarity GEMM (256 × 60 000 similarities = 61 MB).
    public var chunkSize: Int

    public init(k: Int = 20, temperature: Float = 0.07, chunkSize: Int = 256) {
        precondition(k >= 1, "k-NN: k must be at least 1")
        precondition(temperature > 0, "k-NN: the temperature must be positive")
        precondition(chunkSize >= 1, "k-NN: chunkSize must be at least 1")
        self.k = k; self.temperature = temperature; self.chunkSize = chunkSize
    }

    /// Rows scaled to unit L2 norm (F.normalize: divided by max(‖x‖, 1e-12)).
    static func normalized(_ x: [Float], dim d: Int) -> [Float] {
        var out = x
        out.withUnsafeMutableBufferPointer { buffer in
            let p = buffer.baseAddress!
            Parallel.forEachChunk(x.count / d, grain: 512) { rows in
                for r in rows {
                    let row = p + r * d
                    Vector.scale(row, by: 1 / max(Vector.dot(row, row, d).squareRoot(), 1e-12), d)
                }
            }
        }
        return out
    }

    /// The predicted class of every test row (trainLabels in 0..<classes).
    public func predict(test: [Float], train: [Float], trainLabels: [Int], dim d: Int, classes: Int,
                        progress: ((Int) -> Void)? = nil) -> [Int] {
        let (nTest, nTrain) = (test.count / d, trainLabels.count)
        precondition(test.count == nTest * d && train.count == nTrain * d, "k-NN: feature counts do not match the width \(d)")
        precondition(trainLabels.allSatisfy { (0..<classes).contains($0) }, "k-NN: train labels outside 0..<\(classes)")
        guard nTest > 0 else { return [] }
        precondition(nTrain > 0, "k-NN: no train features")
        let kk = min(k, nTrain), invT = 1 / Double(temperature)
        let xTest = Self.normalized(test, dim: d), xTrain = Self.normalized(train, dim: d)
        let chunk = min(chunkSize, nTest)
        var sims = [Float](repeating: 0, count: chunk * nTrain)
        var predictions = [Int](repeating: 0, count: nTest)
        xTest.withUnsafeBufferPointer { tp in xTrain.withUnsafeBufferPointer { rp in
        sims.withUnsafeMutableBufferPointer { sp in predictions.withUnsafeMutableBufferPointer { pp in
        trainLabels.withUnsafeBufferPointer { labels in
            let (tp, rp, sp, pp) = (tp.baseAddress!, rp.baseAddress!, sp.baseAddress!, pp.baseAddress!)
            var start = 0
            while start < nTest {
                let rows = min(chunk, nTest - start)
                BLAS.gemm(transB: true, m: rows, n: nTrain, k: d, a: tp + start * d, lda: d, b: rp, ldb: d, c: sp, ldc: nTrain)
                let first = start
                Parallel.forEachChunk(rows, grain: 8) { range in
                    var topSim = [Float](repeating: 0, count: kk), topIndex = [Int](repeating: 0, count: kk)
                    var votes = [Double](repeating: 0, count: classes)
                    for r in range {
                        Self.topK(sp + r * nTrain, nTrain, k: kk, sims: &topSim, indices: &topIndex)
                        for c in 0..<classes { votes[c] = 0 }
                        for j in 0..<kk { votes[labels[topIndex[j]]] += Foundation.exp(Double(topSim[j]) * invT) }
                        var best = 0
                        for c in 1..<max(classes, 1) where votes[c] > votes[best] { best = c }
                        pp[first + r] = best
                    }
                }
                start += rows
                progress?(start)
            }
        } } } } }
        return predictions
    }

    /// The k largest of x[0..<n], most similar first; equal values keep increasing index order.
    /// Most elements are rejected a block of 64 at a time: only a block whose maximum beats the
    /// current k-th largest is looked at element by element.
    static func topK(_ x: UnsafePointer<Float>, _ n: Int, k: Int, sims: inout [Float], indices: inout [Int]) {
        precondition(k >= 1 && k <= n && sims.count >= k && indices.count >= k, "topK: k \(k) for \(n) values")
        sims.withUnsafeMutableBufferPointer { sb in indices.withUnsafeMutableBufferPointer { ib in
            let (top, index) = (sb.baseAddress!, ib.baseAddress!)
            // The first k, sorted by insertion.
            for j in 0..<k {
                let s = x[j]
                var pos = j
                while pos > 0 && top[pos - 1] < s { top[pos] = top[pos - 1]; index[pos] = index[pos - 1]; pos -= 1 }
                top[pos] = s; index[pos] = j
            }
            var threshold = top[k - 1]
            func scan(_ range: Range<Int>) {
                for j in range where x[j] > threshold {
                    let s = x[j]
                    var pos = k - 1
                    while pos > 0 && top[pos - 1] < s { top[pos] = top[pos - 1]; index[pos] = index[pos - 1]; pos -= 1 }
                    top[pos] = s; index[pos] = j
                    threshold = top[k - 1]
                }
            }
            let block = 64
            var j = k
            while j + block <= n {
                if Vector.max(x + j, block) > threshold { scan(j..<(j + block)) }
                j += block
            }
            scan(j..<n)
        } }
    }

    /// Top-1 of the test features against the train features.
    public func evaluate(train: FeatureSet, test: FeatureSet, progress: ProgressReporter? = nil) throws -> KNNResult {
        try train.requireLabels("train")
        try test.requireLabels("test")
        guard train.dim == test.dim else { throw EvalError("train features have width \(train.dim), test features \(test.dim)") }
        let started = ContinuousClock.now
        let classes = max(train.classCount, test.classCount)
        let predictions = predict(test: test.features, train: train.features, trainLabels: train.labels, dim: train.dim,
                                  classes: classes) { done in
            progress?.update(label: "k-NN", done: done, total: test.count, text: "", eta: nil)
        }
        let scores = ClassScores(predictions: predictions, labels: test.labels, classes: classes, names: test.classes.isEmpty ? train.classes : test.classes)
        return KNNResult(top1: scores.top1, correct: scores.correct, testCount: test.count, trainCount: train.count, k: min(k, train.count),
                         temperature: Double(temperature), featureSource: (test.source ?? train.source)?.description,
                         layer: test.layer ?? train.layer, dim: train.dim, classes: classes, perClass: scores.perClass,
                         seconds: (ContinuousClock.now - started).seconds, featureSeconds: train.seconds + test.seconds)
    }
}

/// Top-1 overall and per class.
struct ClassScores {
    var correct = 0
    var top1: Double
    var perClass: [String: Double] = [:]

    init(predictions: [Int], labels: [Int], classes: Int, names: [String]) {
        var hits = [Int](repeating: 0, count: classes), seen = [Int](repeating: 0, count: classes)
        for (p, label) in zip(predictions, labels) where label >= 0 {
            seen[label] += 1
            if p == label { hits[label] += 1 }
        }
        correct = hits.reduce(0, +)
        top1 = Double(correct) / Double(max(seen.reduce(0, +), 1))
        for c in 0..<classes where seen[c] > 0 {
            perClass[c < names.count ? names[c] : String(c)] = Double(hits[c]) / Double(seen[c])
        }
    }
}
