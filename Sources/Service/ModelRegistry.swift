import Foundation
import Tensor
import ViT
import Checkpoint
import Objectives
import ImageKit

/// One served model: its encoder, and where the directory has them, a classification head and the
/// pretraining network whose pixel decoder reconstructs masked images.
public final class LoadedModel: @unchecked Sendable {
    public let id: String
    public let directory: URL
    public let config: ViTConfig
    public let encoder: VisionTransformer
    public let network: PretrainingNetwork?
    public let preprocessor: ImagePreprocessor
    public let created: Int
    public let provenance: [String: String]
    /// What the directory says it was made for (config.json `intended_input`).
    public let intendedInput: IntendedInput?
    /// The masked-patch errors of held-out images (`ood_calibration.json`), kept only when this
    /// model's pixel decoder can measure with its protocol.
    public let calibration: ReconstructionErrorCalibration?
    /// The encoder's inference buffers, reused by every batch. Only the compute thread (and the
    /// warm-up before it starts) runs forwards, so one workspace per model suffices.
    let workspace = InferenceWorkspace()

    public var canClassify: Bool { encoder.head != nil && !(config.labels ?? []).isEmpty }
    public var canReconstruct: Bool { network?.canReconstruct ?? false }
    public var capabilities: [Capability] {
        [.embed] + (canClassify ? [.classify] : []) + (canReconstruct ? [.reconstruct] : [])
    }
    public var parameterCount: Int { encoder.parameters.entries.reduce(0) { $0 + $1.parameter.elementCount } }

    init(directory: URL) throws {
        id = directory.lastPathComponent
        self.directory = directory
        // A config that names an objective is a pretraining network; an invalid one fails loudly
        // (naming the field) rather than loading as a plain encoder without its decoder.
        if try PretrainingDirectory.isPretraining(directory) {
            let network = try PretrainingDirectory.load(directory)
            self.network = network
            encoder = network.encoder
        } else {
            network = nil
            encoder = try ModelDirectory.loadEncoder(directory)
        }
        // Served weights never change: the blocks' matrices go into the AVX-512 GEMM's layout once,
        // and the plain copies are freed so the weights are held once (no-op without AVX-512).
        encoder.packForInference(releasingPlainValues: true)
        config = encoder.config
        preprocessor = ImagePreprocessor(imageSize: config.imgSize, channels: config.inChans, mean: config.mean, std: config.std,
                                         cropPct: config.cropPct ?? 1)
        let weights = directory.appendingPathComponent(ModelDirectory.weightsName)
        let attributes = try? FileManager.default.attributesOfItem(atPath: weights.path)
        created = Int((attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)
        provenance = Self.readProvenance(directory.appendingPathComponent("MODEL_CARD.md"))
        intendedInput = try IntendedInput.read(directory)
        let calibration = try ReconstructionErrorCalibration.read(directory)
        if let calibration, network?.canReconstruct != true || calibration.errors.isEmpty
            || !(1..<config.numPatches).contains(calibration.measure.maskedPatches) || calibration.measure.seeds.isEmpty {
            throw ModelRegistry.LoadError(description: "\(ReconstructionErrorCalibration.fileName) needs a model with a pixel decoder, "
                + "at least one error, one seed, and 1..<\(config.numPatches) masked patches")
        }
        self.calibration = calibration
    }

    /// What must match for one model's pixel decoder to score another's inputs: the encoder's
    /// shape and its preprocessing (the same images become the same tensors).
    var inputSignature: [Double] {
        let c = config
        let shape: [Int] = [c.imgSize, c.patchSize, c.inChans, c.embedDim, c.depth, c.numHeads]
        var out: [Double] = shape.map { Double($0) }
        out += c.mean.map { Double($0) }
        out += c.std.map { Double($0) }
        out.append(c.cropPct ?? 1)
        return out
    }

    /// The first paragraph of MODEL_CARD.md and its "- key: value"-style bullet lines.
    static func readProvenance(_ url: URL) -> [String: String] {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [:] }
        var out: [String: String] = ["model_card": url.lastPathComponent]
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if let summary = lines.first(where: { !$0.isEmpty && !$0.hasPrefix("#") && !$0.hasPrefix("-") }) { out["summary"] = summary }
        for line in lines.prefix(12) where line.hasPrefix("- ") {
            let body = String(line.dropFirst(2))
            if body.hasPrefix("Exported from") { out["exported_from"] = body }
            if body.hasPrefix("Training wall time") { out["training_wall_time"] = body }
        }
        return out
    }
}

/// Every model directory under a folder, loaded and warmed up at start-up.
public final class ModelRegistry: @unchecked Sendable {
    public let models: [String: LoadedModel]
    public let defaultModel: String
    /// Model id → the calibrated model that scores its inputs (itself, or a sibling pretraining
    /// export with the same encoder shape and preprocessing, the first by name).
    let oodReferences: [String: String]

    public struct LoadError: Error, CustomStringConvertible { public let description: String }

    public init(directory: String, defaultModel: String? = nil, log: (String) -> Void = { _ in }) throws {
        let root = URL(fileURLWithPath: directory)
        let fm = FileManager.default
        guard let entries = try? fm.contentsOfDirectory(atPath: root.path) else {
            throw LoadError(description: "models directory \(directory) does not exist or cannot be read")
        }
        var models: [String: LoadedModel] = [:]
        for name in entries.sorted() where !name.hasPrefix(".") {
            let dir = root.appendingPathComponent(name)
            guard fm.fileExists(atPath: dir.appendingPathComponent(ModelDirectory.configName).path) else { continue }
            do {
                let start = Date()
                let model = try LoadedModel(directory: dir)
                models[name] = model
                log("loaded \(name): \(model.config.embedDim)×\(model.config.depth) ViT, \(model.config.imgSize) px, "
                    + "\(model.capabilities.map(\.rawValue).joined(separator: "/")) in \(String(format: "%.2f", Date().timeIntervalSince(start))) s")
            } catch {
                throw LoadError(description: "cannot load model \(name) from \(dir.path): \(error)")
            }
        }
        guard !models.isEmpty else {
            throw LoadError(description: "no model directories (config.json + model.safetensors) under \(directory)")
        }
        if let defaultModel, models[defaultModel] == nil {
            throw LoadError(description: "default model \(defaultModel) is not among \(models.keys.sorted().joined(separator: ", "))")
        }
        self.models = models
        self.defaultModel = defaultModel ?? models.keys.sorted()[0]
        var references: [String: String] = [:]
        let calibrated = models.keys.sorted().filter { models[$0]!.calibration != nil }
        for (name, m) in models {
            if m.calibration != nil { references[name] = name; continue }
            if let sibling = calibrated.first(where: { models[$0]!.inputSignature == m.inputSignature }) { references[name] = sibling }
        }
        oodReferences = references
    }

    /// The calibrated model that scores `model`'s inputs, if any.
    func oodReference(for model: LoadedModel) -> LoadedModel? {
        oodReferences[model.id].flatMap { models[$0] }
    }

    public func model(_ id: String?) throws -> LoadedModel {
        let name = id ?? defaultModel
        guard let m = models[name] else {
            throw APIError(status: 404, type: "invalid_request_error", code: "model_not_found",
                           message: "model '\(name)' does not exist; available: \(models.keys.sorted().joined(separator: ", "))", param: "model")
        }
        return m
    }

    /// The model a request for a capability runs on: the one it names; else the default model
    /// when it has the capability, or else the only model that has it (so the default
    /// pretraining model does not make an unnamed classification fail next to a classifier).
    public func model(_ id: String?, capableOf capable: (LoadedModel) -> Bool) throws -> LoadedModel {
        let chosen = try model(id)
        guard id == nil, !capable(chosen) else { return chosen }
        let candidates = models.values.filter(capable)
        return candidates.count == 1 ? candidates[0] : chosen
    }

    /// One forward pass per model (and one reconstruction where possible), so the first request
    /// does not pay for page faults and lazy allocations.
    public func warmUp() {
        for (_, m) in models {
            let c = m.config
            let zeros = Tensor(zeros: [1, c.inChans, c.imgSize, c.imgSize])
            _ = m.encoder.embed(zeros, workspace: m.workspace)
            if let network = m.network, network.canReconstruct {
                var rng = SeededRandom(seed: 0)
                _ = network.reconstruct(zeros, plan: network.defaultMaskPlan(batch: 1, rng: &rng, masking: .random))
            }
        }
    }
}
