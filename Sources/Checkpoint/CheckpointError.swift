import Tensor

/// Everything that can go wrong loading or saving a model, worded for the person who has to fix it.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    case unreadable(String, String)
    case unwritable(String, String)
    case malformed(String, String)
    case missingTensor(String, expected: [Int]?)
    case unexpectedTensor(String, shape: [Int])
    case shapeMismatch(String, expected: [Int], found: [Int])
    case badConfig(String, String)
    case inferenceOnly(String)

    public var description: String {
        switch self {
        case let .unreadable(path, why): return "cannot read \(path): \(why)"
        case let .unwritable(path, why): return "cannot write \(path): \(why)"
        case let .malformed(what, why): return "\(what) is not a valid safetensors file: \(why)"
        case let .missingTensor(name, expected):
            return "checkpoint is missing tensor '\(name)'" + (expected.map { " (model expects shape \($0))" } ?? "")
        case let .unexpectedTensor(name, shape):
            return "checkpoint has tensor '\(name)' \(shape) that this model does not use (architecture mismatch?)"
        case let .shapeMismatch(name, expected, found):
            return "tensor '\(name)' has shape \(found) in the checkpoint but the model expects \(expected)"
        case let .badConfig(path, why): return "invalid model config \(path): \(why)"
        case let .inferenceOnly(name):
            return "tensor '\(name)' is held only in the inference GEMM's packed layout and cannot be saved (save the model before packing it)"
        }
    }
}

extension ParameterList {
    /// (name, value) of every parameter, for writing a checkpoint; refuses parameters whose plain
    /// values were released for inference (`Parameter.packForInference`), which would save as empty.
    public func savableTensors() throws -> [(String, Tensor)] {
        try entries.map { entry in
            if entry.parameter.isPackedOnly { throw CheckpointError.inferenceOnly(entry.name) }
            return (entry.name, entry.parameter.value)
        }
    }
}
