import Foundation
import XCTest
@testable import Tensor

/// The C GELU passes (AVX-512 or baseline build, whichever this CPU runs) must round exactly like
/// the scalar Swift definitions they replace: same constants, same fused multiply-adds.
final class GELUTests: XCTestCase {
    /// x·Φ(x) and Φ(x) + x·φ(x) through GELUOp's scalar Swift definitions (which the element-wise
    /// backward still uses).
    func reference(_ x: Float) -> (y: Float, derivative: Float) {
        (x * GELUOp.cdf(x), GELUOp.derivative(x))
    }

    func testVectorPassesMatchTheScalarDefinitionBitForBit() {
        // Odd length: the vector loops' tails run too. Covers both tails and the clamped exp range.
        let xs = (0..<10_001).map { Float(-14 + Double($0) * 28.0 / 10_000) } + [0, -0.0, 1e-30, -1e-30, 40, -40]
        let x = Tensor(shape: [xs.count], data: xs)
        let y = GELUOp.forward(x)
        let (y2, d) = GELUOp.forwardWithDerivative(x)
        var inPlace = x
        inPlace.withMutablePointer { GELUOp.applyInPlace($0, count: xs.count) }
        for (i, v) in xs.enumerated() {
            let r = reference(v)
            XCTAssertEqual(y.data[i].bitPattern, r.y.bitPattern, "forward(\(v))")
            XCTAssertEqual(y2.data[i].bitPattern, r.y.bitPattern, "forwardWithDerivative y(\(v))")
            XCTAssertEqual(d.data[i].bitPattern, r.derivative.bitPattern, "derivative(\(v))")
            XCTAssertEqual(inPlace.data[i].bitPattern, r.y.bitPattern, "applyInPlace(\(v))")
        }
    }

    /// The approximation itself (Abramowitz & Stegun 7.1.26 with FastMath.exp) against Φ and φ in
    /// doubles (erfc from Foundation): |y − x·Φ(x)| ≤ 2.5e-7·max(1, |x|) and |d − (Φ(x) + x·φ(x))|
    /// ≤ 4e-7 over [−14, 14] and at ±40 (largest seen on Zen 4: 1.7e-7 and 3.0e-7; the 10-term
    /// Chebyshev erfc it replaced: 1.2e-7 and 2.1e-7). A wrong coefficient or exponent gives 1e-4 or more.
    func testMatchesTheDoublePrecisionGELUWithinTheStatedBound() {
        let xs = (0..<280_001).map { Float(-14 + Double($0) * 28.0 / 280_000) } + [40, -40, 1e-30, -1e-30]
        let (y, d) = GELUOp.forwardWithDerivative(Tensor(shape: [xs.count], data: xs))
        var worstY = 0.0, worstD = 0.0, worstYAt: Float = 0, worstDAt: Float = 0
        for (i, v) in xs.enumerated() {
            let x = Double(v)
            let cdf = 0.5 * erfc(-x / 2.0.squareRoot())
            let pdf = Foundation.exp(-0.5 * x * x) / (2 * Double.pi).squareRoot()
            let errorY = abs(Double(y.data[i]) - x * cdf) / max(1, abs(x))
            let errorD = abs(Double(d.data[i]) - (cdf + x * pdf))
            if errorY > worstY { (worstY, worstYAt) = (errorY, v) }
            if errorD > worstD { (worstD, worstDAt) = (errorD, v) }
        }
        XCTAssertLessThanOrEqual(worstY, 2.5e-7, "GELU at x = \(worstYAt)")
        XCTAssertLessThanOrEqual(worstD, 4e-7, "GELU' at x = \(worstDAt)")
    }
}
