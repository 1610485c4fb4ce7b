import Tensor

/// `nn.LayerNorm(dim, eps)` with affine weight and bias.
public struct LayerNorm: Sendable {
    public let weight: Parameter
    public let bias: Parameter
    public let eps: Float

    public struct Cache: Sendable {
        let input: Tensor
        let saved: LayerNormOp.Saved
    }

    public init(_ dim: Int, eps: Float, name: String, into params: inout ParameterList) {
        weight = Parameter(Tensor(repeating: 1, shape: [dim]))
        bias = Parameter(Tensor(zeros: [dim]))
        self.eps = eps
        params.add("\(name).weight", weight)
        params.add("\(name).bias", bias)
    }

    public func forward(_ x: Tensor) -> (Tensor, Cache) {
        let (y, saved) = LayerNormOp.forward(x, weight: weight.value, bias: bias.value, eps: eps)
        return (y, Cache(input: x, saved: saved))
    }

    /// Inference: the output alone.
    public func infer(_ x: Tensor) -> Tensor {
        LayerNormOp.forward(x, weight: weight.value, bias: bias.value, eps: eps).0
    }

    /// Inference on `rows` rows of `x` written into `y` (the workspace path).
    func infer(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        LayerNormOp.infer(x, rows: rows, weight.shape[0], weight: weight.value, bias: bias.value, eps: eps, into: y)
    }

    /// `residual`, when given, is added to dx (the gradient through a skip connection).
    public func backward(_ dy: Tensor, cache: Cache, adding residual: Tensor? = nil) -> Tensor {
        weight.withGradPointer { gw in bias.withGradPointer { gb in
            LayerNormOp.backward(dy, input: cache.input, saved: cache.saved, weight: weight.value,
                                 weightGrad: gw, biasGrad: gb, adding: residual)
        } }
    }
}
