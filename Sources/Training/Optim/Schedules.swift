import Foundation

/// Per-iteration cosine schedule with linear warmup from 0 (BootMAE and iBOT `utils.cosine_scheduler`):
/// step i < W: base·i/(W−1), np.linspace(0, base, W), so 0 at step 0 even when W = 1;
/// after: final + ½(base − final)(1 + cos(π·(i−W)/(T−W))).
public struct CosineSchedule: Sendable, Equatable, Codable {
    public var base: Double
    public var final: Double
    public var totalSteps: Int
    public var warmupSteps: Int

    public init(base: Double, final: Double, totalSteps: Int, warmupSteps: Int) {
        self.base = base; self.final = final; self.totalSteps = totalSteps; self.warmupSteps = min(warmupSteps, totalSteps)
    }

    public func value(at step: Int) -> Double {
        if step < warmupSteps {
            return warmupSteps > 1 ? base * Double(step) / Double(warmupSteps - 1) : 0
        }
        let span = max(totalSteps - warmupSteps, 1)
        let progress = Double(min(step - warmupSteps, span)) / Double(span)
        return final + 0.5 * (base - final) * (1 + cos(Double.pi * progress))
    }
}
