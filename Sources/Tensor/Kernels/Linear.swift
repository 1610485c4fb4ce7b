/// y = x·Wᵀ + b over the last axis: x (…, in), W (out, in), b (out) → y (…, out).
/// PyTorch's `nn.Linear` layout, so checkpoint weights are used as stored.
public enum LinearOp {
    /// Whether the bias is added in the GEMM kernel's store (`BLAS.gemm`'s `bias`), or written into y
    /// by a pass of its own before a beta-1 GEMM accumulates (the earlier path: the same bits, one
    /// more write and read of y). Benchmarks switch it between steps
    /// (`bootmae-bench train-step --compare-linear-bias store,pass`), never during one.
    nonisolated(unsafe) public static var biasInGEMMStore = true

    /// y = x·Wᵀ + b, plus `residual` when the layer feeds a skip connection (y = residual + x·Wᵀ + b).
    /// y starts as the residual (or nothing) and the GEMM adds the bias in its store and accumulates
    /// the product, so neither costs a pass of its own: the residual add disappears from the block.
    public static func forward(_ x: Tensor, weight: Tensor, bias: Tensor?, adding residual: Tensor? = nil) -> Tensor {
        let (rows, inDim, outDim) = (x.rows, x.lastDim, weight.shape[0])
        precondition(weight.shape == [outDim, inDim], "linear: input width \(inDim) vs weight \(weight.shape)")
        precondition(bias.map { $0.count == outDim } ?? true, "linear: bias \(bias!.shape) vs out \(outDim)")
        var outShape = x.shape
        outShape[outShape.count - 1] = outDim
        if let residual { precondition(residual.shape == outShape, "linear: residual \(residual.shape) vs output \(outShape)") }
        let storedBias = biasInGEMMStore ? bias : nil
        return Tensor(shape: outShape) { y in
            let startsAtZero = initialize(y, rows: rows, cols: outDim, bias: storedBias == nil ? bias : nil, residual: residual)
            x.withPointer { xp in weight.withPointer { wp in withBiasPointer(storedBias) { bp in
                BLAS.gemm(transB: true, m: rows, n: outDim, k: inDim,
                          a: xp, lda: inDim, b: wp, ldb: inDim,
                          beta: startsAtZero ? 0 : 1, c: y, ldc: outDim, bias: bp)
            } } }
        }
    }

    /// Inference into a caller's buffer: y = x·Wᵀ + b for `rows` rows, or with `accumulate`,
    /// y += x·Wᵀ + b (y holds a skip connection that is updated in place). Same arithmetic as
    /// `forward`: y (+ b) rounded first, then the product added.
    public static func infer(_ x: UnsafePointer<Float>, rows: Int, weight: Tensor, bias: Tensor?,
                             into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let (outDim, inDim) = (weight.shape[0], weight.shape[1])
        precondition(bias.map { $0.count == outDim } ?? true, "linear: bias \(bias!.shape) vs out \(outDim)")
        let storedBias = biasInGEMMStore ? bias : nil
        if let bias, storedBias == nil {
            bias.withPointer { bp in
                Parallel.forEachChunk(rows, grain: 256) { chunk in for r in chunk {
                    let out = y + r * outDim
                    if accumulate { for i in 0..<outDim { out[i] = out[i] + bp[i] } } else { out.update(from: bp, count: outDim) }
                } }
            }
        }
        let addsToY = accumulate || (bias != nil && storedBias == nil)
        weight.withPointer { wp in withBiasPointer(storedBias) { bp in
            BLAS.gemm(transB: true, m: rows, n: outDim, k: inDim, a: x, lda: inDim, b: wp, ldb: inDim,
                      beta: addsToY ? 1 : 0, c: y, ldc: outDim, bias: bp)
        } }
    }

    /// `forward` with a weight that may be packed for inference (`Parameter.packForInference`):
    /// the packed GEMM writes y = x·Wᵀ + b directly, or adds to a copy of the residual.
    public static func forward(_ x: Tensor, weight: Parameter, bias: Tensor?, adding residual: Tensor? = nil) -> Tensor {
        guard let packed = weight.packed else { return forward(x, weight: weight.value, bias: bias, adding: residual) }
        let (rows, outDim) = (x.rows, packed.outFeatures)
        precondition(x.lastDim == packed.inFeatures, "linear: input width \(x.lastDim) vs weight \(packed.shape)")
        precondition(bias.map { $0.count == outDim } ?? true, "linear: bias \(bias!.shape) vs out \(outDim)")
        var outShape = x.shape
        outShape[outShape.count - 1] = outDim
        if let residual { precondition(residual.shape == outShape, "linear: residual \(residual.shape) vs output \(outShape)") }
        return Tensor(shape: outShape) { y in
            residual?.withPointer { y.update(from: $0, count: rows * outDim) }
            x.withPointer { xp in
                withBiasPointer(bias) { packed.multiply(xp, rows: rows, bias: $0, into: y, accumulate: residual != nil) }
            }
        }
    }

    /// `infer` with a weight that may be packed for inference.
    public static func infer(_ x: UnsafePointer<Float>, rows: Int, weight: Parameter, bias: Tensor?,
                             into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        guard let packed = weight.packed else {
            return infer(x, rows: rows, weight: weight.value, bias: bias, into: y, accumulate: accumulate)
        }
        precondition(bias.map { $0.count == packed.outFeatures } ?? true, "linear: bias \(bias!.shape) vs out \(packed.outFeatures)")
        withBiasPointer(bias) { packed.multiply(x, rows: rows, bias: $0, into: y, accumulate: accumulate) }
    }

    private static func withBiasPointer<R>(_ bias: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let bias else { return body(nil) }
        return bias.withPointer { body($0) }
    }

    /// Writes residual + bias (either may be absent) into y; returns true when there is neither,
    /// leaving y for a beta-0 GEMM to overwrite.
    static func initialize(_ y: UnsafeMutablePointer<Float>, rows: Int, cols: Int, bias: Tensor?, residual: Tensor?) -> Bool {
        switch (bias, residual) {
        case (nil, nil):
            return true
        case (let bias?, nil):
            bias.withPointer { bp in for r in 0..<rows { (y + r * cols).update(from: bp, count: cols) } }
        case (nil, let residual?):
            residual.withPointer { y.update(from: $0, count: rows * cols) }
        case (let bias?, let residual?):
            bias.withPointer { bp in residual.withPointer { rp in
                Parallel.forEachChunk(rows, grain: 256) { chunk in for r in chunk {
                    let (out, skip) = (y + r * cols, rp + r * cols)
                    for i in 0..<cols { out[i] = skip[i] + bp[i] }
                } }
            } }
        }
        return false
    }

    /// Returns dx; accumulates dW += dyᵀ·x and db += Σ_rows dy.
    public static func backward(_ dy: Tensor, input x: Tensor, weight: Tensor,
                                weightGrad: inout Tensor, biasGrad: UnsafeMutablePointer<Float>?) -> Tensor {
        let (rows, inDim, outDim) = (x.rows, x.lastDim, weight.shape[0])
        precondition(dy.rows == rows && dy.lastDim == outDim, "linear backward: dy \(dy.shape) vs x \(x.shape)")
        dy.withPointer { dyp in
            x.withPointer { xp in
                weightGrad.withMutablePointer { gw in
                    BLAS.gemm(transA: true, m: outDim, n: inDim, k: rows,
                              a: dyp, lda: outDim, b: xp, ldb: inDim, beta: 1, c: gw, ldc: inDim)
                }
            }
            if let biasGrad { sumRows(dyp, rows: rows, cols: outDim, into: biasGrad) }
        }
        return inputGradient(dy, weight: weight, inputShape: x.shape)
    }

    /// dx = dy·W alone (for layers whose weights are frozen).
    public static func inputGradient(_ dy: Tensor, weight: Tensor, inputShape: [Int]) -> Tensor {
        let (outDim, inDim) = (weight.shape[0], weight.shape[1])
        let rows = dy.rows
        return Tensor(shape: inputShape) { dx in
            dy.withPointer { dyp in weight.withPointer { wp in
                BLAS.gemm(m: rows, n: inDim, k: outDim, a: dyp, lda: outDim, b: wp, ldb: inDim, c: dx, ldc: inDim)
            } }
        }
    }

    /// out[c] += Σ_r m[r, c]
    public static func sumRows(_ m: UnsafePointer<Float>, rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>) {
        for r in 0..<rows { Vector.add(m + r * cols, into: out, cols) }
    }
}
