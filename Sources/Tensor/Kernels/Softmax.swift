/// Softmax over the last axis and its backward, on raw rows (used by attention) and on tensors.
public enum SoftmaxOp {
    /// In place, each of `rows` rows of length `n`.
    @inlinable
    public static func forwardRows(_ x: UnsafeMutablePointer<Float>, rows: Int, n: Int) {
        for r in 0..<rows { forwardRow(x + r * n, n) }
    }

    /// One row in two passes: the max, then e^(x − max) written back while summing it (16 lanes
    /// at a time), then a scale by 1/sum. Attention rows are short (50–200 keys), so fewer passes
    /// and loop tails matter as much as the exponentials.
    @inlinable
    public static func forwardRow(_ row: UnsafeMutablePointer<Float>, _ n: Int) {
        let m = Vector.max(row, n)
        let mv = SIMD16<Float>(repeating: m)
        var acc = SIMD16<Float>()
        var i = 0
        while i + 16 <= n {
            let e = FastMath.exp(Vector.load16(row + i) - mv)
            Vector.store16(e, row + i)
            acc += e
            i += 16
        }
        var sum = Vector.sumOfLanes(acc)
        while i < n {
            let e = FastMath.exp(row[i] - m)
            row[i] = e
            sum += e
            i += 1
        }
        Vector.scale(row, by: 1 / sum, n)
    }

    /// In place: dy ← y ⊙ (dy − Σ dy⊙y), per row.
    @inlinable
    public static func backwardRows(_ y: UnsafePointer<Float>, _ dy: UnsafeMutablePointer<Float>, rows: Int, n: Int) {
        for r in 0..<rows {
            let yr = y + r * n, g = dy + r * n
            let s = Vector.dot(yr, g, n)
            for i in 0..<n { g[i] = yr[i] * (g[i] - s) }
        }
    }

    public static func forward(_ x: Tensor) -> Tensor {
        var y = x
        let (rows, n) = (x.rows, x.lastDim)
        y.withMutablePointer { forwardRows($0, rows: rows, n: n) }
        return y
    }

    public static func backward(_ dy: Tensor, output y: Tensor) -> Tensor {
        var dx = dy
        let (rows, n) = (y.rows, y.lastDim)
        y.withPointer { yp in dx.withMutablePointer { backwardRows(yp, $0, rows: rows, n: n) } }
        return dx
    }
}
