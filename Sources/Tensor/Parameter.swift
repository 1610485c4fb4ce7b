/// A learnable tensor and its gradient. A reference type on purpose: layers are value types that
/// share their parameters with the model's parameter list, the optimizer and the checkpoint code,
/// and gradients accumulate in place during backward.
public final class Parameter: @unchecked Sendable {
    public var value: Tensor
    /// Allocated on first use, so inference-only models never pay for gradients.
    public lazy var grad: Tensor = Tensor(zeros: value.shape)
    /// False for fixed tables (sin-cos positional embeddings) that training must not touch.
    public let trainable: Bool

    public init(_ value: Tensor, trainable: Bool = true) {
        self.value = value
        self.trainable = trainable
    }

    public var shape: [Int] { value.shape }

    public func zeroGrad() {
        grad.withMutablePointer { $0.initialize(repeating: 0, count: value.count) }
    }

    /// Runs `body` with a pointer to the gradient storage (for kernels that accumulate into it).
    @inlinable
    public func withGradPointer<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try grad.withMutablePointer(body)
    }
}

/// Parameters in a fixed order under their checkpoint names ("blocks.0.attn.qkv.weight", ...).
public struct ParameterList: Sendable {
    public private(set) var entries: [(name: String, parameter: Parameter)] = []
    private var index: [String: Int] = [:]

    public init() {}

    public mutating func add(_ name: String, _ parameter: Parameter) {
        precondition(index[name] == nil, "duplicate parameter name \(name)")
        index[name] = entries.count
        entries.append((name, parameter))
    }

    public mutating func append(contentsOf other: ParameterList, prefix: String = "") {
        for (name, p) in other.entries { add(prefix + name, p) }
    }

    public subscript(name: String) -> Parameter? { index[name].map { entries[$0].parameter } }
    public var names: [String] { entries.map(\.name) }
    public var count: Int { entries.count }

    public func zeroGrads() { for (_, p) in entries where p.trainable { p.zeroGrad() } }
}
