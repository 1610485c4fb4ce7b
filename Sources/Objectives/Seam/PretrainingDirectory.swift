import Checkpoint
import Foundation
import Tensor
import ViT

/// A pretraining network on disk: `config.json` (`PretrainingConfig`) + `model.safetensors` holding
/// the network under the objective's names (how missing training-only tensors are filled is the
/// objective's `load`).
public enum PretrainingDirectory {
    /// Whether `dir`'s config.json describes a pretraining network (it names an `objective`), as
    /// opposed to a plain encoder or classifier. Says nothing of the config's validity.
    public static func isPretraining(_ dir: URL) throws -> Bool {
        let (_, data) = try ModelDirectory.configData(dir)
        let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        return object?["objective"] != nil
    }

    /// The config, validated; errors name the file and the field.
    public static func readConfig(_ dir: URL) throws -> PretrainingConfig {
        let (url, data) = try ModelDirectory.configData(dir)
        let config: PretrainingConfig
        do { config = try JSONDecoder().decode(PretrainingConfig.self, from: data) } catch {
            throw CheckpointError.badConfig(url.path, ModelDirectory.describe(error))
        }
        let problems = config.validationErrors()
        guard problems.isEmpty else { throw CheckpointError.badConfig(url.path, problems.joined(separator: "; ")) }
        return config
    }

    public static func load(_ dir: URL) throws -> PretrainingNetwork {
        let config = try readConfig(dir)
        let weights = try SafeTensorsFile(contentsOf: dir.appendingPathComponent(ModelDirectory.weightsName))
        return try network(config: config, weights: weights)
    }

    public static func network(config: PretrainingConfig, weights: SafeTensorsFile, ignoring: [String] = []) throws -> PretrainingNetwork {
        let network = PretrainingNetwork(config: config)
        try network.load(weights, ignoring: ignoring)
        return network
    }

    /// Writes config.json and model.safetensors (every checkpointed tensor) atomically.
    public static func save(_ network: PretrainingNetwork, to dir: URL, metadata: [String: String] = [:]) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let tensors = try network.checkpointParameters.savableTensors()
        try SafeTensorsWriter.write(tensors, to: dir.appendingPathComponent(ModelDirectory.weightsName), metadata: metadata)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(network.config), to: dir.appendingPathComponent(ModelDirectory.configName))
    }
}
