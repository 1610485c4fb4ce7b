import XCTest
import Foundation
import Tensor
import ViT
@testable import Objectives

/// iBOT's loss against numbers the official `iBOTLoss` (bytedance/ibot main_ibot.py) computes on
/// fixed logits (K = 4, 2 images, 2 global views, a 2×2 patch grid, τ_s = 0.1, teacher
/// temperatures warmed from 0.04 to 0.07 over 30 of 100 epochs, centres from 0), its closed forms,
/// and finite differences.
final class IBOTLossTests: XCTestCase {
    // Rows: view 0 image 0, view 0 image 1, view 1 image 0, view 1 image 1.
    let studentCls: [[Float]] = [[-0.17, 0.44, -1.0, -0.4], [-0.71, -0.82, -0.63, -0.31], [-0.21, 0.08, -0.16, 0.37], [-0.59, 0.76, -0.95, 0.34]]
    let teacherCls: [[Float]] = [[-0.13, -0.95, 0.1, -0.13], [-0.16, -0.34, -0.59, 0.24], [-0.4, -0.47, 0.24, 0.06], [-0.73, 0.03, -0.63, 0.57]]
    let studentPatch: [[[Float]]] = [
        [[0.1, 0.42, -0.42, 0.02], [0.79, 0.79, -0.75, -0.59], [-0.9, -0.12, -0.94, -0.09], [0.3, -0.44, 0.35, 0.18]],
        [[-0.95, 0.12, -0.48, -0.17], [-0.43, 0.39, -0.12, -0.69], [0.09, 0.56, -0.39, -0.56], [-0.22, 0.87, 0.95, 0.34]],
        [[0.81, 0.69, -0.24, -0.82], [0.31, 0.12, -0.28, -0.55], [-0.19, -0.06, -0.46, -0.42], [-0.08, 0.72, 0.17, -0.43]],
        [[-0.44, -0.09, -0.59, -0.6], [0.03, -0.83, -0.03, -0.28], [0.42, 0.49, 0.38, 0.38], [-0.25, 0.34, -0.32, 0.15]]]
    let teacherPatch: [[[Float]]] = [
        [[0.93, 0.09, 0.95, 0.43], [0.4, -0.57, 0.95, -0.99], [-0.49, -0.13, 0.56, -0.6], [0.73, 0.97, -0.67, 0.19]],
        [[-0.98, -0.23, -0.91, 0.91], [-0.13, 0.9, 0.57, 0.73], [-0.65, -0.85, 0.2, -0.66], [0.47, -0.18, 0.06, 0.88]],
        [[0.04, -0.78, -0.68, 0.09], [0.05, 0.28, -0.2, 0.3], [-0.21, 0.25, 0.53, -0.64], [-0.25, 0.01, 0.37, -0.49]],
        [[0.11, 0.25, 0.79, -0.27], [0.28, -0.62, 0.0, -0.64], [0.84, -0.14, 0.66, -0.17], [0.81, -0.19, -0.34, 0.14]]]
    /// Per view, image-major 2×2 masks (row-major tokens); image 1 of view 0 has none.
    let masks: [[Float]] = [[1, 0, 0, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 1, 1, 1]]

    func views(_ cls: [[Float]], _ patch: [[[Float]]]) -> [IBOTLoss.ViewLogits] {
        (0..<2).map { v in
            IBOTLoss.ViewLogits(cls: Tensor(shape: [2, 4], data: (cls[2 * v] + cls[2 * v + 1])),
                                patches: Tensor(shape: [8, 4], data: (patch[2 * v] + patch[2 * v + 1]).flatMap { $0 }))
        }
    }

    func loss(epoch: Int, student: [IBOTLoss.ViewLogits]? = nil) -> IBOTLoss.Result {
        var options = IBOT.Options(warmupTeacherTempEpochs: 30)
        options.teacherTemp = 0.07
        let temperatures = options.temperatures(at: TrainingClock(step: epoch, stepsPerEpoch: 1, epochs: 100))
        return IBOTLoss.compute(student: student ?? views(studentCls, studentPatch), teacher: views(teacherCls, teacherPatch), masks: masks,
                                center: Tensor(zeros: [1, 4]), center2: Tensor(zeros: [1, 4]), temperatures: temperatures, images: 2)
    }

    func testMatchesTheOfficialLossAtThreeEpochs() {
        for (epoch, cls, patch) in [(0, 5.990237, 4.927507), (10, 5.958179, 4.787215), (30, 5.869781, 4.600577)] as [(Int, Float, Float)] {
            let r = loss(epoch: epoch)
            XCTAssertEqual(r.cls, cls, accuracy: 1e-5 * cls, "epoch \(epoch)")
            XCTAssertEqual(r.patch, patch, accuracy: 1e-5 * patch, "epoch \(epoch)")
        }
    }

    func testTeacherTemperatureWarmup() {
        let o = IBOT.Options(warmupTeacherTempEpochs: 30)
        func at(_ e: Int) -> Float { o.temperatures(at: TrainingClock(step: e, stepsPerEpoch: 1, epochs: 100)).teacherPatch }
        XCTAssertEqual(at(0), 0.04)
        XCTAssertEqual(at(10), 0.050345, accuracy: 1e-6)
        XCTAssertEqual(at(29), 0.07, accuracy: 1e-7, "linspace includes its end: epoch 29 already has the final value")
        XCTAssertEqual(at(60), 0.07)
    }

    func testCentresAfterOneUpdate() {
        let r = loss(epoch: 0)
        let center = Parameter(Tensor(zeros: [1, 4]), trainable: false), center2 = Parameter(Tensor(zeros: [1, 4]), trainable: false)
        IBOTLoss.updateCenter(center, mean: r.clsSum.map { $0 / 4 })
        IBOTLoss.updateCenter(center2, mean: r.patchSum.map { $0 / 4 })
        for (a, b) in zip(center.value.data, [-0.0355, -0.04325, -0.022, 0.0185] as [Float]) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        for (a, b) in zip(center2.value.data, [0.012188, -0.005875, 0.01775, -0.004937] as [Float]) { XCTAssertEqual(a, b, accuracy: 1e-6) }
    }

    /// A constant student: L_cls = ln K exactly, L_mim = ln K × the share of crops with a masked patch (3 of 4).
    func testUniformStudentClosedForm() {
        let zero = (0..<2).map { _ in IBOTLoss.ViewLogits(cls: Tensor(zeros: [2, 4]), patches: Tensor(zeros: [8, 4])) }
        let r = loss(epoch: 5, student: zero)
        XCTAssertEqual(r.cls, log(4), accuracy: 1e-6)
        XCTAssertEqual(r.patch, 0.75 * log(4), accuracy: 1e-6)
    }

    /// Local crops (a constant student everywhere, l = 3): L_cls is still ln K (every term is), the
    /// patch loss is untouched, and each local crop's gradient is the closed form of main_ibot.py's `iBOTLoss`
    /// Σ_q (softmax(s/τ_s) − P_t(q)) / (τ_s · n(n + l − 1) · B) with softmax(s/τ_s) = 1/K.
    func testLocalCropsAddClsTermsWithTheOfficialNormaliser() {
        let zero = (0..<2).map { _ in IBOTLoss.ViewLogits(cls: Tensor(zeros: [2, 4]), patches: Tensor(zeros: [8, 4])) }
        let locals = (0..<3).map { _ in Tensor(zeros: [2, 4]) }
        var options = IBOT.Options(warmupTeacherTempEpochs: 30)
        options.teacherTemp = 0.07
        let t = options.temperatures(at: TrainingClock(step: 5, stepsPerEpoch: 1, epochs: 100))
        let teacher = views(teacherCls, teacherPatch)
        let r = IBOTLoss.compute(student: zero, studentLocal: locals, teacher: teacher, masks: masks, center: Tensor(zeros: [1, 4]),
                                 center2: Tensor(zeros: [1, 4]), temperatures: t, images: 2)
        XCTAssertEqual(r.cls, log(4), accuracy: 1e-6)
        XCTAssertEqual(r.patch, 0.75 * log(4), accuracy: 1e-6)
        XCTAssertEqual(r.studentLocalGrads.count, 3)
        let targets = teacher.map { IBOTLoss.teacherTargets($0.cls, center: Tensor(zeros: [1, 4]), temperature: t.teacherCls) }
        let scale = 1 / (0.1 * Float(2 * (2 + 3 - 1) * 2))
        for grad in r.studentLocalGrads {
            for b in 0..<2 { for k in 0..<4 {
                let expected = targets.reduce(Float(0)) { $0 + (0.25 - $1.data[b * 4 + k]) } * scale
                XCTAssertEqual(grad.data[b * 4 + k], expected, accuracy: 1e-6)
            } }
        }
        // Without local crops the global views' [CLS] gradient is the same formula over the other view only.
        let plain = IBOTLoss.compute(student: zero, teacher: teacher, masks: masks, center: Tensor(zeros: [1, 4]),
                                     center2: Tensor(zeros: [1, 4]), temperatures: t, images: 2)
        XCTAssertTrue(plain.studentLocalGrads.isEmpty)
        XCTAssertEqual(plain.studentGrads[1].cls.data[0], (0.25 - targets[0].data[0]) / (0.1 * Float(2 * 1 * 2)), accuracy: 1e-6)
    }

    /// Every student logit's gradient by central differences, scaled per tensor.
    func testGradientsMatchFiniteDifferences() {
        let base = views(studentCls, studentPatch)
        let analytic = loss(epoch: 3).studentGrads
        let h: Float = 1e-2
        for v in 0..<2 {
            for (which, tensor) in [("cls", base[v].cls), ("patches", base[v].patches)] {
                let grad = which == "cls" ? analytic[v].cls : analytic[v].patches
                let scale = grad.data.map(abs).max()!
                XCTAssertGreaterThan(scale, 1e-3, "view \(v) \(which) gets a gradient")
                for i in 0..<tensor.count {
                    func total(_ delta: Float) -> Float {
                        var s = base
                        var t = tensor
                        t.data[i] += delta
                        s[v] = which == "cls" ? .init(cls: t, patches: base[v].patches) : .init(cls: base[v].cls, patches: t)
                        let r = loss(epoch: 3, student: s)
                        return r.cls + r.patch
                    }
                    let numeric = (total(h) - total(-h)) / (2 * h)
                    XCTAssertEqual(grad.data[i], numeric, accuracy: 1e-2 * scale, "view \(v) \(which)[\(i)]")
                }
            }
        }
    }

    /// The collapse monitors from the loss's sums against the teacher's distributions computed here
    /// in Double (softmax of the logits over τ_t = 0.04, centres 0), and their closed forms.
    func testTeacherHealthMonitors() {
        let r = loss(epoch: 0)
        let rows = teacherCls.map { row -> [Double] in
            let z = row.map { Double($0) / 0.04 }, m = z.max()!
            let e = z.map { Foundation.exp($0 - m) }, total = e.reduce(0, +)
            return e.map { $0 / total }
        }
        func entropy(_ p: [Double]) -> Double { -p.map { $0 > 0 ? $0 * Foundation.log($0) : 0 }.reduce(0, +) }
        let mean = (0..<4).map { i in rows.map { $0[i] }.reduce(0, +) / 4 }
        let health = IBOTLoss.TeacherHealth(probabilitySum: r.teacherProbabilitySum, entropySum: r.teacherEntropySum, crops: 4)
        XCTAssertEqual(Double(health.entropy), rows.map(entropy).reduce(0, +) / 4, accuracy: 1e-5)
        XCTAssertEqual(Double(health.batchEntropy), entropy(mean), accuracy: 1e-5)
        XCTAssertGreaterThan(health.batchEntropy, health.entropy, "the mean of distributions has at least their mean entropy")

        // Uniform collapse: equal teacher logits give ln K for both.
        let flat = (0..<2).map { _ in IBOTLoss.ViewLogits(cls: Tensor(zeros: [2, 4]), patches: Tensor(zeros: [8, 4])) }
        let temperatures = IBOTLoss.Temperatures(student: 0.1, teacherCls: 0.04, teacherPatch: 0.04)
        let u = IBOTLoss.compute(student: flat, teacher: flat, masks: masks, center: Tensor(zeros: [1, 4]), center2: Tensor(zeros: [1, 4]),
                                 temperatures: temperatures, images: 2)
        let uniform = IBOTLoss.TeacherHealth(probabilitySum: u.teacherProbabilitySum, entropySum: u.teacherEntropySum, crops: 4)
        XCTAssertEqual(uniform.entropy, log(4), accuracy: 1e-6)
        XCTAssertEqual(uniform.batchEntropy, log(4), accuracy: 1e-6)

        // One-hot collapse: every crop's teacher sure of the same prototype gives 0 for both.
        let peaked = (0..<2).map { _ in IBOTLoss.ViewLogits(cls: Tensor(shape: [2, 4], data: [1, 0, 0, 0, 1, 0, 0, 0]), patches: Tensor(zeros: [8, 4])) }
        let o = IBOTLoss.compute(student: flat, teacher: peaked, masks: masks, center: Tensor(zeros: [1, 4]), center2: Tensor(zeros: [1, 4]),
                                 temperatures: temperatures, images: 2)
        let oneHot = IBOTLoss.TeacherHealth(probabilitySum: o.teacherProbabilitySum, entropySum: o.teacherEntropySum, crops: 4)
        XCTAssertEqual(oneHot.entropy, 0, accuracy: 1e-6)
        XCTAssertEqual(oneHot.batchEntropy, 0, accuracy: 1e-6)
    }
}
