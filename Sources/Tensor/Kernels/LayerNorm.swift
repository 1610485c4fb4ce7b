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
            x.withPointer { xp in mean.withUnsafeMutableBufferPointer { meanb in rstd.withUnsafeMutableBufferPointer { rstdb in
                Parallel.forEachChunk(rows, grain: 64) { chunk in for r in chunk {
                    (meanb[r], rstdb[r]) = normalizeRow(xp + r * d, into: yp + r * d, d, weight: weight, bias: bias, eps: eps)
                } }
            } } }
        }
        return (y, Saved(mean: mean, rstd: rstd))
    }

    /// Inference: `rows` rows of width `d` from `x` normalized into `y`, nothing saved.
    public static func infer(_ x: UnsafePointer<Float>, rows: Int, _ d: Int, weight: Tensor?, bias: Tensor?, eps: Float,
                             into y: UnsafeMutablePointer<Float>) {
        Parallel.forEachChunk(rows, grain: 64) { chunk in for r in chunk {
            _ = normalizeRow(x + r * d, into: y + r * d, d, weight: weight, bias: bias, eps: eps)
        } }
    }

    /// One row: out = (row − μ)·(1/σ)·γ + β; returns (μ, 1/σ).
    @inline(__always)
    static func normalizeRow(_ row: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, _ d: Int,
                             weight: Tensor?, bias: Tensor?, eps: Float) -> (mean: Float, rstd: Float) {
        // Two passes (mean, then squared deviations) keep the variance accurate.
        let mu = Vector.sum(row, d) / Float(d)
        let variance = Vector.sumSquaredDeviation(row, d, from: mu) / Float(d)
        let rs = 1 / (variance + eps).squareRoot()
        for i in 0..<d { out[i] = (row[i] - mu) * rs }
        if let w = weight?.data { w.withUnsafeBufferPointer { wp in for i in 0..<d { out[i] *= wp[i] } } }
        if let b = bias?.data { b.withUnsafeBufferPointer { bp in for i in 0..<d { out[i] += bp[i] } } }
        return (mu, rs)
    }

    /// Returns dx, plus `residual` when given (the gradient arriving through a skip connection
    /// around the norm, added in the same pass); accumulates dγ and dβ when given.
    /// With x̂ = (x − μ)/σ and g = dy·γ: dx = (g − mean(g) − x̂·mean(g·x̂)) / σ.
    public static func backward(_ dy: Tensor, input x: Tensor, saved: Saved, weight: Tensor?,
                                weightGrad: UnsafeMutablePointer<Float>?,
                                biasGrad: UnsafeMutablePointer<Float>?, adding residual: Tensor? = nil) -> Tensor {
        let (rows, d) = (x.rows, x.lastDim)
        if let residual { precondition(residual.shape == x.shape, "layernorm backward: residual \(residual.shape) vs \(x.shape)") }
        let chunks = min(Parallel.workers, max(1, rows / 64))
        // Each chunk sums its own γ/β gradients; the partial sums are added in chunk order so the
        // result does not depend on thread timing.
        var partialW = [Float](repeating: 0, count: weightGrad == nil ? 0 : chunks * d)
        var partialB = [Float](repeating: 0, count: biasGrad == nil ? 0 : chunks * d)
        let dx = Tensor(shape: x.shape) { dxp in
            x.withPointer { xp in dy.withPointer { dyp in withOptionalPointer(residual) { rp in
                partialW.withUnsafeMutableBufferPointer { pw in partialB.withUnsafeMutableBufferPointer { pb in
                    // (An empty array's buffer may still have a base address: test the request instead.)
                    let pw = weightGrad == nil ? nil : pw.baseAddress, pb = biasGrad == nil ? nil : pb.baseAddress
                    Parallel.forEachChunk(chunks) { chunkIndices in for chunk in chunkIndices {
                        let xh = UnsafeMutablePointer<Float>.allocate(capacity: d)
                        let gp = UnsafeMutablePointer<Float>.allocate(capacity: d)
                        defer { xh.deallocate(); gp.deallocate() }
                        let gw = pw.map { $0 + chunk * d }, gb = pb.map { $0 + chunk * d }
                        for r in (chunk * rows / chunks)..<((chunk + 1) * rows / chunks) {
                            let row = xp + r * d, dyr = dyp + r * d, dxr = dxp + r * d
                            let mu = saved.mean[r], rs = saved.rstd[r]
                            for i in 0..<d { xh[i] = (row[i] - mu) * rs }
                            if let weight {
                                weight.withPointer { wp in for i in 0..<d { gp[i] = dyr[i] * wp[i] } }
                            } else {
                                gp.update(from: dyr, count: d)
                            }
                            if let gw { for i in 0..<d { gw[i] += dyr[i] * xh[i] } }
                            if let gb { Vector.add(dyr, into: gb, d) }
                            let meanG = Vector.sum(gp, d) / Float(d)
                            let meanGX = Vector.dot(gp, xh, d) / Float(d)
                            for i in 0..<d { dxr[i] = (gp[i] - meanG - xh[i] * meanGX) * rs }
                            if let rp { Vector.add(rp + r * d, into: dxr, d) }
                        }
                    } }
                } }
            } } }
        }
        for chunk in 0..<chunks {
            if let weightGrad { partialW.withUnsafeBufferPointer { Vector.add($0.baseAddress! + chunk * d, into: weightGrad, d) } }
            if let biasGrad { partialB.withUnsafeBufferPointer { Vector.add($0.baseAddress! + chunk * d, into: biasGrad, d) } }
        }
        return dx
    }

    /// `body` with the tensor's element pointer, or nil for no tensor.
    static func withOptionalPointer<R>(_ t: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let t else { return body(nil) }
        return t.withPointer { body($0) }
    }
}
