import Tensor
import ViT

/// iBOT's projection head, one module for [CLS] and patch tokens (the README recipes' shared head;
/// bytedance/ibot models/head.py `iBOTHead`, a `DINOHead` with `nlayers=3`, no norm layer):
/// Linear(D, hidden) → GELU → Linear(hidden, hidden) → GELU → Linear(hidden, bottleneck)
/// → L2-normalize → weight-normalized Linear(bottleneck, K, no bias). With g frozen at 1
/// (`norm_last_layer`) every logit is a cosine in [−1, 1].
public struct IBOTHead: Sendable {
    public let fc1: Linear
    public let fc2: Linear
    public let fc3: Linear
    public let lastLayer: WeightNormLinear

    public struct Cache: Sendable {
        let input: Tensor
        let hidden1: Tensor, derivative1: Tensor
        let hidden2: Tensor, derivative2: Tensor
        let bottleneck: Tensor
        let normalized: Tensor
        let l2: L2NormalizeOp.Saved
        let last: WeightNormLinear.Cache
    }

    /// Names as the official module's state dict: `<name>.mlp.0`, `.mlp.2`, `.mlp.4`, `.last_layer`.
    public init(dim: Int, hidden: Int, bottleneck: Int, outDim: Int, normLastLayer: Bool, name: String,
                into params: inout ParameterList) {
        fc1 = Linear(dim, hidden, name: "\(name).mlp.0", into: &params)
        fc2 = Linear(hidden, hidden, name: "\(name).mlp.2", into: &params)
        fc3 = Linear(hidden, bottleneck, name: "\(name).mlp.4", into: &params)
        lastLayer = WeightNormLinear(bottleneck, outDim, bias: false, trainableScale: !normLastLayer,
                                     name: "\(name).last_layer", into: &params)
    }

    /// Tokens (…, D) → logits (…, K).
    public func forward(_ x: Tensor) -> (Tensor, Cache) {
        let (h1, d1) = GELUOp.forwardWithDerivative(fc1.forward(x))
        let (h2, d2) = GELUOp.forwardWithDerivative(fc2.forward(h1))
        let z = fc3.forward(h2)
        let (normalized, l2) = L2NormalizeOp.forward(z)
        let (logits, last) = lastLayer.forward(normalized)
        return (logits, Cache(input: x, hidden1: h1, derivative1: d1, hidden2: h2, derivative2: d2, bottleneck: z,
                              normalized: normalized, l2: l2, last: last))
    }

    /// Logits alone (the teacher: nothing kept for a backward pass).
    public func infer(_ x: Tensor) -> Tensor {
        let h1 = GELUOp.forward(fc1.forward(x))
        let h2 = GELUOp.forward(fc2.forward(h1))
        return lastLayer.infer(L2NormalizeOp.forward(fc3.forward(h2)).y)
    }

    /// Returns d tokens; accumulates every trainable gradient of the head.
    public func backward(_ dLogits: Tensor, cache: Cache) -> Tensor {
        let dNormalized = lastLayer.backward(dLogits, cache: cache.last)
        let dz = L2NormalizeOp.backward(dNormalized, output: cache.normalized, saved: cache.l2)
        let dh2 = GELUOp.backward(fc3.backward(dz, input: cache.hidden2), derivative: cache.derivative2)
        let dh1 = GELUOp.backward(fc2.backward(dh2, input: cache.hidden1), derivative: cache.derivative1)
        return fc1.backward(dh1, input: cache.input)
    }
}
