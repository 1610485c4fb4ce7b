import Foundation

/// iRPE's bucket index of every (query, key) pair, product method (junchen14/LoMaR irpe.py:
/// `piecewise_index`, `_rp_2d_product`, `get_bucket_ids_2d`; configured by vision_transformer_irpe.py
/// `get_rpe_config(ratio=1.9, method="product", skip=1)`).
///
/// A sequence of L tokens is read as `skip` leading tokens (cls) and an E×E patch grid,
/// E = ⌊√L⌋, skip = L − E² (irpe.py `_get_rp_bucket`), so one table serves a K×K LoMaR window
/// (L = K² + 1) and a whole image (L = N + 1) alike; with the cls bucket skip must be 1.
/// Per axis the offset Δ = query − key is bucketed by ρ(Δ) = Δ for |Δ| ≤ α, else
/// sign(Δ)·trunc(min(β, round(α + ln(|Δ|/α)/ln(γ/α)·(β − α)))); a pair's bucket is
/// (ρ(Δrow) + ⌊β⌋)·(2⌊β⌋ + 1) + ρ(Δcol) + ⌊β⌋, and any pair with the cls token gets the extra
/// bucket (2⌊β⌋ + 1)².
public enum RelativePositionBuckets {
    /// α = 1.9, β = 3.8, γ = 15.2: offsets 0, 1, 2, 3 → 0, 1, 2, 2 and ≥ 4 → 3 per axis.
    public static let ratio: Float = 1.9
    static var alpha: Float { 1 * ratio }
    static var beta: Float { 2 * ratio }
    static var gamma: Float { 8 * ratio }
    /// ⌊β⌋ = 3 and the 7 values per axis.
    static var betaInt: Int { Int(beta) }
    static var side: Int { 2 * betaInt + 1 }
    /// 49 position buckets plus the cls bucket.
    public static var count: Int { side * side + 1 }
    public static var classBucket: Int { side * side }

    /// ρ(Δ), in Float as the official code computes it (float32 tensors); torch rounds half to even
    /// and the cast to long truncates toward zero.
    static func piecewise(_ delta: Int) -> Int {
        let magnitude = abs(delta)
        if Float(magnitude) <= alpha { return delta }
        let y = (alpha + log(Float(magnitude) / alpha) / Float(Foundation.log(Double(gamma / alpha))) * (beta - alpha))
            .rounded(.toNearestOrEven)
        let clipped = Int(min(y, beta))
        return delta < 0 ? -clipped : clipped
    }

    /// The (L, L) bucket table, row = query, for a sequence of `tokens` tokens; computed once per
    /// length and then shared.
    public static func table(tokens: Int) -> [Int32] {
        cache.lock.lock()
        defer { cache.lock.unlock() }
        if let t = cache.tables[tokens] { return t }
        let t = build(tokens: tokens)
        cache.tables[tokens] = t
        return t
    }

    static func build(tokens l: Int) -> [Int32] {
        var e = Int(Double(l).squareRoot())
        while e * e > l { e -= 1 }
        while (e + 1) * (e + 1) <= l { e += 1 }
        let skip = l - e * e
        // The official table has the cls bucket (skip = 1), and irpe.py asserts the count matches.
        precondition(skip == 1, "iRPE: \(l) tokens are not one cls token and a square grid")
        let axis = (-(e - 1)...(e - 1)).map { piecewise($0) + betaInt }
        var table = [Int32](repeating: Int32(classBucket), count: l * l)
        for qi in 0..<(e * e) {
            let (qr, qc) = qi.quotientAndRemainder(dividingBy: e)
            for ki in 0..<(e * e) {
                let (kr, kc) = ki.quotientAndRemainder(dividingBy: e)
                let bucket = axis[qr - kr + e - 1] * side + axis[qc - kc + e - 1]
                table[(skip + qi) * l + skip + ki] = Int32(bucket)
            }
        }
        return table
    }

    private final class Cache: @unchecked Sendable {
        let lock = NSLock()
        var tables: [Int: [Int32]] = [:]
    }

    private static let cache = Cache()
}
