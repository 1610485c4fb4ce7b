import Tensor

/// Builds a decoder's input sequence in original patch order from the encoder's shuffled
/// (cls + visible) embedding: row 0 is cls, a visible patch takes its embedding, a masked patch
/// takes the mask token, optionally plus its row of a positional table (BootMAE adds decoder
/// positions to mask tokens only; MAE adds them to every token afterwards).
public enum DecoderInput {
    /// y (B, 1 + V, d) → (B, 1 + N, d).
    public static func assemble(_ y: Tensor, plan: MaskPlan, maskToken: Tensor, maskPositions: Tensor? = nil) -> Tensor {
        let (b, d) = (y.shape[0], y.shape[2])
        let (n, v) = (plan.numPatches, plan.visible)
        precondition(y.shape[1] == v + 1, "decoder input: \(y.shape) for \(v) visible patches")
        return Tensor(shape: [b, n + 1, d]) { out in
            y.withPointer { yp in maskToken.withPointer { mt in
                for bi in 0..<b {
                    let dst = out + bi * (n + 1) * d, src = yp + bi * (v + 1) * d
                    dst.update(from: src, count: d)
                    for (k, patch) in plan.order[bi].enumerated() {
                        let row = dst + (patch + 1) * d
                        if k < v {
                            row.update(from: src + (k + 1) * d, count: d)
                        } else {
                            row.update(from: mt, count: d)
                            if let maskPositions {
                                maskPositions.withPointer { pos in Vector.add(pos + (patch + 1) * d, into: row, d) }
                            }
                        }
                    }
                }
            } }
        }
    }

    /// Returns d y (B, 1 + V, d) and adds the mask tokens' gradient into `maskTokenGrad`.
    public static func backward(_ dSeq: Tensor, plan: MaskPlan, maskTokenGrad: UnsafeMutablePointer<Float>) -> Tensor {
        let (b, d) = (dSeq.shape[0], dSeq.shape[2])
        let (n, v) = (plan.numPatches, plan.visible)
        return Tensor(shape: [b, v + 1, d]) { dy in
            dSeq.withPointer { g in
                for bi in 0..<b {
                    let src = g + bi * (n + 1) * d, dst = dy + bi * (v + 1) * d
                    dst.update(from: src, count: d)
                    for (k, patch) in plan.order[bi].enumerated() {
                        if k < v {
                            (dst + (k + 1) * d).update(from: src + (patch + 1) * d, count: d)
                        } else {
                            Vector.add(src + (patch + 1) * d, into: maskTokenGrad, d)
                        }
                    }
                }
            }
        }
    }

    /// Tokens 1... of every item: (B, 1 + N, d) → (B, N, d) (drops cls).
    public static func dropClass(_ x: Tensor) -> Tensor {
        let (b, t, d) = (x.shape[0], x.shape[1], x.shape[2])
        return Tensor(shape: [b, t - 1, d]) { out in
            x.withPointer { xp in for bi in 0..<b { (out + bi * (t - 1) * d).update(from: xp + (bi * t + 1) * d, count: (t - 1) * d) } }
        }
    }

    /// Gradient of `dropClass`: a zero row for cls.
    public static func dropClassBackward(_ dy: Tensor) -> Tensor {
        let (b, n, d) = (dy.shape[0], dy.shape[1], dy.shape[2])
        var dx = Tensor(zeros: [b, n + 1, d])
        dy.withPointer { g in dx.withMutablePointer { out in
            for bi in 0..<b { (out + (bi * (n + 1) + 1) * d).update(from: g + bi * n * d, count: n * d) }
        } }
        return dx
    }
}
