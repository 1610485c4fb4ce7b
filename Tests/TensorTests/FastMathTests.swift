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
}
