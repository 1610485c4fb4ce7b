/// Weighted squared error over per-token vectors: L = Σ_{b,n} w[b,n] · Σ_k (p − t)² / normalizer.
/// MAE (w = mask, normalizer = masked count · dim) and BootMAE (w = neighbourhood weights,
/// normalizer = B · masked · dim) are both this loss with different w and normalizer.
public enum WeightedMSE {
    /// Returns (loss, dL/dpred).
    public static func forwardBackward(prediction: Tensor, target: Tensor, weight: [Float],
                                       normalizer: Float) -> (loss: Float, grad: Tensor) {
        precondition(prediction.shape == target.shape, "mse: \(prediction.shape) vs \(target.shape)")
        let d = prediction.lastDim, rows = prediction.rows
        precondition(weight.count == rows, "mse: \(weight.count) weights for \(rows) tokens")
        var loss: Double = 0
        let grad = Tensor(shape: prediction.shape) { g in
            prediction.withPointer { pp in target.withPointer { tp in
                for r in 0..<rows {
                    let w = weight[r]
                    let pr = pp + r * d, tr = tp + r * d, gr = g + r * d
                    if w == 0 { gr.initialize(repeating: 0, count: d); continue }
                    for k in 0..<d { gr[k] = pr[k] - tr[k] }
                    loss += Double(w * Vector.dot(gr, gr, d))
                    Vector.scale(gr, by: 2 * w / normalizer, d)
                }
            } }
        }
        return (Float(loss / Double(normalizer)), grad)
    }
}
