import Tensor

/// Which precision each served model's Linear layers run at: a default for every model and
/// exceptions by model name, from `--precision` values such as `bf16` (every model) or
/// `bootmae-vit-tiny-fmnist=bf16` (one model; it wins over the default whatever the order).
/// A model asking for bf16 on a CPU without bf16 instructions runs fp32 (`/v1/models` says so).
public struct PrecisionPolicy: Sendable, Equatable {
    public var defaultPrecision: InferencePrecision
    public var perModel: [String: InferencePrecision]

    public init(default defaultPrecision: InferencePrecision = .fp32, perModel: [String: InferencePrecision] = [:]) {
        self.defaultPrecision = defaultPrecision
        self.perModel = perModel
    }

    public struct ParseError: Error, CustomStringConvertible { public let description: String }

    /// Parses `--precision` values: `P` sets the default, `NAME=P` one model (P: fp32 or bf16).
    /// Commas separate several values in one string (the environment variable's form).
    public init(parsing values: [String]) throws {
        self.init()
        var sawDefault = false
        for value in values.flatMap({ $0.split(separator: ",").map(String.init) }) {
            let parts = value.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            let choices = InferencePrecision.allCases.map(\.rawValue).joined(separator: " or ")
            guard let precision = InferencePrecision(rawValue: parts.last!) else {
                throw ParseError(description: "--precision '\(value)': the precision must be \(choices), as in 'bf16' or 'MODEL=bf16'")
            }
            if parts.count == 1 {
                if sawDefault { throw ParseError(description: "--precision: the default precision is given twice") }
                (sawDefault, defaultPrecision) = (true, precision)
            } else {
                let name = parts[0]
                guard !name.isEmpty else { throw ParseError(description: "--precision '\(value)': the model name before '=' is empty") }
                if perModel[name] != nil { throw ParseError(description: "--precision: model '\(name)' is given twice") }
                perModel[name] = precision
            }
        }
    }

    public func precision(for model: String) -> InferencePrecision { perModel[model] ?? defaultPrecision }
}
