import ViT

/// A pretraining network's `config.json`: the encoder's `ViTConfig` fields, `objective` (a
/// registered name), and that objective's own settings, in one flat JSON object (so official and
/// older directories read unchanged).
public struct PretrainingConfig: Codable, Sendable, Equatable, CustomStringConvertible {
    public var encoder: ViTConfig
    /// The registered objective name (`ObjectiveRegistry`).
    public let objective: String
    public var settings: any ObjectiveSettings

    public init<O: PretrainingObjective>(_ objective: O.Type, encoder: ViTConfig, settings: O.Settings) {
        self.objective = O.name
        self.encoder = encoder
        self.settings = settings
    }

    /// The objective's type. A config only exists for a registered objective.
    public var objectiveType: any PretrainingObjective.Type {
        guard let type = ObjectiveRegistry.objective(named: objective) else {
            preconditionFailure("objective \(objective) is no longer registered")
        }
        return type
    }

    /// The settings as `O`'s, when this is a config of `O`.
    public func settings<O: PretrainingObjective>(of _: O.Type) -> O.Settings? { settings as? O.Settings }

    private enum Key: String, CodingKey { case objective }

    public init(from decoder: Decoder) throws {
        encoder = try ViTConfig(from: decoder)
        let c = try decoder.container(keyedBy: Key.self)
        objective = try c.decode(String.self, forKey: .objective)
        guard let type = ObjectiveRegistry.objective(named: objective) else {
            throw DecodingError.dataCorruptedError(forKey: .objective, in: c, debugDescription:
                "unknown objective '\(objective)'; known objectives: \(ObjectiveRegistry.names.joined(separator: ", "))")
        }
        settings = try type.decodeSettings(from: decoder)
    }

    public func encode(to encoder: Encoder) throws {
        try self.encoder.encode(to: encoder)
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(objective, forKey: .objective)
        try settings.encode(to: encoder)
    }

    public static func == (a: PretrainingConfig, b: PretrainingConfig) -> Bool {
        a.encoder == b.encoder && a.objective == b.objective && a.settings.isEqual(to: b.settings)
    }

    public var description: String { "\(objective) \(encoder) \(settings)" }

    /// Problems of a hand-written config, as sentences naming the field; empty when valid.
    public func validationErrors() -> [String] {
        encoder.validationErrors() + settings.validationErrors(encoder: encoder)
    }
}

extension PretrainingObjective {
    public static func decodeSettings(from decoder: Decoder) throws -> any ObjectiveSettings { try Settings(from: decoder) }
    public static func decodeOptions(from decoder: Decoder) throws -> any ObjectiveOptions { try Options(from: decoder) }
}
