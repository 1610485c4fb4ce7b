/// A learnable tensor and its gradient. A reference type on purpose: layers are value types that
/// share their parameters with the model's parameter list, the optimizer and the checkpoint code,
/// and gradients accumulate in place during backward.
public final class Parameter: @unchecked Sendable {
    /// The values. Any new value (or in-place change) drops `packed`, so it can never go stale.
    public var value: Tensor { didSet { packed = nil } }
    /// This weight in the inference GEMM's layout, after `packForInference`.
    public private(set) var packed: PackedMatrix?
    /// Allocated on first use, so inference-only models never pay for gradients.
    public lazy var grad: Tensor = Tensor(zeros: value.shape)
    /// False for fixed tables (sin-cos positional embeddings) that training must not touch.
    public let trainable: Bool

    public init(_ value: Tensor, trainable: Bool = true) {
        self.value = value
        self.trainable = trainable
    }

    /// The weight's shape (also after its plain values were released for the packed copy).
    public var shape: [Int] { packed?.shape ?? value.shape }
    /// Elements of the weight, however it is stored.
    public var elementCount: Int { shape.reduce(1, *) }

    /// Packs this (out, in) weight for inference (`LinearOp.forward` / `infer` then use the
    /// packed GEMM: fp32 AVX-512, or bf16 where the CPU has bf16 instructions and `precision` asks).
    /// With `releasingPlainValues` the plain copy is freed, so a server holds its weights once; such a
    /// parameter serves inference only (no backward, no checkpoint saving). Returns false, changing
    /// nothing, where the CPU cannot run a packed kernel (or only a packed copy of another precision is left).
    @discardableResult
    public func packForInference(releasingPlainValues: Bool, precision: InferencePrecision = .fp32) -> Bool {
        packForInference(releasingPlainValues: releasingPlainValues, kernel: InferenceKernel.best(for: precision))
    }

    /// `packForInference` for a given kernel (the bench compares kernels); false for BLAS or a
    /// kernel this CPU does not run.
    @discardableResult
    public func packForInference(releasingPlainValues: Bool, kernel: InferenceKernel) -> Bool {
        if let packed, packed.kernel == kernel { return true }
        guard value.count > 0, let matrix = PackedMatrix(value, kernel: kernel) else { return false }
        if releasingPlainValues { value = Tensor(shape: [0], data: []) }
        packed = matrix  // after `value`: its didSet clears `packed`
        return true
    }

    /// Sets every element, in order, to the next value of `next` (initialisation). One new tensor:
    /// element by element through `value` would copy the whole tensor for each element, because
    /// `value` has an observer, which made initialising a large model take hours.
    public func fill(_ next: () -> Float) {
        let n = value.count
        value = Tensor(shape: value.shape) { out in for i in 0..<n { out[i] = next() } }
    }

    /// True when only the packed copy is left.
    public var isPackedOnly: Bool { packed != nil && value.count == 0 }

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
