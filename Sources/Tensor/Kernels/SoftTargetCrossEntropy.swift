import Foundation

/// Cross-entropy of the student's tempered softmax against a soft target distribution, the
/// self-distillation loss of DINO and iBOT (bytedance/ibot main_ibot.py `iBOTLoss`):
/// ℓ_r = Σ_k −t_rk · log_softmax(s_r / τ)_k per row r, and loss = Σ_r w_r · ℓ_r / normalizer.
/// With no weights and no normalizer it is the mean over rows (iBOT's [CLS] loss); iBOT's patch
/// loss averages the masked positions of each image: w = mask / max(masked count of the image, 1)
/// and normalizer = images.
public enum SoftTargetCrossEntropy {
    /// student logits (…, K), target (…, K) (rows are distributions, e.g. the teacher's centred and
    /// sharpened softmax; it gets no gradient) → (loss, dL/dstudent). `weights`: one per row
    /// (default 1); rows of weight 0 are skipped and get a zero gradient. `normalizer`: what the
    /// weighted sum is divided by (default: the number of rows); the batch the loss averages over
    /// when these rows are one shard of it.
    public static func forwardBackward(student: Tensor, target: Tensor, temperature: Float,
                                       weights: [Float]? = nil, normalizer: Float? = nil) -> (loss: Float, grad: Tensor) {
        precondition(student.shape == target.shape, "soft-target cross-entropy: student \(student.shape) vs target \(target.shape)")
        precondition(temperature > 0, "soft-target cross-entropy: temperature must be positive")
        let (rows, k) = (student.rows, student.lastDim)
        if let weights { precondition(weights.count == rows, "soft-target cross-entropy: \(weights.count) weights for \(rows) rows") }
        let norm = normalizer ?? Float(rows)
        var total: Double = 0
        let grad = Tensor(shape: student.shape) { g in
            student.withPointer { sp in target.withPointer { tp in
                for r in 0..<rows {
                    let w = weights?[r] ?? 1
                    let (s, t, gr) = (sp + r * k, tp + r * k, g + r * k)
                    if w == 0 { gr.initialize(repeating: 0, count: k); continue }
                    let loss = row(s, t, k, temperature: temperature, gradScale: w / norm, grad: gr)
                    total += Double(w) * loss
                }
            } }
        }
        return (Float(total / Double(norm)), grad)
    }

    /// One row: returns ℓ and writes gradScale · dℓ/ds = gradScale · (softmax(s/τ)·Σt − t) / τ.
    /// ℓ is accumulated as Σ t_k·(max − z_k) + log Σ e^(z_k − max) · Σt: every term of the first
    /// sum is non-negative, so nothing cancels when the logits are large (small temperatures).
    static func row(_ s: UnsafePointer<Float>, _ t: UnsafePointer<Float>, _ k: Int, temperature tau: Float,
                    gradScale: Float, grad z: UnsafeMutablePointer<Float>) -> Double {
        // z = s / τ as PyTorch divides (not a multiply by 1/τ), kept in the gradient row.
        for i in 0..<k { z[i] = s[i] / tau }
        let m = Vector.max(z, k)
        let mv = SIMD16<Float>(repeating: m)
        var expSum = SIMD16<Float>(), gap = SIMD16<Float>()
        var i = 0
        while i + 16 <= k {
            let d = mv - Vector.load16(z + i)
            gap.addProduct(Vector.load16(t + i), d)
            let e = FastMath.exp(-d)
            Vector.store16(e, z + i)
            expSum += e
            i += 16
        }
        var (sum, weightedGap) = (Double(expSum.sum()), Double(gap.sum()))
        while i < k {
            let d = m - z[i]
            weightedGap += Double(t[i] * d)
            let e = FastMath.exp(-d)
            z[i] = e
            sum += Double(e)
            i += 1
        }
        let targetMass = Vector.sum(t, k)
        // z now holds e^(z − max): p = e / Σe, gradient (p·Σt − t)·gradScale/τ.
        let (pScale, c) = (Float(1 / sum) * targetMass, gradScale / tau)
        for j in 0..<k { z[j] = (z[j] * pScale - t[j]) * c }
        return weightedGap + Foundation.log(sum) * Double(targetMass)
    }
}
