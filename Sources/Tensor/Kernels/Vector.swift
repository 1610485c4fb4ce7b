/// Small vector primitives over raw pointers, written so release builds vectorize them:
/// plain indexed loops for elementwise work, several SIMD16 accumulators for reductions
/// (float reductions never auto-vectorize because reassociation changes the result).
public enum Vector {
    @inline(__always) @usableFromInline
    static func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
    }

    @inline(__always) @usableFromInline
    static func store16(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
    }

    /// The lanes' sum in lane order, ((v0 + v1) + v2) + …: the exact arithmetic of the standard
    /// library's `SIMD.sum()` (a loop from −0), which release builds left as an out-of-line call
    /// (~1.3% of the BootMAE training step on Zen 4; perf). Spelled out, it inlines.
    @inline(__always) @usableFromInline
    static func sumOfLanes(_ v: SIMD16<Float>) -> Float {
        var s = v[0]
        s += v[1]; s += v[2]; s += v[3]; s += v[4]; s += v[5]; s += v[6]; s += v[7]
        s += v[8]; s += v[9]; s += v[10]; s += v[11]; s += v[12]; s += v[13]; s += v[14]; s += v[15]
        return s
    }

    /// Σ x[i]
    @inlinable
    public static func sum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
        var i = 0
        while i + 32 <= n {
            a0 += load16(x + i); a1 += load16(x + i + 16); i += 32
        }
        if i + 16 <= n { a0 += load16(x + i); i += 16 }
        var s = sumOfLanes(a0 + a1)
        while i < n { s += x[i]; i += 1 }
        return s
    }

    /// Σ x[i]·y[i]
    @inlinable
    public static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) -> Float {
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
        var i = 0
        while i + 32 <= n {
            a0.addProduct(load16(x + i), load16(y + i))
            a1.addProduct(load16(x + i + 16), load16(y + i + 16))
            i += 32
        }
        if i + 16 <= n { a0.addProduct(load16(x + i), load16(y + i)); i += 16 }
        var s = sumOfLanes(a0 + a1)
        while i < n { s += x[i] * y[i]; i += 1 }
        return s
    }

    /// Σ (x[i] − c)²
    @inlinable
    public static func sumSquaredDeviation(_ x: UnsafePointer<Float>, _ n: Int, from c: Float) -> Float {
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
        let cv = SIMD16<Float>(repeating: c)
        var i = 0
        while i + 32 <= n {
            let d0 = load16(x + i) - cv, d1 = load16(x + i + 16) - cv
            a0.addProduct(d0, d0); a1.addProduct(d1, d1)
            i += 32
        }
        if i + 16 <= n { let d = load16(x + i) - cv; a0.addProduct(d, d); i += 16 }
        var s = sumOfLanes(a0 + a1)
        while i < n { let d = x[i] - c; s += d * d; i += 1 }
        return s
    }

    /// max x[i]
    @inlinable
    public static func max(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var m = -Float.infinity
        var i = 0
        if n >= 16 {
            // `pointwiseMax` and `.max()` lower to scalar code; a compare-and-select does not.
            var mv = load16(x)
            i = 16
            while i + 16 <= n {
                let v = load16(x + i)
                mv.replace(with: v, where: v .> mv)
                i += 16
            }
            for k in 0..<16 where mv[k] > m { m = mv[k] }
        }
        while i < n { if x[i] > m { m = x[i] }; i += 1 }
        return m
    }

    /// y[i] += x[i]
    @inlinable
    public static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] += x[i] }
    }

    /// y[i] += a·x[i]
    @inlinable
    public static func axpy(_ a: Float, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] += a * x[i] }
    }

    /// x[i] *= a
    @inlinable
    public static func scale(_ x: UnsafeMutablePointer<Float>, by a: Float, _ n: Int) {
        for i in 0..<n { x[i] *= a }
    }
}

extension Tensor {
    /// Elementwise a + b (same shapes): the residual connection.
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "add: shapes \(a.shape) and \(b.shape) differ")
        var out = a
        out.add(b)
        return out
    }

    /// self += other, elementwise.
    public mutating func add(_ other: Tensor) {
        precondition(count == other.count, "add: \(shape) vs \(other.shape)")
        let n = count
        other.withPointer { src in withMutablePointer { dst in Vector.add(src, into: dst, n) } }
    }

    /// self *= a, elementwise.
    public mutating func scale(by a: Float) {
        let n = count
        withMutablePointer { Vector.scale($0, by: a, n) }
    }
}
