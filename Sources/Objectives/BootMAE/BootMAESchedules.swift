import Foundation

/// The momentum encoder's EMA decay, set once per epoch (BootMAE `adjust_ema_momentum`):
/// linear from `start` to `end` over the first `rampEpochs`, then `end`. The official recipe is
/// 0.999 → 0.9999 over 100 of 800 epochs; runs of other lengths keep that shape. This is the Large
/// script's schedule: the Base script's `--model_ema_dynamic` raises it further, to 0.99999 between
/// epochs 100 and 400, which is not implemented.
public struct EMASchedule: Sendable, Equatable, Codable {
    public var start: Double
    public var end: Double
    public var rampEpochs: Double

    public init(start: Double = 0.999, end: Double = 0.9999, rampEpochs: Double) {
        self.start = start; self.end = end; self.rampEpochs = rampEpochs
    }

    public func decay(epoch: Int) -> Double {
        guard rampEpochs > 0 else { return end }
        return start + min(Double(epoch) / rampEpochs, 1) * (end - start)
    }
}

/// BootMAE's feature-loss weight λ, stepped per epoch: min(4·w·(e+1)/epochs, w) — a linear ramp
/// that reaches w after the first quarter of training.
public func featureLossWeight(epoch: Int, epochs: Int, weight: Double) -> Double {
    min(4 * weight * Double(epoch + 1) / Double(max(epochs, 1)), weight)
}
