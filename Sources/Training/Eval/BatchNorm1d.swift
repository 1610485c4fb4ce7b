import Foundation
import Tensor

/// `torch.nn.BatchNorm1d(features, affine=False, eps, momentum)` on (B, D) inputs.
///
/// Training: y = (x − μ_B) / √(σ²_B + eps) with the batch mean and biased batch variance per
/// feature, and the running statistics move towards the batch's:
///   running_mean ← (1 − m)·running_mean + m·μ_B
///   running_var  ← (1 − m)·running_var  + m·σ²_B·B/(B − 1)   (the unbiased variance, as PyTorch)
/// Evaluation: y = (x − running_mean) / √(running_var + eps). Running stats start at 0 and 1.
public struct BatchNorm1d: Sendable, Codable, Equatable {
    public let features: Int
    public var eps: Float
    public var momentum: Float
    public var runningMean: [Float]
    public var runningVar: [Float]
    public var batchesTracked: Int

    /// What backward needs: the normalized input and 1/σ per feature.
    public struct Cache: Sendable {
        public let normalized: Tensor
        public let rstd: [Float]
    }

    public init(features: Int, eps: Float = 1e-6, momentum: Float = 0.1) {
        precondition(features > 0, "BatchNorm1d: features must be positive")
        self.features = features; self.eps = eps; self.momentum = momentum
        runningMean = [Float](repeating: 0, count: features)
        runningVar = [Float](repeating: 1, count: features)
        batchesTracked = 0
    }

    /// Training mode: normalizes with the batch statistics and updates the running ones.
    public mutating func forwardTraining(_ x: Tensor) -> (Tensor, Cache) {
        let (b, d) = (x.rows, x.lastDim)
        precondition(d == features, "BatchNorm1d: input width \(d), expected \(features)")
        precondition(b > 1, "BatchNorm1d: training needs more than one value per feature (batch \(b))")
        var mean = [Float](repeating: 0, count: d), variance = [Float](repeating: 0, count: d)
        var rstd = [Float](repeating: 0, count: d)
        let y = Tensor(shape: x.shape) { yp in
            x.withPointer { xp in mean.withUnsafeMutableBufferPointer { mb in variance.withUnsafeMutableBufferPointer { vb in
            rstd.withUnsafeMutableBufferPointer { rb in
                let (mp, vp, rp) = (mb.baseAddress!, vb.baseAddress!, rb.baseAddress!)
                // Two passes over the batch (mean, then squared deviations), row by row so they vectorize.
                for r in 0..<b { Vector.add(xp + r * d, into: mp, d) }
                Vector.scale(mp, by: 1 / Float(b), d)
                for r in 0..<b {
                    let row = xp + r * d
                    for i in 0..<d { let t = row[i] - mp[i]; vp[i] += t * t }
                }
                Vector.scale(vp, by: 1 / Float(b), d)
                for i in 0..<d { rp[i] = 1 / (vp[i] + eps).squareRoot() }
                for r in 0..<b {
                    let row = xp + r * d, out = yp + r * d
                    for i in 0..<d { out[i] = (row[i] - mp[i]) * rp[i] }
                }
            } } } }
        }
        let m = momentum, unbiased = Float(b) / Float(b - 1)
        for i in 0..<d {
            runningMean[i] = (1 - m) * runningMean[i] + m * mean[i]
            runningVar[i] = (1 - m) * runningVar[i] + m * variance[i] * unbiased
        }
        batchesTracked += 1
        return (y, Cache(normalized: y, rstd: rstd))
    }

    /// Evaluation mode: normalizes with the running statistics.
    public func forwardEval(_ x: Tensor) -> Tensor {
        let (b, d) = (x.rows, x.lastDim)
        precondition(d == features, "BatchNorm1d: input width \(d), expected \(features)")
        let scale = runningVar.map { 1 / ($0 + eps).squareRoot() }
        return Tensor(shape: x.shape) { yp in
            x.withPointer { xp in runningMean.withUnsafeBufferPointer { mb in scale.withUnsafeBufferPointer { sb in
                let (mp, sp) = (mb.baseAddress!, sb.baseAddress!)
                Parallel.forEachChunk(b, grain: 1024) { rows in
                    for r in rows {
                        let row = xp + r * d, out = yp + r * d
                        for i in 0..<d { out[i] = (row[i] - mp[i]) * sp[i] }
                    }
                }
            } } }
        }
    }

    /// Backward of `forwardTraining` (the batch statistics depend on x):
    ///   dx = (dy − mean_B(dy) − x̂·mean_B(dy·x̂)) / σ, per feature.
    /// Not needed to train a probe on frozen features (no gradient flows below the head), but it
    /// makes this a complete layer.
    public func backward(_ dy: Tensor, cache: Cache) -> Tensor {
        let (b, d) = (dy.rows, dy.lastDim)
        precondition(cache.normalized.shape == dy.shape, "BatchNorm1d backward: dy \(dy.shape) vs \(cache.normalized.shape)")
        var meanG = [Float](repeating: 0, count: d), meanGX = [Float](repeating: 0, count: d)
        return Tensor(shape: dy.shape) { dx in
            dy.withPointer { gp in cache.normalized.withPointer { xh in cache.rstd.withUnsafeBufferPointer { rb in
            meanG.withUnsafeMutableBufferPointer { mgb in meanGX.withUnsafeMutableBufferPointer { mgxb in
                let (rp, mg, mgx) = (rb.baseAddress!, mgb.baseAddress!, mgxb.baseAddress!)
                for r in 0..<b {
                    let g = gp + r * d, h = xh + r * d
                    for i in 0..<d { mg[i] += g[i]; mgx[i] += g[i] * h[i] }
                }
                Vector.scale(mg, by: 1 / Float(b), d)
                Vector.scale(mgx, by: 1 / Float(b), d)
                for r in 0..<b {
                    let g = gp + r * d, h = xh + r * d, out = dx + r * d
                    for i in 0..<d { out[i] = (g[i] - mg[i] - h[i] * mgx[i]) * rp[i] }
                }
            } } } } }
        }
    }
}
