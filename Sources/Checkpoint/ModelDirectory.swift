import Foundation
import Tensor
import ViT

/// A model directory: `config.json` (ViTConfig) + `model.safetensors` (official key names).
public enum ModelDirectory {
    public static let configName = "config.json"
    public static let weightsName = "model.safetensors"

    /// Keys of pretraining decoders and heads that an encoder ignores by design.
    static let decoderPrefixes = ["decode_blocks", "decode_norm", "decoder_", "down.", "down_1.", "lm_head",
                                  "mask_token", "de_pos_embed", "model_ema."]

    /// The bytes of `dir`/config.json, or an error that says what kind of folder was expected.
    public static func configData(_ dir: URL) throws -> (url: URL, data: Data) {
        let url = dir.appendingPathComponent(configName)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw CheckpointError.unreadable(dir.path, "no config.json: not a model directory (config.json + model.safetensors) "
                                            + "or a training run folder (config.json + checkpoint.safetensors)")
        }
        do { return (url, try Data(contentsOf: url)) } catch {
            throw CheckpointError.unreadable(url.path, error.localizedDescription)
        }
    }

    public static func readConfig(_ dir: URL) throws -> ViTConfig {
        let (url, data) = try configData(dir)
        let config: ViTConfig
        do { config = try JSONDecoder().decode(ViTConfig.self, from: data) } catch {
            throw CheckpointError.badConfig(url.path, describe(error))
        }
        let problems = config.validationErrors()
        guard problems.isEmpty else { throw CheckpointError.badConfig(url.path, problems.joined(separator: "; ")) }
        return config
    }

    /// Loads the encoder (and fc_norm/head when present) from a model directory.
    public static func loadEncoder(_ dir: URL) throws -> VisionTransformer {
        let config = try readConfig(dir)
        let weights = try SafeTensorsFile(contentsOf: dir.appendingPathComponent(weightsName))
        return try encoder(config: config, weights: weights)
    }

    /// Builds the encoder the checkpoint describes and copies every tensor in by name.
    /// Missing, mis-shaped or unknown tensors are errors that name the key and both shapes.
    public static func encoder(config: ViTConfig, weights: SafeTensorsFile, extraIgnored: [String] = []) throws -> VisionTransformer {
        let keys = Set(weights.entries.keys)
        let tableInCheckpoint = keys.contains("pos_embed")
        let generatedTable = config.posEmbed == .sincosBootMAE || config.posEmbed == .sincosMAE
        if !tableInCheckpoint && !generatedTable && config.posEmbed != .absent {
            throw CheckpointError.missingTensor("pos_embed", expected: [1, config.numTokens, config.embedDim])
        }
        let parts = VisionTransformer.Parts(
            norm: keys.contains("norm.weight"),
            fcNorm: keys.contains("fc_norm.weight"),
            headClasses: weights.entries["head.weight"]?.shape.first)
        let model = VisionTransformer(config: config, parts: parts)
        // LoMaR keeps a frozen sin-cos `pos_embed` in its checkpoints that its encoder never adds
        // (junchen14/LoMaR models_lomar.py): a model without positions ignores such a table.
        let unusedTable = config.posEmbed == .absent ? ["pos_embed"] : []
        try load(model.parameters, from: weights, ignoring: decoderPrefixes + extraIgnored + unusedTable)
        return model
    }

    /// Copies tensors into parameters by name, each read from the file straight into the
    /// parameter's storage. BootMAE's `q_bias`/`v_bias` fill a fused `qkv.bias` as [q | 0 | v]
    /// when the model has one: the bias BootMAE's `Attention.forward` adds
    /// (`models/modeling_pretrain_bootmae.py`) is timm's `attn.qkv.bias` (`vision_transformer.py`).
    /// A frozen parameter (a generated sin-cos table) keeps its value when the file lacks it;
    /// a saved table is used as saved.
    public static func load(_ params: ParameterList, from weights: SafeTensorsFile, prefix: String = "",
                            ignoring ignoredPrefixes: [String] = []) throws {
        var used = Set<String>()
        for (name, parameter) in params.entries {
            let key = prefix + name
            if let entry = weights.entries[key] {
                try checkShape(key, found: entry.shape, expected: parameter.shape)
                try parameter.value.data.withUnsafeMutableBufferPointer { try weights.read(key, into: $0) }
                used.insert(key)
            } else if key.hasSuffix("attn.qkv.bias"), let fused = try fusedQKVBias(key, weights, width: parameter.shape[0] / 3) {
                try checkShape(key, found: fused.tensor.shape, expected: parameter.shape)
                parameter.value = fused.tensor
                used.formUnion(fused.keys)
            } else if !parameter.trainable {
                continue
            } else {
                throw CheckpointError.missingTensor(key, expected: parameter.shape)
            }
        }
        for key in weights.entries.keys.sorted() where key.hasPrefix(prefix) && !used.contains(key) {
            let local = String(key.dropFirst(prefix.count))
            if ignoredPrefixes.contains(where: { local.hasPrefix($0) }) { continue }
            throw CheckpointError.unexpectedTensor(key, shape: weights.entries[key]!.shape)
        }
    }

    /// A stored shape fits a parameter when it is the same up to axes of size 1.
    static func checkShape(_ key: String, found: [Int], expected: [Int]) throws {
        guard found == expected || squeezedEqual(found, expected) else {
            throw CheckpointError.shapeMismatch(key, expected: expected, found: found)
        }
    }

    static func fusedQKVBias(_ key: String, _ weights: SafeTensorsFile, width: Int) throws -> (tensor: Tensor, keys: [String])? {
        let base = String(key.dropLast("qkv.bias".count))
        let qk = base + "q_bias", vk = base + "v_bias"
        guard weights.entries[qk] != nil, weights.entries[vk] != nil else { return nil }
        let q = try weights.tensor(qk), v = try weights.tensor(vk)
        guard q.count == width, v.count == width else {
            throw CheckpointError.shapeMismatch(qk, expected: [width], found: q.shape)
        }
        return (Tensor(shape: [3 * width], data: q.data + [Float](repeating: 0, count: width) + v.data), [qk, vk])
    }

    /// Shapes equal up to leading/trailing 1s (e.g. (1,1,D) vs (D)) are accepted.
    static func squeezedEqual(_ a: [Int], _ b: [Int]) -> Bool { a.filter { $0 != 1 } == b.filter { $0 != 1 } }

    /// Writes config.json and model.safetensors into `dir` (created if needed), each atomically.
    public static func save(config: ViTConfig, parameters: ParameterList, to dir: URL,
                            dtype: SafeTensorsFile.DType = .f32, metadata: [String: String] = [:]) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var tensors = try parameters.savableTensors()
        if config.posEmbed == nil || config.posEmbed == .checkpoint { precondition(parameters["pos_embed"] != nil) }
        tensors.sort { $0.0 < $1.0 }
        try SafeTensorsWriter.write(tensors, to: dir.appendingPathComponent(weightsName), metadata: metadata, dtype: dtype)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(config), to: dir.appendingPathComponent(configName))
    }

    public static func describe(_ error: Error) -> String {
        guard let e = error as? DecodingError else { return "\(error)" }
        func path(_ ctx: DecodingError.Context) -> String {
            ctx.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        switch e {
        case let .keyNotFound(key, _): return "required field '\(key.stringValue)' is missing"
        case let .typeMismatch(_, ctx), let .valueNotFound(_, ctx):
            return "field '\(path(ctx))' has the wrong type (\(ctx.debugDescription))"
        case let .dataCorrupted(ctx):
            return ctx.codingPath.isEmpty ? "not valid JSON" : "field '\(path(ctx))': \(ctx.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}
