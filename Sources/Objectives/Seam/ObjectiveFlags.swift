import ViT

/// A command-line flag an objective adds to `pretrain` (`--feature-weight 0.5`, `--no-weight-mask`).
/// The CLI cannot know every objective's flags at compile time, so it collects the flags it does
/// not recognise and the chosen objective parses them against what it declares.
public struct ObjectiveFlag: Sendable, Equatable {
    /// Without the leading dashes.
    public let name: String
    public let help: String
    /// False for a switch (`--no-weight-mask`), true for `--name VALUE` / `--name=VALUE`.
    public let takesValue: Bool

    public static func value(_ name: String, _ help: String) -> ObjectiveFlag { .init(name: name, help: help, takesValue: true) }
    public static func toggle(_ name: String, _ help: String) -> ObjectiveFlag { .init(name: name, help: help, takesValue: false) }
}

/// An objective-flag problem, worded for the command line.
public struct ObjectiveFlagError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The objective flags given on one command line, parsed against the objective's declarations.
public struct ObjectiveFlagValues: Sendable {
    private var values: [String: String] = [:]
    private var toggles: Set<String> = []

    public init() {}

    /// Parses `tokens` (in order, e.g. `["--feature-weight", "0.5", "--no-weight-mask"]`). An unknown
    /// flag is refused with the nearest of the objective's flags and `commandFlags` (the command's own,
    /// without dashes: a misspelt `--img-szie` lands here too) as a suggestion.
    public init(parsing tokens: [String], declared: [ObjectiveFlag], objective: String, commandFlags: [String] = []) throws {
        var i = 0
        func known() -> String {
            declared.isEmpty ? "\(objective) has no options of its own"
                : "\(objective)'s own options: " + declared.map { "--\($0.name)" }.joined(separator: ", ")
        }
        while i < tokens.count {
            let token = tokens[i]
            guard token.hasPrefix("--") else {
                throw ObjectiveFlagError("unexpected argument '\(token)' (\(known()))")
            }
            let body = token.dropFirst(2)
            let name = String(body.prefix { $0 != "=" })
            let inline = body.contains("=") ? String(body.drop { $0 != "=" }.dropFirst()) : nil
            guard let flag = declared.first(where: { $0.name == name }) else {
                if let guess = NameSuggestion.closest(to: name, among: commandFlags + declared.map(\.name)) {
                    throw ObjectiveFlagError("unknown option '--\(name)'; did you mean '--\(guess)'? (\(known()))")
                }
                throw ObjectiveFlagError("unknown option '--\(name)' for objective \(objective) (\(known()))")
            }
            guard values[name] == nil && !toggles.contains(name) else { throw ObjectiveFlagError("--\(name) is given twice") }
            if flag.takesValue {
                if let inline {
                    values[name] = inline
                } else {
                    guard i + 1 < tokens.count else { throw ObjectiveFlagError("--\(name) needs a value") }
                    i += 1
                    values[name] = tokens[i]
                }
            } else {
                guard inline == nil else { throw ObjectiveFlagError("--\(name) takes no value") }
                toggles.insert(name)
            }
            i += 1
        }
    }

    public func isSet(_ name: String) -> Bool { toggles.contains(name) }

    public func string(_ name: String) -> String? { values[name] }

    public func double(_ name: String) throws -> Double? {
        guard let text = values[name] else { return nil }
        guard let v = Double(text), v.isFinite else { throw ObjectiveFlagError("--\(name) needs a number, got '\(text)'") }
        return v
    }

    public func int(_ name: String) throws -> Int? {
        guard let text = values[name] else { return nil }
        guard let v = Int(text) else { throw ObjectiveFlagError("--\(name) needs an integer, got '\(text)'") }
        return v
    }

    /// A value of a `RawRepresentable` enum (`--masking block`).
    public func choice<T: RawRepresentable & CaseIterable>(_ name: String, _ type: T.Type = T.self) throws -> T? where T.RawValue == String {
        guard let text = values[name] else { return nil }
        guard let v = T(rawValue: text) else {
            throw ObjectiveFlagError("--\(name) is one of \(T.allCases.map(\.rawValue).joined(separator: ", ")), got '\(text)'")
        }
        return v
    }
}

/// Throws `message` as an objective-flag error unless `condition` holds.
public func require(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw ObjectiveFlagError(message()) }
}

/// The sizes of a model preset, before an objective shapes them into its network.
public struct BackboneShape: Sendable, Equatable {
    public var imgSize: Int
    public var patchSize: Int
    public var channels: Int
    public var embedDim: Int
    public var depth: Int
    public var numHeads: Int
    /// A light decoder's width and depth (BootMAE's, and MAE's below ViT-B).
    public var decoderDim: Int
    public var decoderDepth: Int
    /// The deeper decoder MAE publishes with ViT-B (8 blocks); the light depth for smaller presets.
    public var deepDecoderDepth: Int

    public init(imgSize: Int, patchSize: Int, channels: Int, embedDim: Int, depth: Int, numHeads: Int,
                decoderDim: Int, decoderDepth: Int, deepDecoderDepth: Int) {
        self.imgSize = imgSize; self.patchSize = patchSize; self.channels = channels; self.embedDim = embedDim
        self.depth = depth; self.numHeads = numHeads; self.decoderDim = decoderDim; self.decoderDepth = decoderDepth
        self.deepDecoderDepth = deepDecoderDepth
    }

    /// An encoder of these sizes (pre-norm ViT, MLP ratio 4, LayerNorm eps 1e-6, cls pooling);
    /// the objective picks the attention biases, normalisation and position encoding.
    public func encoder(qkvBias: QKVBias, mean: [Float], std: [Float], posEmbed: ViTConfig.PositionalEmbedding?) -> ViTConfig {
        ViTConfig(imgSize: imgSize, patchSize: patchSize, inChans: channels, embedDim: embedDim, depth: depth,
                  numHeads: numHeads, mlpRatio: 4, qkvBias: qkvBias, layerNormEps: 1e-6, globalPool: .cls,
                  mean: mean, std: std, posEmbed: posEmbed)
    }

    /// ImageNet's statistics for RGB, 0.5 / 0.5 otherwise (grayscale data has no such standard).
    public var imageNetNormalization: (mean: [Float], std: [Float]) {
        channels == 3 ? ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]) : (Array(repeating: 0.5, count: channels), Array(repeating: 0.5, count: channels))
    }
}
