import Tensor

/// `torch.nn.utils.weight_norm(nn.Linear(in, out, bias=…))`: the weight is W = g · V / ‖V‖ with
/// the norm over each output row (dim 0), stored as `<name>.weight_g` (out, 1) and
/// `<name>.weight_v` (out, in). iBOT's projection head ends in one without bias whose g is filled
/// with 1 and frozen when `norm_last_layer` is set (bytedance/ibot models/head.py `last_layer`).
/// The norm has no eps, as in PyTorch: a zero row of V is an error there too.
public struct WeightNormLinear: Sendable {
    /// g, (out, 1); not trainable when the scale is frozen.
    public let weightG: Parameter
    /// V, (out, in).
    public let weightV: Parameter
    public let bias: Parameter?

    public struct Cache: Sendable {
        let input: Tensor
        /// W as used by the forward pass, and ‖V‖ of each row.
        let weight: Tensor
        let norms: [Float]
    }

    /// g starts at 1 (iBOT fills it so; PyTorch's own wrapper copies ‖V‖ of the wrapped weight),
    /// V and the bias at 0 for the model's initialisation to fill. `trainableScale: false` is
    /// iBOT's `norm_last_layer`.
    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = false, trainableScale: Bool = true,
                name: String, into params: inout ParameterList) {
        weightG = Parameter(Tensor(repeating: 1, shape: [outFeatures, 1]), trainable: trainableScale)
        weightV = Parameter(Tensor(zeros: [outFeatures, inFeatures]))
        params.add("\(name).weight_g", weightG)
        params.add("\(name).weight_v", weightV)
        if bias {
            let b = Parameter(Tensor(zeros: [outFeatures]))
            params.add("\(name).bias", b)
            self.bias = b
        } else {
            self.bias = nil
        }
    }

    public var inFeatures: Int { weightV.shape[1] }
    public var outFeatures: Int { weightV.shape[0] }

    /// W = V · (g / ‖V‖) row by row (PyTorch's `_weight_norm` order of operations), and the norms.
    public func normalizedWeight() -> (weight: Tensor, norms: [Float]) {
        let (out, inDim) = (outFeatures, inFeatures)
        var norms = [Float](repeating: 0, count: out)
        let w = Tensor(shape: [out, inDim]) { w in
            weightV.value.withPointer { v in weightG.value.withPointer { g in
                for r in 0..<out {
                    let row = v + r * inDim
                    let norm = Vector.dot(row, row, inDim).squareRoot()
                    norms[r] = norm
                    let scale = g[r] / norm
                    for i in 0..<inDim { w[r * inDim + i] = row[i] * scale }
                }
            } }
        }
        return (w, norms)
    }

    public func forward(_ x: Tensor) -> (Tensor, Cache) {
        let (w, norms) = normalizedWeight()
        return (LinearOp.forward(x, weight: w, bias: bias?.value), Cache(input: x, weight: w, norms: norms))
    }

    /// Inference: the output alone.
    public func infer(_ x: Tensor) -> Tensor {
        LinearOp.forward(x, weight: normalizedWeight().weight, bias: bias?.value)
    }

    /// Returns dx; accumulates the gradients of V, of g when it is trainable, and of the bias.
    /// With dW = dyᵀ·x and u = V/‖V‖ per row: dg = dW·u and dV = (g/‖V‖)·(dW − dg·u).
    public func backward(_ dy: Tensor, cache: Cache) -> Tensor {
        let (out, inDim) = (outFeatures, inFeatures)
        var dW = Tensor(zeros: [out, inDim])
        let dx: Tensor
        if let bias {
            dx = bias.withGradPointer { gb in LinearOp.backward(dy, input: cache.input, weight: cache.weight, weightGrad: &dW, biasGrad: gb) }
        } else {
            dx = LinearOp.backward(dy, input: cache.input, weight: cache.weight, weightGrad: &dW, biasGrad: nil)
        }
        var dg = [Float](repeating: 0, count: out)
        dW.withPointer { dw in weightV.value.withPointer { v in weightG.value.withPointer { g in
            weightV.withGradPointer { gv in
                for r in 0..<out {
                    let (vr, dwr, gvr) = (v + r * inDim, dw + r * inDim, gv + r * inDim)
                    let norm = cache.norms[r]
                    dg[r] = Vector.dot(dwr, vr, inDim) / norm
                    let (a, b) = (g[r] / norm, dg[r] / norm)
                    for i in 0..<inDim { gvr[i] += a * (dwr[i] - vr[i] * b) }
                }
            }
        } } }
        if weightG.trainable { weightG.withGradPointer { for r in 0..<out { $0[r] += dg[r] } } }
        return dx
    }
}
