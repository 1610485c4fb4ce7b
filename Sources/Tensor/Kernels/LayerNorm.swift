import Foundation

/// LayerNorm over the last axis: y = (x − μ)/σ · γ + β, σ = √(var + eps) with the biased
/// variance, as `torch.nn.LayerNorm`. γ and β are optional (the parameter-free variant).
public enum LayerNormOp {
    /// What backward needs: per row, the mean and 1/σ.
    public struct Saved: Sendable {
        public var mean: [Float]
        public var rstd: [Float]
    }

    public static func forward(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) -> (Tensor, Saved) {
        let (rows, d) = (x.rows, x.lastDim)
        var mean = [Float](repeating: 0, count: rows)
        var rstd = [Float](repeating: 0, count: rows)
        let y = Tensor(shape: x.shape) { yp in
            x.withPointer { xp in
                let w = weight?.data, b = bias?.data
                for r in 0..<rows {
                    let row = xp + r * d, out = yp + r * d
                    // Two passes (mean, then squared deviations) keep the variance accurate.
                    let mu = Vector.sum(row, d) / Float(d)
                    let variance = Vector.sumSquaredDeviation(row, d, from: mu) / Float(d)
                    let rs = 1 / (variance + eps).squareRoot()
                    mean[r] = mu
                    rstd[r] = rs
                    for i in 0..<d { out[i] = (row[i] - mu) * rs }
                    if let w { w.withUnsafeBufferPointer { wp in for i in 0..<d { out[i] *= wp[i] } } }
                    if let b { b.withUnsafeBufferPointer { bp in for i in 0..<d { out[i] += bp[i] } } }
                }
            }
        }
        return (y, Saved(mean: mean, rstd: rstd))
    }

    /// Returns dx; accumulates dγ and dβ when given.
    /// With x̂ = (x − μ)/σ and g = dy·γ: dx = (g − mean(g) − x̂·mean(g·x̂)) / σ.
    public static func backward(_ dy: Tensor, input x: Tensor, saved: Saved, weight: Tensor?,
                                weightGrad: UnsafeMutablePointer<Float>?,
                                biasGrad: UnsafeMutablePointer<Float>?) -> Tensor {
        let (rows, d) = (x.rows, x.lastDim)
        var xhat = [Float](repeating: 0, count: d)
        var g = [Float](repeating: 0, count: d)
        return Tensor(shape: x.shape) { dxp in
            x.withPointer { xp in dy.withPointer { dyp in
                xhat.withUnsafeMutableBufferPointer { xh in g.withUnsafeMutableBufferPointer { gb in
                    let xh = xh.baseAddress!, gp = gb.baseAddress!
                    for r in 0..<rows {
                        let row = xp + r * d, dyr = dyp + r * d, dxr = dxp + r * d
                        let mu = saved.mean[r], rs = saved.rstd[r]
                        for i in 0..<d { xh[i] = (row[i] - mu) * rs }
                        if let weight {
                            weight.withPointer { wp in for i in 0..<d { gp[i] = dyr[i] * wp[i] } }
                        } else {
                            gp.update(from: dyr, count: d)
                        }
                        if let weightGrad { for i in 0..<d { weightGrad[i] += dyr[i] * xh[i] } }
                        if let biasGrad { Vector.add(dyr, into: biasGrad, d) }
                        let meanG = Vector.sum(gp, d) / Float(d)
                        let meanGX = Vector.dot(gp, xh, d) / Float(d)
                        for i in 0..<d { dxr[i] = (gp[i] - meanG - xh[i] * meanGX) * rs }
                    }
                } }
            } }
        }
    }
}
