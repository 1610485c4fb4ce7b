import Foundation
import Tensor
import ViT

/// A pretraining network on disk: `config.json` (PretrainingConfig) + `model.safetensors` holding
/// the whole network under the official names, and for BootMAE the momentum encoder under
/// `model_ema.` (a checkpoint without it starts the momentum encoder as a copy of the online one).
public enum PretrainingDirectory {
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
        let hasMomentum = weights.entries.keys.contains { $0.hasPrefix(BootMAE.momentumPrefix) }
        if config.objective == .bootmae && hasMomentum {
            try ModelDirectory.load(network.checkpointParameters, from: weights, ignoring: ignoring)
        } else {
            try ModelDirectory.load(network.parameters, from: weights, ignoring: ignoring + [BootMAE.momentumPrefix])
            if case .bootmae(let b) = network { b.resetMomentum() }
        }
        return network
    }
}

extension PretrainingDirectory {
    /// Writes config.json and model.safetensors (online network + momentum encoder) atomically.
    public static func save(_ network: PretrainingNetwork, to dir: URL, metadata: [String: String] = [:]) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let tensors = try network.checkpointParameters.savableTensors()
        try SafeTensorsWriter.write(tensors, to: dir.appendingPathComponent(ModelDirectory.weightsName), metadata: metadata)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(network.config), to: dir.appendingPathComponent(ModelDirectory.configName))
    }
}
