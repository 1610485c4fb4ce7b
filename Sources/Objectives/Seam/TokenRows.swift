import Tensor

/// Rows of a (B, T, W) token tensor, picked and put back: what a head that reads only some tokens
/// needs (BEiT's `x[bool_masked_pos]`, iBOT's [CLS] and masked patches) and its gradient.
public enum TokenRows {
    /// (B, T, W) → (rows, W).
    public static func gather(_ x: Tensor, _ rows: [Int]) -> Tensor {
        let w = x.lastDim
        return Tensor(shape: [rows.count, w]) { out in
            x.withPointer { xp in for (i, r) in rows.enumerated() { (out + i * w).update(from: xp + r * w, count: w) } }
        }
    }

    /// (rows, W) → (B, T, W), zeros elsewhere.
    public static func scatter(_ x: Tensor, _ rows: [Int], images: Int, tokens: Int) -> Tensor {
        let w = x.lastDim
        var out = Tensor(zeros: [images, tokens, w])
        out.withMutablePointer { o in x.withPointer { xp in
            for (i, r) in rows.enumerated() { (o + r * w).update(from: xp + i * w, count: w) }
        } }
        return out
    }
}
