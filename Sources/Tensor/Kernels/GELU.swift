/// The exact (erf) GELU of `torch.nn.GELU()`: y = x·Φ(x), Φ the standard normal CDF.
public enum GELUOp {
    @inline(__always) @usableFromInline
    static func cdf(_ x: Float) -> Float {
        // Φ(x) = erfc(−x/√2)/2; for x ≥ 0 use 1 − erfc(x/√2)/2 so both tails stay accurate.
        let e = FastMath.erfcNonNegative(abs(x) * 0.707_106_77)
        return x >= 0 ? 1 - 0.5 * e : 0.5 * e
    }

    public static func forward(_ x: Tensor) -> Tensor {
        let n = x.count
        return Tensor(shape: x.shape) { y in
            x.withPointer { xp in
                Parallel.forEachChunk(n, grain: 1 << 15) { r in for i in r { y[i] = xp[i] * cdf(xp[i]) } }
            }
        }
    }

    /// dx = dy · (Φ(x) + x·φ(x)), φ(x) = e^(−x²/2)/√(2π).
    public static func backward(_ dy: Tensor, input x: Tensor) -> Tensor {
        let n = x.count
        return Tensor(shape: x.shape) { dx in
            x.withPointer { xp in dy.withPointer { dyp in
                Parallel.forEachChunk(n, grain: 1 << 15) { r in
                    for i in r {
                        let v = xp[i]
                        let pdf = 0.398_942_28 * FastMath.exp(-0.5 * v * v)
                        dx[i] = dyp[i] * (cdf(v) + v * pdf)
                    }
                }
            } }
        }
    }
}
