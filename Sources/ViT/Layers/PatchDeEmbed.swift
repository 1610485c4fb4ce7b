import Tensor

/// BootMAE's pixel head `lm_head` = ConvTranspose2d(dim, C, kernel = stride = p): per token, a
/// linear map to a (c, py, px)-ordered patch with weight (dim, C, p, p) and one bias per channel.
/// Note the layout: y = x·W (W is (in, out)), unlike `Linear`'s x·Wᵀ.
public struct PatchDeEmbed: Sendable {
    public let weight: Parameter
    public let bias: Parameter
    public let patch: Int
    public let channels: Int

    public init(dim: Int, channels: Int, patch: Int, name: String, into params: inout ParameterList) {
        self.patch = patch
        self.channels = channels
        weight = Parameter(Tensor(zeros: [dim, channels, patch, patch]))
        bias = Parameter(Tensor(zeros: [channels]))
        params.add("\(name).weight", weight)
        params.add("\(name).bias", bias)
    }

    var outDim: Int { channels * patch * patch }

    /// x (B, N, dim) → patches (B, N, C·p·p).
    public func forward(_ x: Tensor) -> Tensor {
        let (rows, dim, out, pp) = (x.rows, x.lastDim, outDim, patch * patch)
        return Tensor(shape: Array(x.shape.dropLast()) + [out]) { y in
            bias.value.withPointer { b in
                for r in 0..<rows { for c in 0..<channels { (y + r * out + c * pp).initialize(repeating: b[c], count: pp) } }
            }
            x.withPointer { xp in weight.value.withPointer { w in
                BLAS.gemm(m: rows, n: out, k: dim, a: xp, lda: dim, b: w, ldb: out, beta: 1, c: y, ldc: out)
            } }
        }
    }

    public func backward(_ dy: Tensor, input x: Tensor) -> Tensor {
        let (rows, dim, out, pp) = (x.rows, x.lastDim, outDim, patch * patch)
        dy.withPointer { g in
            x.withPointer { xp in weight.withGradPointer { gw in
                BLAS.gemm(transA: true, m: dim, n: out, k: rows, a: xp, lda: dim, b: g, ldb: out, beta: 1, c: gw, ldc: out)
            } }
            bias.withGradPointer { gb in
                for r in 0..<rows { for c in 0..<channels { gb[c] += Vector.sum(g + r * out + c * pp, pp) } }
            }
        }
        return Tensor(shape: x.shape) { dx in
            dy.withPointer { g in weight.value.withPointer { w in
                BLAS.gemm(transB: true, m: rows, n: dim, k: out, a: g, lda: out, b: w, ldb: out, c: dx, ldc: dim)
            } }
        }
    }
}
