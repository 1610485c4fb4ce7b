import XCTest
import Foundation
import Tensor

final class CrossEntropyTests: XCTestCase {
    /// Closed form: loss = −Σ_j t_j log softmax(x)_j, gradient (softmax − t)/B.
    func testClosedFormWithSmoothing() {
        let logits = Tensor(shape: [2, 3], data: [1, 2, 3, 0.5, -1, 2])
        let (loss, grad) = CrossEntropy.forwardBackward(logits: logits, labels: [2, 0], smoothing: 0.1)
        var expected = 0.0
        var expectedGrad = [Double]()
        for (r, label) in [2, 0].enumerated() {
            let row = (0..<3).map { Double(logits.data[r * 3 + $0]) }
            let z = row.map(exp).reduce(0, +)
            for j in 0..<3 {
                let t = 0.1 / 3 + (j == label ? 0.9 : 0)
                expected -= t * log(exp(row[j]) / z)
                expectedGrad.append((exp(row[j]) / z - t) / 2)
            }
        }
        XCTAssertEqual(Double(loss), expected / 2, accuracy: 1e-6)
        for (a, b) in zip(grad.data, expectedGrad) { XCTAssertEqual(Double(a), b, accuracy: 1e-7) }
        XCTAssertEqual(CrossEntropy.argmax(logits), [2, 2])
    }
}
