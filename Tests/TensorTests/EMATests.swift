import XCTest
import Tensor

final class EMATests: XCTestCase {
    func list(_ tensors: [(String, Tensor)]) -> ParameterList {
        var params = ParameterList()
        for (name, t) in tensors { params.add(name, Parameter(t)) }
        return params
    }

    /// k updates towards a fixed online value: e_k = m^k·e_0 + (1 − m^k)·o.
    func testClosedFormAfterManySteps() throws {
        let e0: [Float] = [1, -2, 0.5, 3], o: [Float] = [0.25, 4, -1, 3]
        let ema = list([("w", Tensor(shape: [2, 2], data: e0))])
        let online = list([("w", Tensor(shape: [2, 2], data: o))])
        let (m, k) = (0.9, 25)
        for _ in 0..<k { try ema.updateEMA(from: online, decay: Float(m)) }
        let mk = pow(m, Double(k))
        for i in 0..<4 {
            let expected = mk * Double(e0[i]) + (1 - mk) * Double(o[i])
            XCTAssertEqual(Double(ema["w"]!.value.data[i]), expected, accuracy: 1e-5, "element \(i)")
        }
        XCTAssertEqual(online["w"]!.value.data, o, "the online list is not touched")
    }

    /// The exact float arithmetic BootMAE's momentum update uses, so switching to it is bit-identical.
    func testOneStepIsBitExact() throws {
        var rng = SeededRandom(seed: 3)
        let e = (0..<37).map { _ in rng.normal() }, o = (0..<37).map { _ in rng.normal() }
        let ema = list([("a", Tensor(shape: [37], data: e))])
        let m: Float = 0.996
        XCTAssertEqual(try ema.updateEMA(from: list([("a", Tensor(shape: [37], data: o))]), decay: m), 1)
        let expected = zip(e, o).map { m * $0 + (1 - m) * $1 }
        XCTAssertEqual(ema["a"]!.value.data.map(\.bitPattern), expected.map(\.bitPattern))
    }

    /// Tensors are matched by name whatever the order; names only one side has are skipped.
    func testMatchesByName() throws {
        let ema = list([("b", Tensor(repeating: 0, shape: [2])), ("a", Tensor(repeating: 0, shape: [3])),
                        ("teacher_only", Tensor(repeating: 7, shape: [1]))])
        let online = list([("a", Tensor(repeating: 1, shape: [3])), ("student_only", Tensor(repeating: 5, shape: [4])),
                           ("b", Tensor(repeating: 2, shape: [2]))])
        XCTAssertEqual(try ema.updateEMA(from: online, decay: 0.5), 2)
        XCTAssertEqual(ema["a"]!.value.data, [0.5, 0.5, 0.5])
        XCTAssertEqual(ema["b"]!.value.data, [1, 1])
        XCTAssertEqual(ema["teacher_only"]!.value.data, [7])
    }

    /// A shape mismatch names the tensor and both shapes, and nothing is updated.
    func testShapeMismatchThrowsBeforeUpdating() {
        let ema = list([("a", Tensor(repeating: 0, shape: [2])), ("b", Tensor(repeating: 0, shape: [2, 3]))])
        let online = list([("a", Tensor(repeating: 1, shape: [2])), ("b", Tensor(repeating: 1, shape: [3, 2]))])
        XCTAssertThrowsError(try ema.updateEMA(from: online, decay: 0.5)) { error in
            XCTAssertEqual(error as? EMAError, .shapeMismatch(name: "b", target: [2, 3], online: [3, 2]))
            XCTAssertTrue("\(error)".contains("b is [2, 3]"), "\(error)")
        }
        XCTAssertEqual(ema["a"]!.value.data, [0, 0])
    }
}
