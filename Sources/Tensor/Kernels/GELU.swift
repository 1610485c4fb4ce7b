import CKernels

/// The exact (erf) GELU of `torch.nn.GELU()`: y = x·Φ(x), Φ the standard normal CDF.
public enum GELUOp {
    /// Φ(x) and g = e^(−x²/2), by Abramowitz & Stegun's formula 7.1.26 (Hastings' fit):
    /// erfc(z) ≈ t·(a1 + t·(a2 + t·(a3 + t·(a4 + t·a5))))·e^(−z²), t = 1/(1 + p·z), z = |x|/√2,
    /// |error| ≤ 1.5e-7 for z ≥ 0. e^(−z²) is the normal density's exponential too, so the forward
    /// with derivative costs one exp (a 10-term Chebyshev erfc inside its own exp cost twice the time).
    /// Checked against doubles on [−14, 14] (GELUTests): GELU within 2.5e-7·max(1, |x|) of x·Φ(x)
    /// (1.7e-7 seen), the derivative within 4e-7 of Φ(x) + x·φ(x) (3.0e-7 seen).
    @inline(__always) @usableFromInline
    static func cdfAndGauss(_ x: Float) -> (cdf: Float, gauss: Float) {
        let z = abs(x) * 0.707_106_77
        let t = 1 / (1 + 0.327_591_1 * z)
        var p: Float = 1.061_405_429
        p = (-1.453_152_027 as Float).addingProduct(p, t)
        p = (1.421_413_741 as Float).addingProduct(p, t)
        p = (-0.284_496_736 as Float).addingProduct(p, t)
        p = (0.254_829_592 as Float).addingProduct(p, t)
        let g = FastMath.exp(-0.5 * x * x)
        let e = t * p * g
        // Φ(x) = erfc(−x/√2)/2; for x ≥ 0 use 1 − erfc(x/√2)/2 so both tails stay accurate.
        return (x >= 0 ? 1 - 0.5 * e : 0.5 * e, g)
    }

    @inline(__always) @usableFromInline
    static func cdf(_ x: Float) -> Float { cdfAndGauss(x).cdf }

    /// dy/dx = Φ(x) + x·φ(x), φ(x) = e^(−x²/2)/√(2π).
    @inline(__always) @usableFromInline
    static func derivative(_ x: Float) -> Float {
        let (cdf, g) = cdfAndGauss(x)
        return cdf + x * (0.398_942_28 * g)
    }

    // The passes over whole tensors run in C (CKernels), which adds an AVX-512 build picked at
    // run time: twice the lanes of the Swift loops (x86-64-v3), ~1.7x the elements per second,
    // same arithmetic (identical results, checked by GELUTests). Zen 4, AVX-512, one thread:
    // 0.57 ns per element in place, 0.62 with the derivative (0.82 and 1.17 with the Chebyshev erfc).

    public static func forward(_ x: Tensor) -> Tensor {
        let n = x.count
        return Tensor(shape: x.shape) { y in
            x.withPointer { xp in
                Parallel.forEachChunk(n, grain: 1 << 15) { r in ck_gelu_forward(xp + r.lowerBound, y + r.lowerBound, r.count) }
            }
        }
    }

    /// Inference: x ← GELU(x) in place (the activation needs no buffer of its own).
    public static func applyInPlace(_ x: UnsafeMutablePointer<Float>, count n: Int) {
        Parallel.forEachChunk(n, grain: 1 << 15) { r in ck_gelu_in_place(x + r.lowerBound, r.count) }
    }

    /// The forward for training: y and dy/dx in one pass. Backward then needs one multiply per
    /// element instead of evaluating Φ and φ again (they cost far more than the GEMMs' memory traffic).
    public static func forwardWithDerivative(_ x: Tensor) -> (y: Tensor, derivative: Tensor) {
        let n = x.count
        var derivative = Tensor(uninitialized: x.shape)
        let y = Tensor(shape: x.shape) { y in
            x.withPointer { xp in derivative.withMutablePointer { d in
                Parallel.forEachChunk(n, grain: 1 << 15) { r in
                    ck_gelu_forward_derivative(xp + r.lowerBound, y + r.lowerBound, d + r.lowerBound, r.count)
                }
            } }
        }
        return (y, derivative)
    }

    /// dx = dy · (Φ(x) + x·φ(x)).
    public static func backward(_ dy: Tensor, input x: Tensor) -> Tensor {
        let n = x.count
        return Tensor(shape: x.shape) { dx in
            x.withPointer { xp in dy.withPointer { dyp in
                Parallel.forEachChunk(n, grain: 1 << 15) { r in for i in r { dx[i] = dyp[i] * derivative(xp[i]) } }
            } }
        }
    }

    /// dx = dy · dy/dx, with the derivative saved by `forwardWithDerivative`.
    public static func backward(_ dy: Tensor, derivative: Tensor) -> Tensor {
        precondition(dy.count == derivative.count, "gelu backward: dy \(dy.shape) vs derivative \(derivative.shape)")
        let n = dy.count
        return Tensor(shape: dy.shape) { dx in
            derivative.withPointer { dp in dy.withPointer { dyp in
                Parallel.forEachChunk(n, grain: 1 << 16) { r in for i in r { dx[i] = dyp[i] * dp[i] } }
            } }
        }
    }
}
