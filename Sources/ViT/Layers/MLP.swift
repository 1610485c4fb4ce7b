import Tensor

/// fc1 → exact GELU → fc2.
public struct MLP: Sendable {
    public let fc1: Linear
    public let fc2: Linear

    /// GELU's derivative is saved instead of fc1's output: backward needs only that.
    public struct Cache: Sendable { let input: Tensor, activated: Tensor, derivative: Tensor }

    public init(dim: Int, hidden: Int, name: String, into params: inout ParameterList) {
        fc1 = Linear(dim, hidden, name: "\(name).fc1", into: &params)
        fc2 = Linear(hidden, dim, name: "\(name).fc2", into: &params)
    }

    /// `residual`, when given, is added to the output (the block's skip connection, for free).
    public func forward(_ x: Tensor, adding residual: Tensor? = nil) -> (Tensor, Cache) {
        let (g, derivative) = GELUOp.forwardWithDerivative(fc1.forward(x))
        return (fc2.forward(g, adding: residual), Cache(input: x, activated: g, derivative: derivative))
    }

    /// Inference: the same output without anything kept for backward.
    public func infer(_ x: Tensor, adding residual: Tensor? = nil) -> Tensor {
        fc2.forward(GELUOp.forward(fc1.forward(x)), adding: residual)
    }

    public func backward(_ dy: Tensor, cache: Cache) -> Tensor {
        let dg = fc2.backward(dy, input: cache.activated)
        let dh = GELUOp.backward(dg, derivative: cache.derivative)
        return fc1.backward(dh, input: cache.input)
    }
}
