import Foundation

/// Softmax cross-entropy with label smoothing, averaged over the batch (`F.cross_entropy(...,
/// label_smoothing=ε)`): the target puts 1 − ε on the label and ε/K on every class.
public enum CrossEntropy {
    /// logits (B, K), labels in 0..<K → (mean loss, dL/dlogits). `lossBatch`: the batch the loss
    /// averages over when these rows are one shard of it (data parallelism; default B), so that
    /// the shards' losses and gradients add up to the whole batch's.
    public static func forwardBackward(logits: Tensor, labels: [Int], smoothing: Float = 0,
                                       lossBatch: Int? = nil) -> (loss: Float, grad: Tensor) {
        let (b, k) = (logits.rows, logits.lastDim)
        precondition(labels.count == b, "cross-entropy: \(labels.count) labels for \(b) rows")
        let mean = Double(lossBatch ?? b)
        var total: Double = 0
        let grad = Tensor(shape: logits.shape) { g in
            logits.withPointer { lp in
                for r in 0..<b {
                    let row = lp + r * k, gr = g + r * k
                    let label = labels[r]
                    precondition(label >= 0 && label < k, "cross-entropy: label \(label) outside 0..<\(k)")
                    let m = Vector.max(row, k)
                    var sum: Double = 0
                    for j in 0..<k { sum += Foundation.exp(Double(row[j] - m)) }
                    let logSum = Double(m) + Foundation.log(sum)
                    var loss: Double = 0
                    for j in 0..<k {
                        let target = Double(smoothing) / Double(k) + (j == label ? Double(1 - smoothing) : 0)
                        let logP = Double(row[j]) - logSum
                        loss -= target * logP
                        gr[j] = Float((Foundation.exp(logP) - target) / mean)
                    }
                    total += loss
                }
            }
        }
        return (Float(total / mean), grad)
    }

    /// Index of the largest logit per row.
    public static func argmax(_ logits: Tensor) -> [Int] {
        let k = logits.lastDim
        return (0..<logits.rows).map { r in
            var best = 0
            for j in 1..<k where logits.data[r * k + j] > logits.data[r * k + best] { best = j }
            return best
        }
    }
}
