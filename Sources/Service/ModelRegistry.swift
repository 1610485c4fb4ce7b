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
    /// SHA-256 of `model.safetensors` in hex, and its first 12 digits: the model's version, which
    /// every answer carries so stored embeddings can be matched to the weights that made them.
    public let weightsSHA256: String
    public var version: String { String(weightsSHA256.prefix(12)) }
    /// The directory's files as they were when loading started (what the watcher compares with).
    public let files: ModelFiles
    /// What the directory says it was made for (config.json `intended_input`).
    public let intendedInput: IntendedInput?
    /// The masked-patch errors of held-out images (`ood_calibration.json`), kept only when this
    /// model's pixel decoder can measure with its protocol.
    public let calibration: ReconstructionErrorCalibration?
    /// The training images' embeddings the feature-space score measures against (`ood_feature_bank.safetensors`),
    /// present exactly when `calibration` has a `feature_space` section.
    public let featureBank: FeatureBank?
    /// The precision the operator asked for (`--precision`); `kernel` says what runs.
    public let requestedPrecision: InferencePrecision
    /// The kernel the encoder's blocks run (bf16 only where asked, the CPU has bf16 instructions and
    /// the model is not a tokenizer).
    public var kernel: InferenceKernel { encoder.inferenceKernel }
    /// Why the kernel's precision is not the requested one (the load log, the card); nil when they agree.
    public var precisionNote: String? {
        guard kernel.precision != requestedPrecision else { return nil }
        return canTokenize ? PrecisionPolicy.tokenizerNote : "this CPU has no bf16 instructions"
    }
    /// The encoder's inference buffers, reused by every batch. Only the compute thread (and the
    /// warm-up before it starts) runs forwards, so one workspace per model suffices.
    let workspace = InferenceWorkspace()

    public var canClassify: Bool { encoder.head != nil && !(config.labels ?? []).isEmpty }
    /// A pixel decoder of its own (a stage-2 code predictor reconstructs only with its tokenizer
    /// served beside it: `ModelRegistry.reconstructor(for:)`).
    public var canReconstruct: Bool { network?.canReconstruct ?? false }
    public var canTokenize: Bool { network?.tokenizer != nil }
    public var capabilities: [Capability] {
        let own = network?.capabilities ?? [.embed]
        return Capability.allCases.filter { own.contains($0) || ($0 == .classify && canClassify) }
    }
    public var parameterCount: Int { encoder.parameters.entries.reduce(0) { $0 + $1.parameter.elementCount } }

    init(directory: URL, precision: InferencePrecision = .fp32) throws {
        id = directory.lastPathComponent
        requestedPrecision = precision
        self.directory = directory
        guard let files = ModelFiles(directory: directory) else {
            throw ModelRegistry.LoadError(description: "cannot read \(directory.appendingPathComponent(ModelDirectory.configName).path)")
        }
        self.files = files
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
        // Served weights never change: the blocks' matrices go into the packed GEMM's layout once
        // (fp32, or bf16 when asked, the CPU has it and the model is not a tokenizer), and the plain
        // copies are freed so the weights are held once (no-op without AVX-512).
        encoder.packForInference(releasingPlainValues: true, precision: PrecisionPolicy.runs(precision, tokenizer: network?.tokenizer != nil))
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
        let embedDim = encoder.config.embedDim
        featureBank = try calibration?.featureSpace.map { try Self.featureBank(directory, $0, embedDim: embedDim) }
        // A second pass over the weights (from the page cache) for the version; measured on this
        // machine at about 270 MB/s per core in a release build (a ViT-B file: ~1.3 s of CPU).
        weightsSHA256 = SHA256.hex(try SHA256.digest(ofFile: weights.path))
        // The version must describe the weights actually read: a file replaced while it was being
        // loaded is refused (the watcher sees the change and tries again once it settles).
        guard ModelFiles(directory: directory) == files else {
            throw ModelRegistry.LoadError(description: "the files of \(directory.path) changed while it was being loaded; "
                                          + "write a new model to a temporary folder and rename it into place")
        }
    }

    /// The bank a calibration's `feature_space` names, checked against it and the encoder.
    static func featureBank(_ directory: URL, _ features: FeatureDistanceCalibration, embedDim: Int) throws -> FeatureBank {
        let file = "\(ReconstructionErrorCalibration.fileName)'s feature_space"
        guard let bank = try FeatureBank.read(directory, sha256: features.bankSHA256) else {
            throw ModelRegistry.LoadError(description: "\(file) needs \(FeatureBank.fileName) beside it (run `bootmae-train calibrate` again)")
        }
        guard bank.dim == embedDim, bank.count == features.bankImages, (1...bank.count).contains(features.k), !features.distances.isEmpty,
              ViTConfig.Pooling(rawValue: features.pooling) != nil else {
            throw ModelRegistry.LoadError(description: "\(file) does not fit: bank \(bank.count) × \(bank.dim) (the encoder embeds \(embedDim), "
                + "bank_images \(features.bankImages)), k \(features.k), \(features.distances.count) distances, pooling '\(features.pooling)'")
        }
        return bank
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

/// The served models: every model directory under a folder, loaded and warmed up at start-up, and
/// swapped, added or removed while serving (`ModelLoader`).
///
/// Threads: the table of models is read by the request handlers and written only by the model
/// loader's serial queue (and the initializer), always under `lock`; a swap replaces one entry, so
/// a request that has already looked its model up keeps that `LoadedModel` (and its weights) until
/// it is answered.
public final class ModelRegistry: @unchecked Sendable {
    /// The folder of model directories.
    public let root: URL
    public let defaultModel: String
    /// The precision of each model, for those loaded later too.
    public let precisions: PrecisionPolicy
    private let lock = NSLock()
    private var table: [String: LoadedModel]

    public struct LoadError: Error, CustomStringConvertible { public let description: String }

    public init(directory: String, defaultModel: String? = nil, precisions: PrecisionPolicy = PrecisionPolicy(),
                log: (String) -> Void = { _ in }) throws {
        root = URL(fileURLWithPath: directory)
        self.precisions = precisions
        guard let names = Self.modelNames(in: root) else {
            throw LoadError(description: "models directory \(directory) does not exist or cannot be read")
        }
        // A name that matches no directory is a typo more often than a model still to come.
        if let unknown = precisions.perModel.keys.sorted().first(where: { !names.contains($0) }) {
            throw LoadError(description: "--precision names model '\(unknown)', which is not under \(directory) "
                            + "(models: \(names.joined(separator: ", ")))")
        }
        var models: [String: LoadedModel] = [:]
        for name in names {
            let start = Date()
            let model = try Self.load(root.appendingPathComponent(name), precisions: precisions)
            models[name] = model
            log("loaded \(name) version \(model.version): \(model.config.embedDim)×\(model.config.depth) ViT, \(model.config.imgSize) px, "
                + "\(model.capabilities.map(\.rawValue).joined(separator: "/")), \(model.kernel.rawValue) GEMMs"
                + (model.precisionNote.map { " (\(model.requestedPrecision.rawValue) asked; \($0))" } ?? "")
                + " in \(String(format: "%.2f", Date().timeIntervalSince(start))) s")
        }
        guard !models.isEmpty else {
            throw LoadError(description: "no model directories (config.json + model.safetensors) under \(directory)")
        }
        if let defaultModel, models[defaultModel] == nil {
            throw LoadError(description: "default model \(defaultModel) is not among \(models.keys.sorted().joined(separator: ", "))")
        }
        table = models
        self.defaultModel = defaultModel ?? models.keys.sorted()[0]
        for line in pairingReport() { log(line) }
    }

    /// One line per code predictor (PeCo stage 2): the tokenizer it reconstructs through, or why
    /// it serves embeddings only, so an operator sees a missing or wrong tokenizer at start-up
    /// rather than in a client's 503.
    func pairingReport() -> [String] {
        models.values.sorted { $0.id < $1.id }.compactMap { model -> String? in
            guard let predictor = model.network?.codePredictor else { return nil }
            do {
                let tokenizer = try pairedTokenizer(for: model, predictor)
                return "\(model.id) reconstructs through the tokenizer \(tokenizer.id) (weights \(tokenizer.version))"
            } catch {
                return "warning: \(model.id) serves embeddings only: \((error as? APIError)?.message ?? "\(error)")"
            }
        }
    }

    /// The names of the model directories under `root` (those holding a config.json, hidden ones
    /// left out), sorted; nil when the folder cannot be read.
    static func modelNames(in root: URL) -> [String]? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: root.path) else { return nil }
        return entries.sorted().filter { !$0.hasPrefix(".") && ModelFiles(directory: root.appendingPathComponent($0)) != nil }
    }

    /// Loads one model directory at the precision `precisions` asks for it; errors name the
    /// directory and, where the loader's do not, the file.
    static func load(_ dir: URL, precisions: PrecisionPolicy) throws -> LoadedModel {
        do {
            let model = try LoadedModel(directory: dir, precision: precisions.precision(for: dir.lastPathComponent))
            try precisions.refuseNamedBF16(model)
            return model
        } catch let error as CheckpointError {
            switch error {
            case .missingTensor, .unexpectedTensor, .shapeMismatch:
                throw LoadError(description: "cannot load model \(dir.lastPathComponent) from \(dir.path): "
                                + "\(dir.appendingPathComponent(ModelDirectory.weightsName).path): \(error)")
            default:
                throw LoadError(description: "cannot load model \(dir.lastPathComponent) from \(dir.path): \(error)")
            }
        } catch {
            throw LoadError(description: "cannot load model \(dir.lastPathComponent) from \(dir.path): \(error)")
        }
    }

    /// Every served model by id (a snapshot: later swaps do not change it).
    public var models: [String: LoadedModel] { lock.lock(); defer { lock.unlock() }; return table }

    /// Puts `model` in service under its id and returns the model it replaces, if any.
    @discardableResult
    func install(_ model: LoadedModel) -> LoadedModel? {
        lock.lock(); defer { lock.unlock() }
        let previous = table[model.id]
        table[model.id] = model
        return previous
    }

    /// Takes `id` out of service. The default model stays (409): requests that name no model must
    /// always find one, and since it is never removed, some model is always served.
    func remove(_ id: String) throws -> LoadedModel {
        lock.lock(); defer { lock.unlock() }
        guard let model = table[id] else { throw Self.notFound(id, table) }
        if id == defaultModel {
            throw APIError(status: 409, type: "invalid_request_error", code: "default_model",
                           message: "model '\(id)' is the default model and stays loaded; restart with another --default-model to remove it",
                           param: "id")
        }
        table[id] = nil
        return model
    }

    static func notFound(_ id: String, _ table: [String: LoadedModel], param: String = "model") -> APIError {
        APIError(status: 404, type: "invalid_request_error", code: "model_not_found",
                 message: "model '\(id)' does not exist; available: \(table.keys.sorted().joined(separator: ", "))", param: param)
    }

    /// The calibrated model that scores `model`'s inputs: itself when it has a calibration, else the
    /// first by name of the served pretraining exports with the same encoder shape and
    /// preprocessing and a calibration. Asked per request, so it follows swaps.
    func oodReference(for model: LoadedModel) -> LoadedModel? {
        if model.calibration != nil { return model }
        let models = self.models
        return models.keys.sorted().lazy.compactMap { models[$0] }
            .first { $0.calibration != nil && $0.inputSignature == model.inputSignature }
    }

    public func model(_ id: String?) throws -> LoadedModel {
        let name = id ?? defaultModel
        lock.lock(); defer { lock.unlock() }
        guard let m = table[name] else { throw Self.notFound(name, table) }
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

    /// As `model(_:capableOf:)`, for a request about one image with `channels` channels (3 for a
    /// colourful image, 1 otherwise): a request that names no model goes to a capable model that takes
    /// such images when the one chosen above cannot do it or does not take them (the first by name
    /// when several do; the page picks alike). So a photo is reconstructed by the photograph model, not
    /// squeezed into a 28-px grayscale one, while the default model keeps every image it was made for;
    /// and a default that cannot reconstruct leaves the image to the models that can, whatever its
    /// own channels.
    public func model(_ id: String?, capableOf capable: (LoadedModel) -> Bool, channels: Int) throws -> LoadedModel {
        let chosen = try model(id, capableOf: capable)
        guard id == nil, !capable(chosen) || chosen.config.inChans != channels else { return chosen }
        let models = self.models
        return models.keys.sorted().lazy.compactMap { models[$0] }
            .first { capable($0) && $0.config.inChans == channels } ?? chosen
    }

    /// One forward pass per model (and one reconstruction where possible), so the first request
    /// does not pay for page faults and lazy allocations. At start-up, before the compute thread
    /// has work; a model loaded later is warmed up on the compute thread (`ModelLoader`).
    public func warmUp() {
        for (_, m) in models { m.warmUp() }
    }
}

extension LoadedModel {
    /// One forward pass (and one reconstruction where possible) on a zero image. Runs the kernels,
    /// so only where inference may run: the compute thread, or before it has work.
    func warmUp() {
        let c = config
        let zeros = Tensor(zeros: [1, c.inChans, c.imgSize, c.imgSize])
        _ = encoder.embed(zeros, workspace: workspace)
        if let network, network.canReconstruct {
            var rng = SeededRandom(seed: 0)
            _ = network.reconstruct(zeros, plan: network.defaultMaskPlan(batch: 1, rng: &rng, masking: .random))
        }
    }
}
