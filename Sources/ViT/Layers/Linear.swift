import Tensor

/// A fully connected layer, `nn.Linear` layout: weight (out, in), optional bias (out).
public struct Linear: Sendable {
    public let weight: Parameter
    public let bias: Parameter?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, name: String, into params: inout ParameterList) {
        weight = Parameter(Tensor(zeros: [outFeatures, inFeatures]))
        params.add("\(name).weight", weight)
        if bias {
            let b = Parameter(Tensor(zeros: [outFeatures]))
            params.add("\(name).bias", b)
            self.bias = b
        } else {
            self.bias = nil
        }
    }

    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

    /// y = x·Wᵀ + b, plus `residual` when given (a skip connection, added in the same pass).
    public func forward(_ x: Tensor, adding residual: Tensor? = nil) -> Tensor {
        LinearOp.forward(x, weight: weight, bias: bias?.value, adding: residual)
    }

    /// Inference into a buffer: y = x·Wᵀ + b, or with `accumulate` y += x·Wᵀ + b (y holds a
    /// skip connection that is updated in place).
    func infer(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        LinearOp.infer(x, rows: rows, weight: weight, bias: bias?.value, into: y, accumulate: accumulate)
    }

    /// Accumulates weight and bias gradients; returns dx.
    public func backward(_ dy: Tensor, input x: Tensor) -> Tensor {
        precondition(!weight.isPackedOnly, "backward through a weight packed for inference only")
        if let bias {
            return bias.withGradPointer { gb in
                LinearOp.backward(dy, input: x, weight: weight.value, weightGrad: &weight.grad, biasGrad: gb)
            }
        }
        return LinearOp.backward(dy, input: x, weight: weight.value, weightGrad: &weight.grad, biasGrad: nil)
    }
}
