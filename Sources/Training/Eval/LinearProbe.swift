import Foundation
import Tensor

/// The linear-probe classifier of MAE / BootMAE (the head both `main_linprobe.py` build):
/// `Sequential(BatchNorm1d(D, affine=False, eps=1e-6), Linear(D, K))` on frozen features.
public struct LinearProbeModel: Sendable, Codable, Equatable {
    public var norm: BatchNorm1d
    /// (classes, dim), `nn.Linear` layout.
    public var weight: Tensor
    /// (classes)
    public var bias: Tensor

    public var dim: Int { norm.features }
    public var classes: Int { weight.shape[0] }

    /// Head weights trunc_normal(std 0.01) truncated at ±2σ, bias 0; fresh running statistics.
    public init(dim: Int, classes: Int, rng: inout SeededRandom) {
        norm = BatchNorm1d(features: dim, eps: 1e-6, momentum: 0.1)
        weight = Tensor(shape: [classes, dim], data: (0..<(classes * dim)).map { _ in rng.truncatedNormal(std: 0.01, lo: -0.02, hi: 0.02) })
        bias = Tensor(zeros: [classes])
    }

    /// Logits of features (N, D) in evaluation mode (running statistics).
    public func logits(_ features: Tensor) -> Tensor {
        LinearOp.forward(norm.forwardEval(features), weight: weight, bias: bias)
    }

    /// Predicted class per row (evaluation mode), computed in blocks of rows.
    public func predict(_ features: [Float]) -> [Int] {
        let n = features.count / dim, block = 8192
        var out: [Int] = []
        out.reserveCapacity(n)
        for start in stride(from: 0, to: n, by: block) {
            let rows = min(block, n - start)
            let x = Tensor(shape: [rows, dim], data: Array(features[(start * dim)..<((start + rows) * dim)]))
            out += CrossEntropy.argmax(logits(x))
        }
        return out
    }

    /// The tensors under the names of MAE's probe head (`head = Sequential(BatchNorm1d, Linear)`),
    /// for saving as safetensors.
    public var namedTensors: [(String, Tensor)] {
        [("head.0.running_mean", Tensor(shape: [dim], data: norm.runningMean)),
         ("head.0.running_var", Tensor(shape: [dim], data: norm.runningVar)),
         ("head.1.weight", weight), ("head.1.bias", bias)]
    }
}

extension LinearProbeModel {
    enum CodingKeys: String, CodingKey { case norm, classes, weight, bias }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        norm = try c.decode(BatchNorm1d.self, forKey: .norm)
        let classes = try c.decode(Int.self, forKey: .classes)
        let w = try c.decode([Float].self, forKey: .weight), b = try c.decode([Float].self, forKey: .bias)
        guard w.count == classes * norm.features, b.count == classes else {
            throw DecodingError.dataCorruptedError(forKey: .weight, in: c,
                                                   debugDescription: "weight and bias do not fit \(classes) classes × \(norm.features)")
        }
        weight = Tensor(shape: [classes, norm.features], data: w)
        bias = Tensor(shape: [classes], data: b)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(norm, forKey: .norm)
        try c.encode(classes, forKey: .classes)
        try c.encode(weight.data, forKey: .weight)
        try c.encode(bias.data, forKey: .bias)
    }
}

/// Trains a `LinearProbeModel` with cross-entropy on precomputed features.
///
/// Optimizer: SGD with momentum 0.9 (PyTorch's update: buf ← μ·buf + g, w ← w − lr·buf), a
/// per-step cosine schedule with linear warmup, weight decay 0. The official recipes use LARS at
/// batch 16 384 (lr 0.1 × 16384/256); LARS' layer-wise trust ratio matters for huge batches, and at
/// batch 256 on a small dataset plain momentum SGD at lr 0.1 × batch/256 behind BatchNorm'd
/// features is the usual stand-in (MoCo / SimCLR-style probes). AdamW would also work but its
/// per-coordinate scaling partly undoes the point of normalizing the features, and it adds
/// hyper-parameters the official recipe has no values for.
///
/// Deterministic: the head init and every epoch's order come from `seed`.
public struct LinearProbe: Sendable {
    public struct Settings: Sendable, Codable, Equatable {
        public var epochs: Int
        public var batchSize: Int
        /// lr = baseLR × batchSize / 256 unless `lr` is given.
        public var baseLR: Double
        public var lr: Double?
        public var minLR: Double
        public var warmupEpochs: Double
        public var momentum: Double
        public var weightDecay: Double
        public var seed: UInt64

        public init(epochs: Int = 50, batchSize: Int = 256, baseLR: Double = 0.1, lr: Double? = nil, minLR: Double = 0,
                    warmupEpochs: Double = 5, momentum: Double = 0.9, weightDecay: Double = 0, seed: UInt64 = 0) {
            self.epochs = epochs; self.batchSize = batchSize; self.baseLR = baseLR; self.lr = lr; self.minLR = minLR
            self.warmupEpochs = warmupEpochs; self.momentum = momentum; self.weightDecay = weightDecay; self.seed = seed
        }

        /// The peak learning rate.
        public var peakLR: Double { lr ?? baseLR * Double(batchSize) / 256 }
    }

    public var settings: Settings

    public init(_ settings: Settings = Settings()) { self.settings = settings }

    /// Trains on `train`; reports the test split's top-1 after every epoch when `test` is given.
    public func fit(train: FeatureSet, test: FeatureSet?, progress: ProgressReporter? = nil) throws -> (model: LinearProbeModel, result: LinearProbeResult) {
        let s = settings
        try train.requireLabels("train")
        if let test {
            try test.requireLabels("test")
            guard test.dim == train.dim else { throw EvalError("train features have width \(train.dim), test features \(test.dim)") }
        }
        guard s.epochs >= 1 else { throw EvalError("the probe needs at least one epoch") }
        guard s.batchSize >= 2 else { throw EvalError("the probe's batch size must be at least 2 (BatchNorm needs batch statistics)") }
        guard train.count >= 2 else { throw EvalError("the probe needs at least 2 train samples, got \(train.count)") }
        let started = ContinuousClock.now
        let (n, d) = (train.count, train.dim)
        let classes = max(train.classCount, test?.classCount ?? 0)
        // Full batches only (DataLoader drop_last=True), so BatchNorm never sees a batch of one.
        let batch = min(s.batchSize, n)
        let stepsPerEpoch = n / batch
        let schedule = CosineSchedule(base: s.peakLR, final: s.minLR, totalSteps: stepsPerEpoch * s.epochs,
                                      warmupSteps: Int((s.warmupEpochs * Double(stepsPerEpoch)).rounded()))
        var rng = SeededRandom(seed: s.seed, stream: 0x9B0BE)
        var model = LinearProbeModel(dim: d, classes: classes, rng: &rng)
        var gradW = Tensor(zeros: [classes, d]), gradB = [Float](repeating: 0, count: classes)
        var bufW = [Float](repeating: 0, count: classes * d), bufB = [Float](repeating: 0, count: classes)
        let (mu, wd) = (Float(s.momentum), Float(s.weightDecay))
        var epochLosses: [Double] = [], epochTestTop1: [Double] = []
        var step = 0
        var x = Tensor(zeros: [batch, d])
        var labels = [Int](repeating: 0, count: batch)

        for epoch in 0..<s.epochs {
            var order = Array(0..<n)
            var shuffle = SeededRandom(seed: s.seed, stream: UInt64(epoch))
            for i in stride(from: n - 1, to: 0, by: -1) { order.swapAt(i, Int(shuffle.next() % UInt64(i + 1))) }
            var lossSum = 0.0
            for b in 0..<stepsPerEpoch {
                train.features.withUnsafeBufferPointer { fp in x.withMutablePointer { xp in
                    for r in 0..<batch {
                        let i = order[b * batch + r]
                        (xp + r * d).update(from: fp.baseAddress! + i * d, count: d)
                        labels[r] = train.labels[i]
                    }
                } }
                let (normed, _) = model.norm.forwardTraining(x)
                let logits = LinearOp.forward(normed, weight: model.weight, bias: model.bias)
                let (loss, dLogits) = CrossEntropy.forwardBackward(logits: logits, labels: labels)
                guard loss.isFinite else { throw EvalError("the probe's loss became \(loss) at epoch \(epoch); lower the learning rate") }
                lossSum += Double(loss)
                // Features are frozen: only the head's gradients are needed (no BatchNorm backward).
                for c in 0..<classes { gradB[c] = 0 }
                dLogits.withPointer { gp in normed.withPointer { xp in gradW.withMutablePointer { gw in
                    BLAS.gemm(transA: true, m: classes, n: d, k: batch, a: gp, lda: classes, b: xp, ldb: d, beta: 0, c: gw, ldc: d)
                    gradB.withUnsafeMutableBufferPointer { LinearOp.sumRows(gp, rows: batch, cols: classes, into: $0.baseAddress!) }
                } } }
                let lr = Float(schedule.value(at: step))
                model.weight.withMutablePointer { w in gradW.withPointer { g in bufW.withUnsafeMutableBufferPointer { m in
                    for i in 0..<(classes * d) {
                        m[i] = mu * m[i] + g[i] + wd * w[i]
                        w[i] -= lr * m[i]
                    }
                } } }
                model.bias.withMutablePointer { w in
                    for i in 0..<classes {
                        bufB[i] = mu * bufB[i] + gradB[i]
                        w[i] -= lr * bufB[i]
                    }
                }
                step += 1
            }
            epochLosses.append(lossSum / Double(stepsPerEpoch))
            var text = String(format: "epoch %d loss %.4f", epoch, epochLosses.last!)
            if let test {
                let top1 = ClassScores(predictions: model.predict(test.features), labels: test.labels, classes: classes, names: []).top1
                epochTestTop1.append(top1)
                text += String(format: " test top-1 %.4f", top1)
            }
            let elapsed = (ContinuousClock.now - started).seconds
            progress?.update(label: "linear probe", done: epoch + 1, total: s.epochs, text: text,
                             eta: elapsed / Double(epoch + 1) * Double(s.epochs - epoch - 1))
        }

        let names = test.map { $0.classes.isEmpty ? train.classes : $0.classes } ?? train.classes
        let testScores = test.map { ClassScores(predictions: model.predict($0.features), labels: $0.labels, classes: classes, names: names) }
        let trainScores = ClassScores(predictions: model.predict(train.features), labels: train.labels, classes: classes, names: names)
        let result = LinearProbeResult(
            top1: testScores?.top1, trainTop1: trainScores.top1, perClass: testScores?.perClass ?? [:],
            featureSource: (train.source ?? test?.source)?.description, layer: train.layer ?? test?.layer, dim: d, classes: classes,
            trainCount: n, testCount: test?.count ?? 0, epochs: s.epochs, batchSize: batch, lr: s.peakLR, baseLR: s.baseLR,
            minLR: s.minLR, warmupEpochs: s.warmupEpochs, momentum: s.momentum, weightDecay: s.weightDecay, seed: s.seed,
            epochLosses: epochLosses, epochTestTop1: epochTestTop1,
            seconds: (ContinuousClock.now - started).seconds, featureSeconds: train.seconds + (test?.seconds ?? 0))
        return (model, result)
    }
}
