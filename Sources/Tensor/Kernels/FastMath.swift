/// Branch-free float approximations of exp in plain Swift (GELU's erfc lives in GELUOp). Calls into
/// libm (`expf`) stop the compiler from vectorizing a loop; these inline into the loop body instead.
public enum FastMath {
    /// e^x with relative error below 2e-7 on [-87, 88]; inputs outside are clamped.
    @inline(__always) @inlinable
    public static func exp(_ x: Float) -> Float {
        let lo: Float = -87, hi: Float = 88
        let xc = x < lo ? lo : (x > hi ? hi : x)
        // x = n·ln2 + r with |r| ≤ ln2/2; the magic constant rounds x·log2(e) to an integer n
        // held in the low mantissa bits of `shifted`.
        let magic: Float = 12_582_912  // 1.5 · 2^23
        let shifted = xc * 1.442_695_04 + magic
        let n = shifted - magic
        let r = (xc - n * 0.693_145_75) - n * 1.428_606_8e-6
        // Taylor series of e^r to degree 7 (truncation error < 5e-9 for |r| ≤ 0.347).
        // Horner steps as fused multiply-adds: one rounding and half the latency per step.
        var p: Float = 1.0 / 5040
        p = Float(1.0 / 720).addingProduct(p, r)
        p = Float(1.0 / 120).addingProduct(p, r)
        p = Float(1.0 / 24).addingProduct(p, r)
        p = Float(1.0 / 6).addingProduct(p, r)
        p = Float(0.5).addingProduct(p, r)
        p = Float(1).addingProduct(p, r)
        p = Float(1).addingProduct(p, r)
        // 2^n assembled directly in the exponent field.
        let bits = (shifted.bitPattern &- magic.bitPattern &+ 127) &<< 23
        return p * Float(bitPattern: bits)
    }

    /// e^x lane by lane, by the same steps as the scalar `exp` (so each lane rounds identically):
    /// for loops that also reduce, where the compiler would not vectorize the scalar form.
    @inline(__always) @inlinable
    public static func exp(_ x: SIMD16<Float>) -> SIMD16<Float> {
        var xc = x
        xc.replace(with: -87, where: xc .< -87)
        xc.replace(with: 88, where: xc .> 88)
        let magic = SIMD16<Float>(repeating: 12_582_912)
        let shifted = xc * 1.442_695_04 + magic
        let n = shifted - magic
        let r = (xc - n * 0.693_145_75) - n * 1.428_606_8e-6
        var p = SIMD16<Float>(repeating: 1.0 / 5040)
        p = SIMD16(repeating: 1.0 / 720).addingProduct(p, r)
        p = SIMD16(repeating: 1.0 / 120).addingProduct(p, r)
        p = SIMD16(repeating: 1.0 / 24).addingProduct(p, r)
        p = SIMD16(repeating: 1.0 / 6).addingProduct(p, r)
        p = SIMD16(repeating: 0.5).addingProduct(p, r)
        p = SIMD16(repeating: 1).addingProduct(p, r)
        p = SIMD16(repeating: 1).addingProduct(p, r)
        let bits = (unsafeBitCast(shifted, to: SIMD16<UInt32>.self) &- magic[0].bitPattern &+ 127) &<< 23
        return p * unsafeBitCast(bits, to: SIMD16<Float>.self)
    }
}
