import XCTest
import Tensor

/// Checks `coordinates` entries of every trainable tensor whose name `selected` accepts against
/// central differences, each tensor on its own scale: |analytic − numeric| relative to the largest of its analytic
/// gradient's magnitudes and of the numeric derivatives measured for it must stay under `tol`.
///
/// The first call of `loss` must run backward (it accumulates the analytic gradients); the later
/// calls, the difference quotients, need not. The
/// float32 loss limits the difference quotient to about 1e-5 absolute at h = 2e-2 (rounding,
/// measured: smaller h gives larger errors), so the measured coordinates of every tensor must
/// carry at least `floor` = 1e-4 of gradient, or the tensor would not really be checked; the
/// smallest measured is 6.6e-4. Worst relative errors measured: 2.9e-3 (rounding, on the
/// smallest gradient, `blocks.1.attn.q_bias` without decoder context) and 1.0e-3 (truncation,
/// on the largest), hence `tol` = 1e-2 (these figures are the whole-network MAE/BootMAE checks'). A tensor whose analytic gradient were lost (zero) has
/// error 1 at its largest measured coordinate.
func assertGradientsMatchCentralDifferences(
    _ params: ParameterList, only selected: (String) -> Bool = { _ in true }, coordinates: Int = 3, h: Float = 2e-2,
    tol: Double = 1e-2, floor: Double = 1e-4, minimumChecked: Int = 30,
    loss: () -> Float, file: StaticString = #filePath, line: UInt = #line
) {
    params.zeroGrads()
    _ = loss()  // accumulates analytic gradients (the closure runs with backward on)
    let analytic = params.entries.filter { $0.parameter.trainable && selected($0.name) }.map { ($0.name, $0.parameter, $0.parameter.grad) }
    var rng = SeededRandom(seed: 99)
    var checked = 0
    for (name, p, grad) in analytic {
        var numeric: [(index: Int, value: Double)] = []
        for _ in 0..<coordinates {
            let i = Int(rng.next() % UInt64(p.value.count))
            let original = p.value.data[i]
            p.value.data[i] = original + h
            let up = Double(loss())
            p.value.data[i] = original - h
            let down = Double(loss())
            p.value.data[i] = original
            numeric.append((i, (up - down) / (2 * Double(h))))
        }
        let measured = numeric.map { abs($0.value) }.max() ?? 0
        XCTAssertGreaterThan(measured, floor, "\(name): the measured coordinates carry no resolvable gradient", file: file, line: line)
        let scale = max(grad.data.map { abs(Double($0)) }.max() ?? 0, measured)
        for (i, value) in numeric {
            XCTAssertLessThan(abs(value - Double(grad.data[i])) / scale, tol,
                              "\(name)[\(i)]: numeric \(value) analytic \(grad.data[i]), tensor scale \(scale)", file: file, line: line)
            checked += 1
        }
    }
    XCTAssertGreaterThan(checked, minimumChecked, file: file, line: line)
}

