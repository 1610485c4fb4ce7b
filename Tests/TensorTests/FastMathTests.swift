import XCTest
import Foundation
import Tensor

/// The vectorizable approximations against libm (closed form) over their whole useful range.
final class FastMathTests: XCTestCase {
    func testExpRelativeErrorBelow2e7() {
        var worst: Double = 0
        for i in 0...20_000 {
            let x = Float(-87 + Double(i) * 175.0 / 20_000)
            let ref = Foundation.exp(Double(x))
            worst = max(worst, abs(Double(FastMath.exp(x)) - ref) / ref)
        }
        XCTAssertLessThan(worst, 2e-7, "worst relative error \(worst)")
    }

    /// The 16-lane exp takes the scalar one's steps, so every lane must round identically.
    func testVectorExpMatchesScalarExp() {
        for start in stride(from: -100, to: 100, by: 0.37) {
            let x = SIMD16<Float>((0..<16).map { Float(start) + Float($0) * 0.0123 })
            let v = FastMath.exp(x)
            for lane in 0..<16 { XCTAssertEqual(v[lane].bitPattern, FastMath.exp(x[lane]).bitPattern, "exp(\(x[lane]))") }
        }
    }

    /// The fit itself is good to 1.2e-7; rounding the float argument −z² + p of exp adds up to
    /// ~1e-6 at z = 3 and grows with z² in the far tail (z > 3, i.e. GELU inputs below
    /// −4.2, where GELU is below 1e-4 in magnitude).
    func testErfcRelativeError() {
        func worst(_ range: ClosedRange<Double>) -> Double {
            (0...10_000).map { i -> Double in
                let z = Float(range.lowerBound + Double(i) * (range.upperBound - range.lowerBound) / 10_000)
                let ref = Foundation.erfc(Double(z))
                return abs(Double(FastMath.erfcNonNegative(z)) - ref) / ref
            }.max()!
        }
        XCTAssertLessThan(worst(0...3), 1.5e-6)
        XCTAssertLessThan(worst(3...9), 1e-5)
    }
}
