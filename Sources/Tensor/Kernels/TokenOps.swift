/// Operations over the token axis of (B, T, D) tensors: gather/scatter by index, mean.
public enum TokenOps {
    /// y[b, j, :] = x[b, index[b][j], :] → (B, K, D).
    public static func gather(_ x: Tensor, index: [[Int]]) -> Tensor {
        let (b, t, d) = (x.shape[0], x.shape[1], x.shape[2])
        precondition(index.count == b, "gather: \(index.count) index rows for batch \(b)")
        let k = index.first?.count ?? 0
        return Tensor(shape: [b, k, d]) { y in
            x.withPointer { xp in
                for bi in 0..<b {
                    precondition(index[bi].count == k, "gather: ragged index")
                    for (j, src) in index[bi].enumerated() {
                        precondition(src >= 0 && src < t, "gather: index \(src) outside 0..<\(t)")
                        (y + (bi * k + j) * d).update(from: xp + (bi * t + src) * d, count: d)
                    }
                }
            }
        }
    }

    /// The adjoint of `gather`: dx[b, index[b][j], :] += dy[b, j, :] into a zero (B, T, D) tensor.
    public static func scatterAdd(_ dy: Tensor, index: [[Int]], tokens t: Int) -> Tensor {
        let (b, k, d) = (dy.shape[0], dy.shape[1], dy.shape[2])
        var dx = Tensor(zeros: [b, t, d])
        dy.withPointer { gp in dx.withMutablePointer { dxp in
            for bi in 0..<b {
                for j in 0..<k { Vector.add(gp + (bi * k + j) * d, into: dxp + (bi * t + index[bi][j]) * d, d) }
            }
        } }
        return dx
    }

    /// Mean over tokens [from, T): (B, T, D) → (B, D).
    public static func mean(_ x: Tensor, from start: Int = 0) -> Tensor {
        let (b, t, d) = (x.shape[0], x.shape[1], x.shape[2])
        let n = t - start
        return Tensor(shape: [b, d]) { y in
            y.initialize(repeating: 0, count: b * d)
            x.withPointer { xp in
                for bi in 0..<b {
                    for j in start..<t { Vector.add(xp + (bi * t + j) * d, into: y + bi * d, d) }
                    Vector.scale(y + bi * d, by: 1 / Float(n), d)
                }
            }
        }
    }

    /// Backward of `mean`: every token in [from, T) receives dy / n; earlier tokens get zero.
    public static func meanBackward(_ dy: Tensor, tokens t: Int, from start: Int = 0) -> Tensor {
        let (b, d) = (dy.shape[0], dy.shape[1])
        let inv = 1 / Float(t - start)
        var dx = Tensor(zeros: [b, t, d])
        dy.withPointer { gp in dx.withMutablePointer { dxp in
            for bi in 0..<b { for j in start..<t { Vector.axpy(inv, gp + bi * d, into: dxp + (bi * t + j) * d, d) } }
        } }
        return dx
    }

    /// Token j of every batch item: (B, T, D) → (B, D).
    public static func select(_ x: Tensor, token j: Int) -> Tensor {
        gather(x, index: Array(repeating: [j], count: x.shape[0])).reshaped([x.shape[0], x.shape[2]])
    }
}
