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

    /// Inference: y += fc2(GELU(fc1(x))) for `rows` rows, y holding the skip connection; the
    /// hidden activations live in the workspace and GELU is applied to them in place.
    /// With `accumulate: false` y is overwritten (it may be x itself: fc1 reads x before fc2 writes y).
    func infer(_ x: UnsafePointer<Float>, rows: Int, addingInto y: UnsafeMutablePointer<Float>, accumulate: Bool = true,
               workspace: InferenceWorkspace) {
        let hidden = workspace.hidden(rows: rows, width: fc1.outFeatures)
        fc1.infer(x, rows: rows, into: hidden)
        GELUOp.applyInPlace(hidden, count: rows * fc1.outFeatures)
        fc2.infer(hidden, rows: rows, into: y, accumulate: accumulate)
    }

    public func backward(_ dy: Tensor, cache: Cache) -> Tensor {
        let dg = fc2.backward(dy, input: cache.activated)
        let dh = GELUOp.backward(dg, derivative: cache.derivative)
        return fc1.backward(dh, input: cache.input)
    }
}
