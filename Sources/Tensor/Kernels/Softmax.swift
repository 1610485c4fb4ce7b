/// Softmax over the last axis and its backward, on raw rows (used by attention) and on tensors.
public enum SoftmaxOp {
    /// In place, each of `rows` rows of length `n`.
    @inlinable
    public static func forwardRows(_ x: UnsafeMutablePointer<Float>, rows: Int, n: Int) {
        for r in 0..<rows {
            let row = x + r * n
            let m = Vector.max(row, n)
            for i in 0..<n { row[i] = FastMath.exp(row[i] - m) }
            let inv = 1 / Vector.sum(row, n)
            for i in 0..<n { row[i] *= inv }
        }
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
