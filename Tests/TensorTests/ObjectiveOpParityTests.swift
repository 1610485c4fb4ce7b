import XCTest
import Tensor
import TestSupport

/// The ops new pretraining objectives share, against PyTorch (tools/reference/make_objective_fixtures.py).
/// Tolerance: relative error (max|Δ| / max|ref|) ≤ 1e-5 for every output and gradient.
final class ObjectiveOpParityTests: XCTestCase {
    let tol: Float = 1e-5

    func check(_ ours: Tensor, _ ref: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(ours.shape.reduce(1, *), ref.count, "\(what): element count", file: file, line: line)
        let err = relativeError(ours, ref)
        XCTAssertLessThanOrEqual(err, tol, "\(what): relative error \(err)", file: file, line: line)
    }

    func testL2Normalize() throws {
        let f = try Fixtures.file("ops/l2_normalize.safetensors")
        let x = try f.tensor("x"), dy = try f.tensor("dy")
        let (y, saved) = L2NormalizeOp.forward(x)
        check(y, try f.tensor("y"), "y")
        check(L2NormalizeOp.backward(dy, output: y, saved: saved), try f.tensor("dx"), "dx")
    }

    /// Norms below eps: the clamp divides by eps and passes no gradient through the norm.
    func testL2NormalizeBelowEps() throws {
        let f = try Fixtures.file("ops/l2_normalize.safetensors")
        let x = try f.tensor("x_tiny"), dy = try f.tensor("dy_tiny")
        let eps = Float(try XCTUnwrap(f.meta("eps")))
        let (y, saved) = L2NormalizeOp.forward(x, eps: eps)
        check(y, try f.tensor("y_tiny"), "y_tiny")
        check(L2NormalizeOp.backward(dy, output: y, saved: saved, eps: eps), try f.tensor("dx_tiny"), "dx_tiny")
    }

    /// iBOT's [CLS] loss: the mean over rows.
    func testSoftTargetCrossEntropyMean() throws {
        let f = try Fixtures.file("ops/soft_target_ce.safetensors")
        let s = try f.tensor("student"), t = try f.tensor("target")
        let tau = Float(try XCTUnwrap(f.meta("student_temp")))
        let (loss, grad) = SoftTargetCrossEntropy.forwardBackward(student: s, target: t, temperature: tau)
        check(Tensor(shape: [1], data: [loss]), try f.tensor("loss_mean"), "loss_mean")
        check(grad, try f.tensor("dstudent_mean"), "dstudent_mean")
    }

    /// iBOT's patch loss: masked rows averaged per image (an image without masked patches counts
    /// 0 over max(0, 1)), then the mean over images.
    func testSoftTargetCrossEntropyMaskedPerImage() throws {
        let f = try Fixtures.file("ops/soft_target_ce.safetensors")
        let s = try f.tensor("student"), t = try f.tensor("target"), mask = try f.tensor("mask")
        let tau = Float(try XCTUnwrap(f.meta("student_temp")))
        let (images, patches) = (mask.shape[0], mask.shape[1])
        var weights = [Float]()
        for b in 0..<images {
            let row = mask.data[(b * patches)..<((b + 1) * patches)]
            let count = max(row.reduce(0, +), 1)
            weights += row.map { $0 / count }
        }
        let (loss, grad) = SoftTargetCrossEntropy.forwardBackward(student: s, target: t, temperature: tau,
                                                                  weights: weights, normalizer: Float(images))
        check(Tensor(shape: [1], data: [loss]), try f.tensor("loss_masked"), "loss_masked")
        check(grad, try f.tensor("dstudent_masked"), "dstudent_masked")
        // Each row's loss alone (a one-hot weight, normalizer 1).
        var rowLosses = [Float]()
        for r in 0..<(images * patches) {
            var w = [Float](repeating: 0, count: images * patches)
            w[r] = 1
            rowLosses.append(SoftTargetCrossEntropy.forwardBackward(student: s, target: t, temperature: tau,
                                                                    weights: w, normalizer: 1).loss)
        }
        check(Tensor(shape: [images, patches], data: rowLosses), try f.tensor("row_loss"), "row_loss")
    }
}
