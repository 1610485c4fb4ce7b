import Tensor

/// fc1 → exact GELU → fc2.
public struct MLP: Sendable {
    public let fc1: Linear
    public let fc2: Linear

    public struct Cache: Sendable { let input: Tensor, hidden: Tensor, activated: Tensor }

    public init(dim: Int, hidden: Int, name: String, into params: inout ParameterList) {
        fc1 = Linear(dim, hidden, name: "\(name).fc1", into: &params)
        fc2 = Linear(hidden, dim, name: "\(name).fc2", into: &params)
    }

    public func forward(_ x: Tensor) -> (Tensor, Cache) {
        let h = fc1.forward(x)
        let g = GELUOp.forward(h)
        return (fc2.forward(g), Cache(input: x, hidden: h, activated: g))
    }

    public func backward(_ dy: Tensor, cache: Cache) -> Tensor {
        let dg = fc2.backward(dy, input: cache.activated)
        let dh = GELUOp.backward(dg, input: cache.hidden)
        return fc1.backward(dh, input: cache.input)
    }
}
