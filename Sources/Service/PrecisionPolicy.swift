import Tensor

/// Which precision each served model's Linear layers run at: a default for every model and
/// exceptions by model name, from `--precision` values such as `bf16` (every model) or
/// `bootmae-vit-tiny-fmnist=bf16` (one model; it wins over the default whatever the order).
/// A model asking for bf16 on a CPU without bf16 instructions runs fp32 (`/v1/models` says so).
/// A tokenizer always runs fp32 (`runs(_:tokenizer:)`); naming one for bf16 is refused.
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

    /// What `--precision` asks for `model` (what its card calls `requested_precision`).
    public func precision(for model: String) -> InferencePrecision { perModel[model] ?? defaultPrecision }

    /// What a model's encoder runs at when `requested` is asked for. A tokenizer (PeCo stage 1)
    /// runs fp32 whatever is asked: its codes are nearest codebook entries, and bf16 rounding of
    /// its encoder moves the codes of patches near a tie between two entries (as an fp16 export
    /// does), so they would no longer be the codes its stage-2 models learned to predict, nor the
    /// full-precision codes its card and `tokenizer-eval` describe.
    static func runs(_ requested: InferencePrecision, tokenizer: Bool) -> InferencePrecision { tokenizer ? .fp32 : requested }

    /// Why a tokenizer asked for bf16 runs fp32: the load log's words and the card's `inference.note`.
    static let tokenizerNote = "a tokenizer runs fp32 whatever --precision asks: bf16 would move its codes at near-ties"

    /// Naming a tokenizer for bf16 (`--precision tok=bf16`) asks for what it cannot get: refused, as
    /// an unknown name is, rather than ignored (a bf16 default just leaves tokenizers at fp32).
    func refuseNamedBF16(_ model: LoadedModel) throws {
        guard model.canTokenize, perModel[model.id] == .bf16 else { return }
        throw ParseError(description: "--precision '\(model.id)=bf16': '\(model.id)' is a tokenizer, and tokenizers run fp32 only "
                         + "(bf16 would move their codes at near-ties, away from those their stage-2 models learned); drop '\(model.id)=bf16'")
    }
}
