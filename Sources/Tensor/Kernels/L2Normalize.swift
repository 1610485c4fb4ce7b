/// y = x / max(‖x‖₂, eps) over the last axis: `torch.nn.functional.normalize(x, dim=-1)`, which
/// iBOT's projection head applies before its weight-normalized last layer (bytedance/ibot
/// models/head.py).
public enum L2NormalizeOp {
    /// PyTorch's default clamp on the norm.
    public static let defaultEps: Float = 1e-12

    /// Each row's norm before the clamp (what backward needs besides the output).
    public struct Saved: Sendable {
        public let norms: [Float]
    }

    public static func forward(_ x: Tensor, eps: Float = defaultEps) -> (y: Tensor, saved: Saved) {
        let (rows, n) = (x.rows, x.lastDim)
        var norms = [Float](repeating: 0, count: rows)
        let y = Tensor(shape: x.shape) { y in
            x.withPointer { xp in
                for r in 0..<rows {
                    let (xr, yr) = (xp + r * n, y + r * n)
                    let norm = Vector.dot(xr, xr, n).squareRoot()
                    norms[r] = norm
                    let denominator = Swift.max(norm, eps)
                    for i in 0..<n { yr[i] = xr[i] / denominator }
                }
            }
        }
        return (y, Saved(norms: norms))
    }

    /// dx = (dy − y·(y·dy)) / ‖x‖ per row; where the clamp was active (‖x‖ < eps) the denominator
    /// is a constant and dx = dy / eps (`clamp_min` passes no gradient below its bound).
    public static func backward(_ dy: Tensor, output y: Tensor, saved: Saved, eps: Float = defaultEps) -> Tensor {
        precondition(dy.shape == y.shape, "l2-normalize backward: dy \(dy.shape) vs y \(y.shape)")
        let (rows, n) = (y.rows, y.lastDim)
        precondition(saved.norms.count == rows, "l2-normalize backward: \(saved.norms.count) norms for \(rows) rows")
        return Tensor(shape: y.shape) { dx in
            y.withPointer { yp in dy.withPointer { dyp in
                for r in 0..<rows {
                    let (yr, gr, out) = (yp + r * n, dyp + r * n, dx + r * n)
                    let norm = saved.norms[r]
                    if norm < eps {
                        for i in 0..<n { out[i] = gr[i] / eps }
                        continue
                    }
                    let projection = Vector.dot(yr, gr, n)
                    for i in 0..<n { out[i] = (gr[i] - yr[i] * projection) / norm }
                }
            } }
        }
    }
}
