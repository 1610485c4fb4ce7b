import Foundation
import Tensor

/// iBOT's loss on the heads' logits (bytedance/ibot main_ibot.py `iBOTLoss.forward`), for n global
/// views and l local crops. The teacher's logits (global views only) are centred and sharpened,
/// P_t = softmax((t − c) / τ_t); the student's are tempered by τ_s;
///   L_cls = 1/(n·(n+l−1)) · Σ_{q global} Σ_{v≠q, global or local} mean_b H(P_t^cls(q), P_s^cls(v))
///   L_mim = 1/n · Σ_q mean_b [Σ_i m_{q,b,i} · H(P_t^pat(q,i), P_s^pat(q,i)) / max(1, Σ_i m_{q,b,i})]
/// ([CLS]: other views only, the official `n_loss_terms` as normaliser; patches: the same view,
/// masked patches only, an unmasked crop adds 0 and still counts in the mean; local crops have
/// [CLS] only and no patch term).
public enum IBOTLoss {
    /// One global view's logits: [CLS] (B, K) and patches (B·N, K), rows image-major.
    public struct ViewLogits: Sendable {
        public let cls: Tensor
        public let patches: Tensor
        public init(cls: Tensor, patches: Tensor) { self.cls = cls; self.patches = patches }
    }

    public struct Temperatures: Sendable, Equatable {
        public var student: Float
        public var teacherCls: Float
        public var teacherPatch: Float
        public init(student: Float, teacherCls: Float, teacherPatch: Float) {
            self.student = student; self.teacherCls = teacherCls; self.teacherPatch = teacherPatch
        }
    }

    public struct Result: Sendable {
        public let cls: Float
        public let patch: Float
        /// dL/d student logits, per global view.
        public let studentGrads: [ViewLogits]
        /// dL/d the local crops' student [CLS] logits, per local crop (B, K).
        public let studentLocalGrads: [Tensor]
        /// Σ over views and images of the teacher's [CLS] logits, and of each image's mean patch
        /// logits: what the centres move toward (divided by views × images).
        public let clsSum: [Float]
        public let patchSum: [Float]
        /// Σ over views and images of the teacher's [CLS] distribution P_t, and of its entropy:
        /// the collapse monitors' statistics (`TeacherHealth`).
        public let teacherProbabilitySum: [Float]
        public let teacherEntropySum: Float
    }

    /// DINO's collapse monitors on the teacher's [CLS] distributions: the mean entropy of P_t per
    /// crop, and the entropy of the batch-mean P_t (nats). Uniform collapse puts both near ln K,
    /// one-hot collapse both near 0; healthy training has a high batch entropy (every prototype
    /// used) and a low per-crop one (each crop confident).
    public struct TeacherHealth: Sendable, Equatable {
        public var entropy: Float
        public var batchEntropy: Float

        /// From the batch's sums (`Result.teacherProbabilitySum`, `.teacherEntropySum`) over `crops` rows.
        public init(probabilitySum: [Float], entropySum: Float, crops: Int) {
            let n = Float(max(crops, 1))
            entropy = entropySum / n
            batchEntropy = IBOTLoss.entropy(probabilitySum.map { $0 / n })
        }
    }

    /// −Σ p ln p (nats), summed in Double; zero entries add nothing.
    public static func entropy<C: Collection<Float>>(_ p: C) -> Float {
        Float(p.reduce(0.0) { $1 > 0 ? $0 - Double($1) * Foundation.log(Double($1)) : $0 })
    }

    /// softmax((t − c) / τ) row by row.
    public static func teacherTargets(_ t: Tensor, center: Tensor, temperature: Float) -> Tensor {
        let k = t.lastDim
        precondition(center.count == k, "iBOT centre has \(center.count) entries for \(k) logits")
        var z = t
        z.withMutablePointer { zp in center.withPointer { c in
            for r in 0..<t.rows { for i in 0..<k { zp[r * k + i] = (zp[r * k + i] - c[i]) / temperature } }
        } }
        return SoftmaxOp.forward(z)
    }

    /// `masks[q]`: B·N flags (1: masked) of view q. `studentLocal`: the local crops' [CLS] logits
    /// (B, K) each. `images`: the batch the means run over (the whole batch when these rows are one
    /// shard of it).
    public static func compute(student: [ViewLogits], studentLocal: [Tensor] = [], teacher: [ViewLogits], masks: [[Float]],
                               center: Tensor, center2: Tensor, temperatures: Temperatures, images: Int) -> Result {
        let n = teacher.count, l = studentLocal.count
        precondition(n >= 2 && student.count == n && masks.count == n, "iBOT's loss needs the same n ≥ 2 global views on both sides")
        // [CLS] of every student crop, global then local: the official `student_cls.chunk(ncrops)`.
        let studentCls = student.map(\.cls) + studentLocal
        let clsTerms = Float(n * (n + l - 1) * images)
        let targetsCls = teacher.map { teacherTargets($0.cls, center: center, temperature: temperatures.teacherCls) }
        let targetsPatch = teacher.map { teacherTargets($0.patches, center: center2, temperature: temperatures.teacherPatch) }
        var clsLoss: Float = 0, patchLoss: Float = 0
        var dCls = studentCls.map { Tensor(zeros: $0.shape) }
        var dPatch = student.map { Tensor(zeros: $0.patches.shape) }
        for q in 0..<n {
            for v in 0..<(n + l) where v != q {
                let (loss, grad) = SoftTargetCrossEntropy.forwardBackward(student: studentCls[v], target: targetsCls[q],
                                                                          temperature: temperatures.student, normalizer: clsTerms)
                clsLoss += loss
                dCls[v].add(grad)
            }
            let b = student[q].cls.rows, tokens = student[q].patches.rows / b
            var weights = masks[q]
            for image in 0..<b {
                let count = weights[(image * tokens)..<((image + 1) * tokens)].reduce(0, +)
                for i in 0..<tokens { weights[image * tokens + i] /= max(1, count) }
            }
            let (loss, grad) = SoftTargetCrossEntropy.forwardBackward(student: student[q].patches, target: targetsPatch[q],
                                                                      temperature: temperatures.student, weights: weights,
                                                                      normalizer: Float(n * images))
            patchLoss += loss
            dPatch[q].add(grad)
        }
        let k = teacher[0].cls.lastDim
        var clsSum = [Float](repeating: 0, count: k), patchSum = [Float](repeating: 0, count: k)
        for view in teacher {
            view.cls.withPointer { t in for r in 0..<view.cls.rows { for i in 0..<k { clsSum[i] += t[r * k + i] } } }
            let b = view.cls.rows, tokens = view.patches.rows / b
            view.patches.withPointer { t in
                for image in 0..<b {
                    var mean = [Float](repeating: 0, count: k)
                    for token in 0..<tokens { for i in 0..<k { mean[i] += t[(image * tokens + token) * k + i] } }
                    for i in 0..<k { patchSum[i] += mean[i] / Float(tokens) }
                }
            }
        }
        var probabilitySum = [Float](repeating: 0, count: k), entropySum: Float = 0
        for targets in targetsCls {
            targets.withPointer { p in
                for r in 0..<targets.rows {
                    let row = UnsafeBufferPointer(start: p + r * k, count: k)
                    entropySum += entropy(row)
                    for i in 0..<k { probabilitySum[i] += row[i] }
                }
            }
        }
        return Result(cls: clsLoss, patch: patchLoss, studentGrads: zip(dCls.prefix(n), dPatch).map { ViewLogits(cls: $0, patches: $1) },
                      studentLocalGrads: Array(dCls.dropFirst(n)),
                      clsSum: clsSum, patchSum: patchSum, teacherProbabilitySum: probabilitySum, teacherEntropySum: entropySum)
    }

    /// c ← m·c + (1 − m)·mean, the centre update after a step (`iBOTLoss.update_center`).
    public static func updateCenter(_ center: Parameter, mean: [Float], momentum: Float = 0.9) {
        center.value.withMutablePointer { c in
            for i in 0..<mean.count { c[i] = c[i] * momentum + mean[i] * (1 - momentum) }
        }
    }
}
