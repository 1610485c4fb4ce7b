import Foundation

/// A dense float32 tensor: a shape and its elements in contiguous row-major order.
///
/// Storage is a Swift array, so copies are copy-on-write and a `Tensor` can be passed around
/// like any value. Kernels reach the elements through unsafe buffer pointers (see `Kernels/`).
public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count,
                     "Tensor: shape \(shape) needs \(shape.reduce(1, *)) elements, got \(data.count)")
        self.shape = shape
        self.data = data
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, data: [Float](repeating: 0, count: shape.reduce(1, *)))
    }

    public init(repeating value: Float, shape: [Int]) {
        self.init(shape: shape, data: [Float](repeating: value, count: shape.reduce(1, *)))
    }

    /// A tensor whose storage is filled by `body` (no zero-initialisation pass).
    public init(shape: [Int], unsafeUninitialized body: (UnsafeMutablePointer<Float>) -> Void) {
        let n = shape.reduce(1, *)
        self.shape = shape
        self.data = [Float](unsafeUninitializedCapacity: n) { buffer, count in
            if n > 0 { body(buffer.baseAddress!) }
            count = n
        }
    }

    /// A tensor whose elements are unspecified until written: for outputs that a kernel
    /// overwrites completely, so they skip the zeroing pass.
    public init(uninitialized shape: [Int]) {
        self.init(shape: shape) { _ in }
    }

    public var count: Int { data.count }
    public var rank: Int { shape.count }

    /// Size of the last axis (the feature axis for token tensors).
    public var lastDim: Int { shape.last ?? 1 }
    /// Number of rows when the tensor is seen as a matrix (all leading axes, last axis).
    public var rows: Int { lastDim == 0 ? 0 : count / lastDim }

    /// The same elements under a new shape.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, data: data)
    }

    /// Items `range` of the first axis (a shard of a batch), copied; the tensor itself (no copy)
    /// when the range is the whole first axis.
    public func batchSlice(_ range: Range<Int>) -> Tensor {
        precondition(rank >= 1 && range.lowerBound >= 0 && range.upperBound <= shape[0], "batchSlice: \(range) of \(shape)")
        if range == 0..<shape[0] { return self }
        let item = shape[0] == 0 ? 0 : count / shape[0]
        return Tensor(shape: [range.count] + shape.dropFirst(),
                      data: Array(data[(range.lowerBound * item)..<(range.upperBound * item)]))
    }

    /// Tensors of the same item shape stacked along the first axis, in order.
    public init(concatenatingBatches parts: [Tensor]) {
        precondition(!parts.isEmpty && parts.allSatisfy { Array($0.shape.dropFirst()) == Array(parts[0].shape.dropFirst()) },
                     "concatenating batches needs parts of one item shape")
        self.init(shape: [parts.reduce(0) { $0 + $1.shape[0] }] + parts[0].shape.dropFirst(), data: parts.flatMap(\.data))
    }

    @inlinable
    public func withPointer<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        try data.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }

    @inlinable
    public mutating func withMutablePointer<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try data.withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = data.prefix(6).map { String(format: "%.4g", $0) }.joined(separator: ", ")
        return "Tensor(\(shape), [\(head)\(count > 6 ? ", …" : "")])"
    }
}
