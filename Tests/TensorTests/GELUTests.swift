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
}
