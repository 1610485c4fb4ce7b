import Tensor

/// Layer scale: a learned per-channel gain on a residual branch, x + γ ⊙ branch, γ initialised
/// to `init_values` (microsoft/unilm beit/modeling_finetune.py `Block`: `gamma_1`, `gamma_2`;
/// timm `LayerScale`).
public struct LayerScale: Sendable {
    public let gamma: Parameter

    public init(_ dim: Int, initValue: Float, name: String, into params: inout ParameterList) {
        gamma = Parameter(Tensor(repeating: initValue, shape: [dim]))
        params.add(name, gamma)
    }

    var dim: Int { gamma.shape[0] }

    /// x + γ ⊙ branch, both (…, dim).
    public func forward(_ x: Tensor, adding branch: Tensor) -> Tensor {
        precondition(x.shape == branch.shape && x.shape.last == dim, "layer scale: \(x.shape) + γ(\(dim)) ⊙ \(branch.shape)")
        var y = x
        let rows = x.count / dim
        y.withMutablePointer { yp in branch.withPointer { bp in addScaled(bp, into: yp, rows: rows) } }
        return y
    }

    /// y += γ ⊙ branch over `rows` rows; training and inference share this loop, so they agree bit for bit.
    func addScaled(_ branch: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, rows: Int) {
        let d = dim
        gamma.value.withPointer { g in
            for r in 0..<rows {
                let (b, out) = (branch + r * d, y + r * d)
                for i in 0..<d { out[i] += g[i] * b[i] }
            }
        }
    }

    /// From dy of x + γ ⊙ branch: adds Σ_rows dy ⊙ branch into γ's gradient and returns
    /// d branch = dy ⊙ γ (dx = dy stays with the caller's skip connection).
    public func backward(_ dy: Tensor, branch: Tensor) -> Tensor {
        let (d, rows) = (dim, dy.count / dim)
        var dBranch = dy
        dy.withPointer { gp in branch.withPointer { bp in
            gamma.withGradPointer { gg in
                for r in 0..<rows {
                    let (g, b) = (gp + r * d, bp + r * d)
                    for i in 0..<d { gg[i] += g[i] * b[i] }
                }
            }
            gamma.value.withPointer { gv in dBranch.withMutablePointer { out in
                for r in 0..<rows { for i in 0..<d { out[r * d + i] *= gv[i] } }
            } }
        } }
        return dBranch
    }
}
