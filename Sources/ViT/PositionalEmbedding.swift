import Foundation
import Tensor

/// Fixed 2-D sin-cos positional embeddings, (1, 1 + g², dim), cls row zero.
///
/// For token m = i·g + j (i = patch row, j = column) and ωₖ = 10000^(−k/(dim/4)), k < dim/4:
///   BootMAE (MoCo v3 code): [sin(iω), cos(iω), sin(jω), cos(jω)]  — row halves first
///   MAE (util/pos_embed.py): [sin(jω), cos(jω), sin(iω), cos(iω)]  — column halves first
/// Computed in Double and rounded once, as the references do.
public enum SinCosPositionalEmbedding {
    public enum Order: Sendable { case rowFirst, columnFirst }

    public static func table(grid g: Int, dim: Int, order: Order) -> Tensor {
        precondition(dim % 4 == 0, "sin-cos positional embedding needs dim divisible by 4, got \(dim)")
        let quarter = dim / 4
        var out = [Float](repeating: 0, count: (g * g + 1) * dim)
        for i in 0..<g {
            for j in 0..<g {
                let (first, second) = order == .rowFirst ? (Double(i), Double(j)) : (Double(j), Double(i))
                let row = (1 + i * g + j) * dim
                for k in 0..<quarter {
                    let omega = 1 / pow(10000, Double(k) / Double(quarter))
                    out[row + k] = Float(sin(first * omega))
                    out[row + quarter + k] = Float(cos(first * omega))
                    out[row + 2 * quarter + k] = Float(sin(second * omega))
                    out[row + 3 * quarter + k] = Float(cos(second * omega))
                }
            }
        }
        return Tensor(shape: [1, g * g + 1, dim], data: out)
    }
}
