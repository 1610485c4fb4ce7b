import Checkpoint
import Foundation
import Tensor
import ViT

/// PeCo's tokenizer (stage 1) behind the objective seam, so it trains, checkpoints, resumes and
/// exports like any pretraining run: `bootmae-train pretrain --objective peco-tokenizer
/// --perceptual-model models/bootmae-vit-tiny-fmnist`, then `bootmae-train export`.
extension PeCoTokenizer: PretrainingObjective {
    public static let name = "peco-tokenizer"
    public static let displayName = "PeCo tokenizer"
    public static let summary = "PeCo stage 1: a ViT-VQ tokenizer (one code per patch, EMA codebook) trained on pixels "
        + "+ commitment + λ·perceptual loss on a frozen self-supervised encoder of ours; its codes are stage 2's targets"
    public static let lossNames = ["loss", "pixel_loss", "commitment_loss", "perceptual_loss"]

    /// config.json beside the encoder.
    public struct Settings: ObjectiveSettings {
        /// K. 512 by default for Fashion-MNIST at patch 4: a code covers a 4×4 gray patch (16
        /// values, mostly background or a few edge shapes), 60k images give 2.9M patches an epoch,
        /// and seeds' health targets (perplexity ≥ 0.3·K, < 10% dead) are within reach of 512
        /// live codes; 1024 would halve the patches per code and double stage 2's head for
        /// patterns a 16-pixel patch barely has. PeCo itself uses DALL-E's 8192 at 16×16×3.
        public var codebookSize: Int
        /// d, the width of a code.
        public var codeDim: Int
        public var decoderEmbedDim: Int
        public var decoderDepth: Int
        public var decoderNumHeads: Int
        /// The perceptual network's encoder config (nil: no perceptual loss possible, λ = 0).
        public var perceptualEncoder: ViTConfig?
        /// Where `initialize` loads the perceptual network from (its weights then travel in the
        /// training checkpoint under `perceptual.`; an export leaves them out).
        public var perceptualModel: String?
        /// 0-based blocks whose outputs the perceptual loss compares (nil: `PerceptualLoss.defaultLayers`).
        public var perceptualLayers: [Int]?
        /// λ_per (seeds: start at 1 [not verified]). Part of what the tokenizer is: 0 is the
        /// pixel-only tokenizer of the BEiT-style baseline, PeCo's central comparison.
        public var lambdaPerceptual: Double

        enum CodingKeys: String, CodingKey {
            case codebookSize = "codebook_size", codeDim = "code_dim", decoderEmbedDim = "decoder_embed_dim"
            case decoderDepth = "decoder_depth", decoderNumHeads = "decoder_num_heads", perceptualEncoder = "perceptual_encoder"
            case perceptualModel = "perceptual_model", perceptualLayers = "perceptual_layers", lambdaPerceptual = "lambda_perceptual"
        }

        public init(codebookSize: Int = 512, codeDim: Int = 32, decoderEmbedDim: Int, decoderDepth: Int, decoderNumHeads: Int,
                    perceptualEncoder: ViTConfig? = nil, perceptualModel: String? = nil, perceptualLayers: [Int]? = nil,
                    lambdaPerceptual: Double = 1) {
            self.codebookSize = codebookSize; self.codeDim = codeDim; self.decoderEmbedDim = decoderEmbedDim
            self.decoderDepth = decoderDepth; self.decoderNumHeads = decoderNumHeads; self.perceptualEncoder = perceptualEncoder
            self.perceptualModel = perceptualModel; self.perceptualLayers = perceptualLayers; self.lambdaPerceptual = lambdaPerceptual
        }

        /// The same tokenizer without its perceptual network (what stage 2 and the service load).
        public var withoutPerceptual: Settings {
            var s = self
            (s.perceptualEncoder, s.perceptualModel, s.perceptualLayers) = (nil, nil, nil)
            return s
        }

        public func validationErrors(encoder: ViTConfig) -> [String] {
            shapeErrors(encoder: encoder) + (missingNetwork.map { [$0] } ?? [])
        }

        /// A shipped config names the perceptual network it trained with by its model directory's
        /// name (as served), not the training machine's path; an export holds no perceptual weights
        /// and nothing loads them from it.
        public func exported() throws -> Self {
            var out = self
            out.perceptualModel = perceptualModel.map { URL(fileURLWithPath: $0).lastPathComponent }
            return out
        }

        /// A perceptual loss without its network. An error of the config (a fresh run's), not of
        /// `configure`: `pretrain --resume` also builds the model of the default flags.
        var missingNetwork: String? {
            lambdaPerceptual > 0 && perceptualEncoder == nil
                ? "the perceptual loss (lambda_perceptual \(lambdaPerceptual)) needs a network: give --perceptual-model DIR, "
                    + "or --lambda-perceptual 0 for the pixel-only tokenizer"
                : nil
        }

        func shapeErrors(encoder: ViTConfig) -> [String] {
            var errors: [String] = []
            if codebookSize < 2 { errors.append("codebook_size must be at least 2, got \(codebookSize)") }
            if codeDim < 1 { errors.append("code_dim must be positive, got \(codeDim)") }
            if decoderDepth < 1 || decoderNumHeads < 1 || decoderEmbedDim % max(decoderNumHeads, 1) != 0 || decoderEmbedDim % 4 != 0 {
                errors.append("decoder_embed_dim \(decoderEmbedDim) must be a multiple of 4 and of decoder_num_heads \(decoderNumHeads); decoder_depth ≥ 1")
            }
            if encoder.posEmbed == .absent { errors.append("the tokenizer's encoder adds sin-cos positions: pos_embed cannot be \"none\"") }
            if lambdaPerceptual < 0 { errors.append("lambda_perceptual cannot be negative, got \(lambdaPerceptual)") }
            if let p = perceptualEncoder {
                if p.imgSize != encoder.imgSize || p.inChans != encoder.inChans {
                    errors.append("the perceptual network takes \(p.imgSize)-pixel \(p.inChans)-channel images, the tokenizer \(encoder.imgSize)-pixel \(encoder.inChans)-channel")
                }
                if let layers = perceptualLayers, layers.isEmpty || !layers.allSatisfy({ (0..<p.depth).contains($0) }) {
                    errors.append("perceptual_layers \(layers) must be non-empty blocks within 0..<\(p.depth)")
                }
            }
            return errors
        }
    }

    /// Training knobs (recipe.json).
    public struct Options: ObjectiveOptions {
        /// β of the commitment loss (VQ-VAE's 0.25).
        public var commitment: Double = 0.25
        /// γ of the EMA codebook (0.99, VQ-VAE appendix A.1).
        public var emaDecay: Double = 0.99
        /// A code below this share of the mean usage restarts (`VectorQuantizer`).
        public var deadShare: Double = 0.03

        enum CodingKeys: String, CodingKey {
            case commitment = "commitment_beta", emaDecay = "ema_decay", deadShare = "dead_share"
        }

        public init() {}
    }

    public static let flags: [ObjectiveFlag] = [
        .value("perceptual-model", "Model directory of the frozen self-supervised encoder whose block features the perceptual loss compares (e.g. models/bootmae-vit-tiny-fmnist)."),
        .value("lambda-perceptual", "Weight λ of the perceptual loss (default 1; 0 trains the pixel-only baseline and needs no --perceptual-model)."),
        .value("perceptual-layers", "0-based blocks of the perceptual network compared, e.g. 1,3,5 (default: about four evenly spaced, ending at the last)."),
        .value("codebook-size", "Codes K (default 512)."),
        .value("code-dim", "Width of a code (default 32)."),
        .value("tokenizer-depth", "Blocks of the tokenizer's encoder and of its decoder (default 4)."),
        .value("commitment", "Commitment weight β (default 0.25)."),
        .value("ema-decay", "EMA decay of the codebook (default 0.99)."),
        .value("dead-share", "A code used less than this share of the mean usage restarts at a batch encoding (default 0.03)."),
    ]

    /// Nothing is masked; the shared `--mask-ratio` is unused.
    public static var defaultMaskRatio: Double { 0 }

    public static func configure(_ shape: BackboneShape, maskRatio: Double, flags: ObjectiveFlagValues) throws -> (ViTConfig, Settings) {
        let (mean, std) = shape.imageNetNormalization
        var encoder = shape.encoder(qkvBias: .qkv, mean: mean, std: std, posEmbed: .sincosMAE)
        let depth = try flags.int("tokenizer-depth") ?? 4
        try require(depth >= 1, "--tokenizer-depth must be at least 1")
        encoder.depth = depth
        var settings = Settings(decoderEmbedDim: shape.embedDim, decoderDepth: depth, decoderNumHeads: shape.numHeads)
        if let k = try flags.int("codebook-size") { settings.codebookSize = k }
        if let d = try flags.int("code-dim") { settings.codeDim = d }
        if let l = try flags.double("lambda-perceptual") { settings.lambdaPerceptual = l }
        if let dir = flags.string("perceptual-model") {
            let url = URL(fileURLWithPath: dir).standardizedFileURL
            let network: VisionTransformer
            do { network = try ModelDirectory.loadEncoder(url) } catch {
                throw ObjectiveFlagError("--perceptual-model \(dir): \(error)")
            }
            settings.perceptualEncoder = network.config
            settings.perceptualModel = url.path
            if let text = flags.string("perceptual-layers") {
                let layers = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
                try require(!layers.isEmpty && layers.allSatisfy { $0 != nil }, "--perceptual-layers needs comma-separated block indices, got '\(text)'")
                settings.perceptualLayers = layers.map { $0! }
            }
        } else {
            try require(flags.string("perceptual-layers") == nil, "--perceptual-layers needs --perceptual-model")
        }
        let problems = settings.shapeErrors(encoder: encoder)   // `missingNetwork` is the config's error
        try require(problems.isEmpty, problems.joined(separator: "; "))
        return (encoder, settings)
    }

    public static func options(flags: ObjectiveFlagValues, epochs: Int) throws -> Options {
        var o = Options()
        if let b = try flags.double("commitment") { o.commitment = b }
        if let g = try flags.double("ema-decay") { o.emaDecay = g }
        if let s = try flags.double("dead-share") { o.deadShare = s }
        try require(o.commitment >= 0, "--commitment cannot be negative")
        try require((0..<1).contains(o.emaDecay), "--ema-decay is within [0, 1)")
        try require((0..<1).contains(o.deadShare), "--dead-share is within [0, 1)")
        return o
    }

    /// BEiT's dVAE-free recipe has no official numbers for this tokenizer; AdamW as MAE's.
    public static var defaultBaseLR: Double { 1.5e-4 }

    public var checkpointParameters: ParameterList {
        var all = exportParameters
        if let perceptual { all.append(contentsOf: perceptual.network.parameters, prefix: Self.perceptualPrefix) }
        return all
    }

    /// The tokenizer alone: what stage 2 and the service need.
    public var exportParameters: ParameterList {
        var all = parameters
        all.append(contentsOf: quantizerState)
        return all
    }

    /// Xavier linears and patch embedding, LayerNorm 1/0, biases 0 (as MAE's `initialize_weights`);
    /// the codebook starts at zero and the first step restarts every unused code at a batch
    /// encoding (`VectorQuantizer`). The perceptual network is loaded from `perceptual_model`.
    public func initialize(rng: inout SeededRandom) {
        ParameterInit(classTokenStd: 0.02, truncatedMaskTokens: false, xavierPerQKVBlock: false).initialize(parameters, rng: &rng)
        for (_, p) in quantizerState.entries { p.value = Tensor(zeros: p.shape) }
        guard let perceptual else { return }
        guard let path = settings.perceptualModel else { preconditionFailure("a perceptual_encoder without perceptual_model to load it from") }
        do { try Self.loadPerceptual(perceptual, from: URL(fileURLWithPath: path)) } catch {
            preconditionFailure("the perceptual network at \(path) could not be loaded: \(error)")
        }
    }

    /// Copies a model directory's encoder into the frozen perceptual network by name.
    public static func loadPerceptual(_ perceptual: PerceptualLoss, from dir: URL) throws {
        let loaded = try ModelDirectory.loadEncoder(dir)
        for (name, p) in perceptual.network.parameters.entries {
            guard let source = loaded.parameters[name], source.shape == p.shape else {
                throw CheckpointError.missingTensor(name, expected: p.shape)
            }
            p.value = source.value
        }
    }

    /// A training checkpoint (with `perceptual.*`) or an export (without: the perceptual network
    /// is then not needed, and stays as built).
    public func load(_ weights: SafeTensorsFile, ignoring: [String]) throws {
        let hasPerceptual = weights.entries.keys.contains { $0.hasPrefix(Self.perceptualPrefix) }
        try ModelDirectory.load(hasPerceptual ? checkpointParameters : exportParameters, from: weights, ignoring: ignoring)
    }

    public func plan(batch: Int, rng: inout SeededRandom, options: Options, clock: TrainingClock) -> TokenizerPlan {
        TokenizerPlan.draw(codes: quantizer.codes, batch: batch, patches: encoder.config.numPatches, rng: &rng)
    }

    /// Reports the losses, and as schedule values the previous step's codebook health (the batch
    /// perplexity of the code usage and the share of codes that were dead and restarted); the
    /// code statistics and restart candidates travel as sums to `afterStep`.
    public func step(_ batch: PretrainingBatch, plan: TokenizerPlan, options: Options, clock: TrainingClock, lossBatch: Int,
                     phase: PhaseMarker?) -> StepReport {
        let out = step(batch.images, plan: plan, lambdaPerceptual: Float(settings.lambdaPerceptual), beta: Float(options.commitment),
                       lossBatch: lossBatch)
        phase?("tokenizer forward + backward")
        let health = quantizer.lastHealth
        return StepReport(
            losses: [.init("loss", out.total), .init("pixel_loss", out.pixel), .init("commitment_loss", out.commitment),
                     .init("perceptual_loss", out.perceptual)],
            schedule: [.init("perplexity", health.perplexity), .init("dead_share", health.deadShare)],
            sums: [.init("code_counts", out.counts), .init("code_sums", out.sums), .init("restart_candidates", out.candidates)])
    }

    /// The EMA codebook update and dead-code restarts from the whole batch's statistics.
    public func afterStep(options: Options, clock: TrainingClock, report: StepReport) {
        guard let counts = report.sum("code_counts"), let sums = report.sum("code_sums"), let candidates = report.sum("restart_candidates") else {
            preconditionFailure("a tokenizer step reports its code statistics")
        }
        quantizer.updateEMA(counts: counts, sums: sums, decay: Float(options.emaDecay), deadShare: Float(options.deadShare),
                            candidates: candidates)
    }
}

extension PeCoTokenizer {
    /// A trained tokenizer from its model directory (an export) or run folder (a checkpoint), as
    /// stage 2 and the service use it: frozen, inference only, without the perceptual network.
    public static func loadFrozen(_ dir: URL) throws -> PeCoTokenizer {
        let config = try PretrainingDirectory.readConfig(dir)
        guard let settings = config.settings(of: PeCoTokenizer.self) else {
            throw CheckpointError.badConfig(dir.appendingPathComponent(ModelDirectory.configName).path,
                                            "objective is \(config.objective), not a \(name)")
        }
        let tokenizer = PeCoTokenizer(encoder: config.encoder, settings: settings.withoutPerceptual)
        let weights = try SafeTensorsFile(contentsOf: weightsFile(in: dir))
        try ModelDirectory.load(tokenizer.exportParameters, from: weights, ignoring: [perceptualPrefix, "optim."])
        return tokenizer
    }

    /// The file `loadFrozen` reads: an export's model.safetensors, else a run's checkpoint.
    public static func weightsFile(in dir: URL) -> URL {
        [ModelDirectory.weightsName, "checkpoint.safetensors"].map { dir.appendingPathComponent($0) }
            .first { FileManager.default.fileExists(atPath: $0.path) } ?? dir.appendingPathComponent(ModelDirectory.weightsName)
    }
}

/// Served as a tokenizer (`/v1/tokens`): `codes` and `decode` are the stage-2 targets' own.
extension PeCoTokenizer: ImageTokenizing {
    public var codebookSize: Int { quantizer.codes }
}
