import XCTest
import Foundation
import Tensor
import Training
import Objectives
import TestSupport

final class OptimizerTests: XCTestCase {
    /// Three AdamW steps (varying lr, one decayed and one undecayed tensor) against torch.optim.AdamW.
    func testAdamWMatchesPyTorch() throws {
        let f = try Fixtures.file("optim/adamw.safetensors")
        var params = ParameterList()
        let w = Parameter(try f.tensor("w0")), b = Parameter(try f.tensor("b0"))
        params.add("w", w)
        params.add("bias", b)
        var adam = AdamW(parameters: params, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.05) { name, p in
            .init(decay: AdamW.officialDecay(name, p, exempt: []))
        }
        for (k, lr) in try f.tensor("lrs").data.enumerated() {
            w.grad = try f.tensor("gw\(k)")
            b.grad = try f.tensor("gb\(k)")
            adam.step(params, lr: lr)
            XCTAssertLessThanOrEqual(relativeError(w.value, try f.tensor("w\(k + 1)")), 1e-6, "w after step \(k + 1)")
            XCTAssertLessThanOrEqual(relativeError(b.value, try f.tensor("b\(k + 1)")), 1e-6, "b after step \(k + 1)")
        }
    }

    /// A tensor frozen for some steps is left as it was, moments included, and then steps as if
    /// its first unfrozen step were its first (PyTorch keeps a step count per tensor; iBOT freezes
    /// its last layer in epoch 0). A scheduled weight decay replaces the configured one.
    func testFrozenTensorsKeepTheirOwnStepCount() {
        func makeParams() -> (ParameterList, Parameter, Parameter) {
            var params = ParameterList()
            let a = Parameter(Tensor(shape: [2, 2], data: [1, -2, 3, -4])), b = Parameter(Tensor(shape: [2, 2], data: [0.5, 0.25, -1, 2]))
            params.add("a", a)
            params.add("last_layer.weight_v", b)
            return (params, a, b)
        }
        let (params, a, b) = makeParams()
        var adam = AdamW(parameters: params, weightDecay: 0.05) { _, _ in .init(decay: true) }
        let grads: [[Float]] = [[0.1, -0.2, 0.3, 0.4], [0.5, 0.1, -0.1, 0.2], [-0.3, 0.2, 0.1, 0.05]]
        let frozenStart = b.value
        for k in 0..<2 {
            a.grad = Tensor(shape: [2, 2], data: grads[k]); b.grad = Tensor(shape: [2, 2], data: grads[k])
            adam.step(params, lr: 0.1, frozen: ["last_layer.weight_v"])
        }
        XCTAssertEqual(b.value, frozenStart, "a frozen tensor does not move (no decay either)")
        XCTAssertEqual(adam.skippedSteps, ["last_layer.weight_v": 2])
        a.grad = Tensor(shape: [2, 2], data: grads[2]); b.grad = Tensor(shape: [2, 2], data: grads[2])
        adam.step(params, lr: 0.1, weightDecay: 0.4)
        // b's first real step, from a fresh optimizer: the same bits.
        let (fresh, _, freshB) = makeParams()
        var reference = AdamW(parameters: fresh, weightDecay: 0.4) { _, _ in .init(decay: true) }
        freshB.grad = Tensor(shape: [2, 2], data: grads[2])
        reference.step(fresh, lr: 0.1, frozen: ["a"])
        XCTAssertEqual(b.value, freshB.value)
    }

    func testOfficialNoDecayRules() {
        let matrix = Parameter(Tensor(zeros: [2, 2])), vector = Parameter(Tensor(zeros: [2])), token = Parameter(Tensor(zeros: [1, 1, 2]))
        XCTAssertTrue(AdamW.officialDecay("blocks.0.mlp.fc1.weight", matrix, exempt: []))
        XCTAssertFalse(AdamW.officialDecay("blocks.0.norm1.weight", vector, exempt: []))
        XCTAssertFalse(AdamW.officialDecay("head.bias", vector, exempt: []))
        // BootMAE exempts cls_token but decays its mask tokens; MAE decays both.
        XCTAssertFalse(AdamW.officialDecay("cls_token", token, exempt: ["cls_token", "pos_embed"]))
        XCTAssertTrue(AdamW.officialDecay("mask_token_1", token, exempt: ["cls_token", "pos_embed"]))
        XCTAssertTrue(AdamW.officialDecay("cls_token", token, exempt: []))
    }
}

/// Schedules against their closed forms (BootMAE: `utils.py` `cosine_scheduler` and
/// `adjust_ema_momentum`, the feature-weight ramp of `run_pretraining.py` `train_one_epoch`).
final class ScheduleTests: XCTestCase {
    func testCosineScheduleWarmupAndEnds() {
        let s = CosineSchedule(base: 1e-3, final: 1e-5, totalSteps: 1000, warmupSteps: 101)
        XCTAssertEqual(s.value(at: 0), 0)
        XCTAssertEqual(s.value(at: 50), 1e-3 * 50 / 100, accuracy: 1e-12)   // np.linspace(0, base, W)
        XCTAssertEqual(s.value(at: 100), 1e-3 * 100 / 100, accuracy: 1e-12)
        XCTAssertEqual(s.value(at: 101), 1e-3, accuracy: 1e-12)
        let mid = 101 + (1000 - 101) / 2
        XCTAssertEqual(s.value(at: mid), 1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + cos(Double.pi * Double(mid - 101) / 899)), accuracy: 1e-12)
        XCTAssertEqual(s.value(at: 1000), 1e-5, accuracy: 1e-12)
        // np.linspace(0, base, 1) is [0]: a one-step warmup is a step at lr 0; no warmup starts at base.
        XCTAssertEqual(CosineSchedule(base: 1e-3, final: 0, totalSteps: 8, warmupSteps: 1).value(at: 0), 0)
        XCTAssertEqual(CosineSchedule(base: 1e-3, final: 0, totalSteps: 8, warmupSteps: 1).value(at: 1), 1e-3, accuracy: 1e-15)
        XCTAssertEqual(CosineSchedule(base: 1e-3, final: 0, totalSteps: 8, warmupSteps: 0).value(at: 0), 1e-3, accuracy: 1e-15)
    }

    func testEMAScheduleOfficialShape() {
        let e = EMASchedule(start: 0.999, end: 0.9999, rampEpochs: 100)
        XCTAssertEqual(e.decay(epoch: 0), 0.999)
        XCTAssertEqual(e.decay(epoch: 50), 0.999 + 0.5 * 0.0009, accuracy: 1e-12)
        XCTAssertEqual(e.decay(epoch: 100), 0.9999, accuracy: 1e-12)
        XCTAssertEqual(e.decay(epoch: 400), 0.9999, accuracy: 1e-12)
    }

    func testFeatureWeightRampsOverTheFirstQuarter() {
        XCTAssertEqual(featureLossWeight(epoch: 0, epochs: 801, weight: 1), 4.0 / 801, accuracy: 1e-12)
        XCTAssertEqual(featureLossWeight(epoch: 99, epochs: 801, weight: 1), 400.0 / 801, accuracy: 1e-12)
        XCTAssertEqual(featureLossWeight(epoch: 200, epochs: 801, weight: 1), 1)
        XCTAssertEqual(featureLossWeight(epoch: 700, epochs: 801, weight: 1), 1)
    }
}
