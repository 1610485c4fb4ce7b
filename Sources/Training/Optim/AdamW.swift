import Foundation
import Tensor

/// AdamW with decoupled weight decay, exactly as `torch.optim.AdamW`:
///   p ← p·(1 − lr·λ·[decay]);  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²
///   p ← p − (lr·s / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε)
/// where s is the parameter's lr scale (layer-wise decay) and [decay] its weight-decay group.
public struct AdamW: Sendable {
    public struct Group: Sendable, Equatable {
        public var decay: Bool
        public var lrScale: Float
        public init(decay: Bool, lrScale: Float = 1) { self.decay = decay; self.lrScale = lrScale }
    }

    public var beta1: Float
    public var beta2: Float
    public var eps: Float
    public var weightDecay: Float
    /// Steps taken (t of the bias corrections).
    public internal(set) var steps = 0
    /// First and second moments, one pair per trainable parameter, in `names` order.
    public private(set) var names: [String] = []
    var groups: [Group] = []
    /// Per parameter, the steps it sat out (frozen): its own step count, which its bias
    /// corrections use, is `steps` minus these (PyTorch keeps a step count per tensor).
    public private(set) var skipped: [Int] = []
    var m: [[Float]] = []
    var v: [[Float]] = []

    public init(parameters: ParameterList, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8,
                weightDecay: Float = 0.05, group: (String, Parameter) -> Group) {
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        for (name, p) in parameters.entries where p.trainable {
            names.append(name)
            groups.append(group(name, p))
            m.append([Float](repeating: 0, count: p.value.count))
            v.append([Float](repeating: 0, count: p.value.count))
        }
        skipped = [Int](repeating: 0, count: names.count)
    }

    /// The official no-decay rules: 1-D tensors and biases never decay; BootMAE also exempts
    /// `cls_token` and `pos_embed` (mask tokens do decay); MAE exempts nothing else.
    public static func officialDecay(_ name: String, _ p: Parameter, exempt: Set<String>) -> Bool {
        !(p.shape.count == 1 || name.hasSuffix(".bias") || exempt.contains(name))
    }

    /// One update. `weightDecay` replaces the configured decay for this step (a scheduled decay);
    /// `frozen` tensors are left as they are, moments included.
    public mutating func step(_ parameters: ParameterList, lr: Float, weightDecay scheduled: Float? = nil, frozen: Set<String> = []) {
        steps += 1
        let c1 = 1 - pow(beta1, Float(steps)), c2 = (1 - pow(beta2, Float(steps))).squareRoot()
        let (b1, b2, eps) = (beta1, beta2, eps)
        let weightDecay = scheduled ?? self.weightDecay
        for (k, name) in names.enumerated() {
            guard let p = parameters[name] else { preconditionFailure("optimizer: parameter \(name) disappeared") }
            if frozen.contains(name) { skipped[k] += 1; continue }
            var (c1, c2) = (c1, c2)
            if skipped[k] > 0 {
                let t = Float(steps - skipped[k])
                (c1, c2) = (1 - pow(beta1, t), (1 - pow(beta2, t)).squareRoot())
            }
            let g = groups[k]
            let rate = lr * g.lrScale
            let shrink = g.decay ? 1 - rate * weightDecay : 1
            let stepSize = rate / c1
            let n = p.value.count
            p.grad.withPointer { gp in p.value.withMutablePointer { w in
                m[k].withUnsafeMutableBufferPointer { mb in v[k].withUnsafeMutableBufferPointer { vb in
                    let mp = mb.baseAddress!, vp = vb.baseAddress!
                    for i in 0..<n {
                        let gi = gp[i]
                        mp[i] = b1 * mp[i] + (1 - b1) * gi
                        vp[i] = b2 * vp[i] + (1 - b2) * gi * gi
                        w[i] = w[i] * shrink - stepSize * mp[i] / (vp[i].squareRoot() / c2 + eps)
                    }
                } }
            } }
        }
    }

    // MARK: State for checkpoints

    /// Moments as named tensors ("m.<name>", "v.<name>") for saving.
    public func stateTensors(shapes: ParameterList) -> [(String, Tensor)] {
        var out: [(String, Tensor)] = []
        for (k, name) in names.enumerated() {
            let shape = shapes[name]!.shape
            out.append(("m.\(name)", Tensor(shape: shape, data: m[k])))
            out.append(("v.\(name)", Tensor(shape: shape, data: v[k])))
        }
        return out
    }

    /// The parameters that sat out steps, with how many (empty when none did).
    public var skippedSteps: [String: Int] {
        Dictionary(uniqueKeysWithValues: zip(names, skipped).filter { $0.1 > 0 })
    }

    public mutating func restore(steps: Int, skipped: [String: Int] = [:], tensor: (String) throws -> Tensor) rethrows {
        self.steps = steps
        self.skipped = names.map { skipped[$0] ?? 0 }
        for (k, name) in names.enumerated() {
            m[k] = try tensor("m.\(name)").data
            v[k] = try tensor("v.\(name)").data
        }
    }
}
