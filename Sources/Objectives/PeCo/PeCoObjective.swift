import Foundation
import Checkpoint
import Tensor
import ViT

/// PeCo's stage 2 behind the objective seam: BEiT's recipe (microsoft/unilm
/// beit/run_beit_pretraining.py defaults) with the codes of a frozen `peco-tokenizer` as targets.
extension PeCo: PretrainingObjective {
    public static let name = "peco"
    public static let displayName = "PeCo"
    public static let summary = "PeCo stage 2 (BEiT-style): a ViT with block-masked patches replaced by a mask token predicts "
        + "the codes a frozen perceptual tokenizer (--tokenizer DIR, from peco-tokenizer) gives those patches"
    public static let lossNames = ["loss"]

    /// config.json beside the encoder.
    public struct Settings: ObjectiveSettings {
        /// K: the tokenizer's codebook size (`vocab_size`).
        public var vocabSize: Int
        /// Masked patches per image (`--num_mask_patches`; officially 75 of 196).
        public var numMaskPatches: Int
        /// The frozen tokenizer whose codes are the targets (BEiT's `--discrete_vae_weight_path`):
        /// in a run's config the absolute path of a `peco-tokenizer` export, in an exported model's
        /// config that export's directory name (the served tokenizer's id). Kept with the model: it
        /// is what the model's predictions mean. nil only in the model `pretrain --resume` builds
        /// from default flags; a config without it is invalid.
        public var tokenizer: String?
        /// SHA-256 (hex) of that export's model.safetensors when stage 2 was configured: which file
        /// the served tokenizer must be (`TokenizerPairing`), since another export of the same run
        /// (fp16) gives other codes at near-ties. nil in configs written before it was recorded.
        public var tokenizerSHA256: String?

        enum CodingKeys: String, CodingKey {
            case vocabSize = "vocab_size", numMaskPatches = "num_mask_patches", tokenizer, tokenizerSHA256 = "tokenizer_sha256"
        }

        public init(vocabSize: Int, numMaskPatches: Int, tokenizer: String?, tokenizerSHA256: String? = nil) {
            self.vocabSize = vocabSize; self.numMaskPatches = numMaskPatches; self.tokenizer = tokenizer
            self.tokenizerSHA256 = tokenizerSHA256
        }

        /// A shipped config: the tokenizer named by its directory (no training machine's path),
        /// with the hash of the file the run trained against. The tokenizer the run's config names
        /// must still be that file (a re-export since would ship a model whose codes nothing
        /// serves); a config from before the hash was recorded gets it from that file now.
        public func exported() throws -> Self {
            guard let path = tokenizer else { return self }
            let dir = URL(fileURLWithPath: path)
            // A run folder (allowed before exports were required) holds a training checkpoint, never
            // what a server loads: no served tokenizer could have its hash.
            guard FileManager.default.fileExists(atPath: dir.appendingPathComponent(ModelDirectory.weightsName).path) else {
                throw SettingsExportError("this stage-2 run trained against \(path), which is not a tokenizer export (no \(ModelDirectory.weightsName)): "
                    + "export that tokenizer run (`bootmae-train export --run \(path) --out DIR`), serve DIR, and train stage 2 on DIR")
            }
            let current: String
            do { current = try FrozenTokenizers.weightsSHA256(path) } catch {
                throw SettingsExportError("the tokenizer this stage-2 run trained against (config.json tokenizer: \(path)) cannot be read "
                    + "to record its SHA-256: \(error). Put that tokenizer export back at \(path) and export again")
            }
            if let recorded = tokenizerSHA256, recorded != current {
                throw SettingsExportError("the tokenizer at \(path) is not the one this stage-2 run trained against: its "
                    + "\(ModelDirectory.weightsName) has SHA-256 \(current.prefix(12))…, the run recorded \(recorded.prefix(12))… "
                    + "(re-exported since?). Put the export the run trained with back at \(path), or train stage 2 again on this one")
            }
            var out = self
            out.tokenizer = dir.lastPathComponent
            out.tokenizerSHA256 = current
            return out
        }

        /// The tokenizer export is still the file this run was configured with (a resumed stage 2
        /// keeps the targets it started with).
        public func checkReferences() throws {
            guard let tokenizer, let tokenizerSHA256 else { return }
            try FrozenTokenizers.checkUnchanged(tokenizer, sha256: tokenizerSHA256)
        }

        public func validationErrors(encoder: ViTConfig) -> [String] {
            var errors = shapeErrors(encoder: encoder)
            if tokenizer == nil { errors.append("peco needs --tokenizer DIR: a tokenizer trained with --objective peco-tokenizer (then exported)") }
            return errors
        }

        func shapeErrors(encoder: ViTConfig) -> [String] {
            var errors: [String] = []
            if vocabSize < 2 { errors.append("vocab_size must be at least 2, got \(vocabSize)") }
            if !(1..<encoder.numPatches).contains(numMaskPatches) {
                errors.append("num_mask_patches must be within 1..<\(encoder.numPatches), got \(numMaskPatches)")
            }
            if encoder.posEmbed == .absent { errors.append("PeCo's encoder adds learned positions (BEiT's --abs_pos_emb): pos_embed cannot be \"none\"") }
            return errors
        }
    }

    /// Training knobs (recipe.json): BEiT's block-mask knobs.
    public struct Options: ObjectiveOptions {
        /// `--min_mask_patches_per_block` (nil: officially 16 of 196, as the same share of the grid).
        public var minMaskPatchesPerBlock: Int?
        /// `--max_mask_patches_per_block` (officially None: what remains of the target).
        public var maxMaskPatchesPerBlock: Int?
        /// `MaskingGenerator(min_aspect=0.3)`: aspects in [0.3, 1/0.3].
        public var minAspect: Double = 0.3

        enum CodingKeys: String, CodingKey {
            case minMaskPatchesPerBlock = "min_mask_patches_per_block", maxMaskPatchesPerBlock = "max_mask_patches_per_block"
            case minAspect = "min_aspect"
        }

        public init(minMaskPatchesPerBlock: Int? = nil, maxMaskPatchesPerBlock: Int? = nil, minAspect: Double = 0.3) {
            self.minMaskPatchesPerBlock = minMaskPatchesPerBlock
            self.maxMaskPatchesPerBlock = maxMaskPatchesPerBlock; self.minAspect = minAspect
        }

        /// BEiT's minimum block, 16 of 196 patches, as the same share of `patches` (at least 1).
        public static func defaultMinBlock(patches: Int) -> Int { max(1, Int((16 * Double(patches) / 196).rounded())) }
        public func minBlock(patches: Int) -> Int { minMaskPatchesPerBlock ?? Self.defaultMinBlock(patches: patches) }
    }

    public static let flags: [ObjectiveFlag] = [
        .value("tokenizer", "The frozen tokenizer: a model directory exported from a peco-tokenizer run (required; `bootmae-train export --run TOKENIZER_RUN --out DIR`)."),
        .value("min-mask-patches-per-block", "Smallest masked block in patches (default: BEiT's 16 of 196 as the same share of the grid, 4 of 49)."),
        .value("max-mask-patches-per-block", "Largest masked block in patches (default: none, as BEiT)."),
        .value("min-aspect", "Block aspect ratios within [a, 1/a] (default 0.3)."),
    ]

    /// BEiT masks 75 of 196 patches (38%); PeCo's tiny design about 40%.
    public static var defaultMaskRatio: Double { 0.4 }

    /// The encoder of BEiT's recipe with its `--abs_pos_emb` option (a served PeCo model is then a
    /// standard ViT; the official default is a shared relative position bias instead): learned
    /// positions, q/v biases, layer scale 0.1; the tokenizer's codebook size, normalization and
    /// sizes. Without --tokenizer (which only `pretrain --resume`'s default model may lack) the
    /// settings have no tokenizer and the config is invalid.
    public static func configure(_ shape: BackboneShape, maskRatio: Double, flags: ObjectiveFlagValues) throws -> (ViTConfig, Settings) {
        let (mean, std) = shape.imageNetNormalization
        var encoder = shape.encoder(qkvBias: .qv, mean: mean, std: std, posEmbed: .checkpoint)
        encoder.layerScaleInit = 0.1
        var settings = Settings(vocabSize: 512, numMaskPatches: Int((maskRatio * Double(encoder.numPatches)).rounded()), tokenizer: nil)
        if let dir = flags.string("tokenizer") {
            let path = URL(fileURLWithPath: dir).standardizedFileURL.path
            let tokenizer: PeCoTokenizer
            // An export, not a run folder: the served tokenizer must be the very file whose codes
            // the model learned (its hash is recorded below), and a run's checkpoint is never served.
            try require(FileManager.default.fileExists(atPath: URL(fileURLWithPath: path).appendingPathComponent(ModelDirectory.weightsName).path),
                        "--tokenizer \(dir) is not a tokenizer export (it has no \(ModelDirectory.weightsName)): export the "
                        + "peco-tokenizer run first (bootmae-train export --run RUN --out DIR, in fp32) and give DIR; serve that same export")
            do { tokenizer = try FrozenTokenizers.load(path) } catch { throw ObjectiveFlagError("--tokenizer \(dir): \(error)") }
            let t = tokenizer.encoder.config
            try require(t.imgSize == encoder.imgSize && t.patchSize == encoder.patchSize && t.inChans == encoder.inChans,
                        "the tokenizer's code grid is for \(t.imgSize)-pixel \(t.inChans)-channel images at patch \(t.patchSize); "
                        + "the model is \(encoder.imgSize) px, \(encoder.inChans) channels, patch \(encoder.patchSize): "
                        + "give matching --img-size/--patch-size/--channels")
            (encoder.mean, encoder.std) = (t.mean, t.std)   // the images feed both networks
            settings.vocabSize = tokenizer.quantizer.codes
            settings.tokenizer = path
            settings.tokenizerSHA256 = try FrozenTokenizers.weightsSHA256(path)
        }
        let problems = settings.shapeErrors(encoder: encoder)
        try require(problems.isEmpty, problems.joined(separator: "; "))
        return (encoder, settings)
    }

    public static func options(flags: ObjectiveFlagValues, epochs: Int) throws -> Options {
        var o = Options(minMaskPatchesPerBlock: try flags.int("min-mask-patches-per-block"),
                        maxMaskPatchesPerBlock: try flags.int("max-mask-patches-per-block"))
        if let a = try flags.double("min-aspect") { o.minAspect = a }
        try require((o.minMaskPatchesPerBlock ?? 1) >= 1 && (o.maxMaskPatchesPerBlock ?? Int.max) >= (o.minMaskPatchesPerBlock ?? 1),
                    "--min-mask-patches-per-block is at least 1 and at most --max-mask-patches-per-block")
        try require(o.minAspect > 0 && o.minAspect <= 1, "--min-aspect is within (0, 1]")
        return o
    }

    /// run_beit_pretraining.py: lr 5e-4 (taken per 256 images here), 5 warmup epochs of 300,
    /// cosine to min_lr 1e-5, AdamW β (0.9, 0.98), weight decay 0.05 (constant: weight_decay_end
    /// defaults to it), no gradient clipping.
    public static var defaultBaseLR: Double { 5e-4 }
    public static func defaultMinLR(peak: Double) -> Double { min(1e-5, peak) }
    public static var defaultWarmupShare: Double { 5.0 / 300 }
    public static var defaultBetas: (beta1: Double, beta2: Double) { (0.9, 0.98) }
    public static var defaultWeightDecay: Double { 0.05 }

    /// `no_weight_decay()` = {pos_embed, cls_token}; 1-D tensors and biases never decay.
    public var noDecayNames: Set<String> { ["pos_embed", "cls_token"] }

    /// BEiT's init (modeling_pretrain.py `__init__`, `_init_weights`, `fix_init_weight`): every
    /// Linear and the patch-embedding conv weight, `cls_token`, `mask_token`, `pos_embed`
    /// ~ N(0, 0.02²) truncated at ±1σ (its `trunc_normal_` passes a=−std, b=std); biases, q_bias,
    /// v_bias 0; LayerNorm 1/0; layer scale γ = `layer_scale_init`; then each block's `attn.proj`
    /// and `mlp.fc2` weights divided by √(2·layer_id), layer_id = block index + 1.
    public func initialize(rng: inout SeededRandom) {
        let gamma = Float(encoder.config.layerScaleInit ?? 1)
        for (name, p) in parameters.entries where p.trainable {
            if name.hasSuffix("gamma_1") || name.hasSuffix("gamma_2") {
                p.fill { gamma }
            } else if name == "cls_token" || name == "mask_token" || name == "pos_embed" || (p.shape.count >= 2 && name.hasSuffix("weight")) {
                p.fill { rng.truncatedNormal(std: 0.02, lo: -0.02, hi: 0.02) }
            } else if p.shape.count == 1 && name.hasSuffix(".weight") {
                p.fill { 1 }   // LayerNorm scale
            } else {
                p.fill { 0 }
            }
        }
        for (i, block) in encoder.blocks.enumerated() {
            let factor = 1 / Float(2 * Double(i + 1)).squareRoot()
            for p in [block.attn.proj.weight, block.mlp.fc2.weight] {
                let count = p.value.count
                p.value.withMutablePointer { Vector.scale($0, by: factor, count) }
            }
        }
    }

    /// Per image a BEiT block mask of `num_mask_patches` (masking_generator.py `MaskingGenerator`,
    /// drawn per step instead of in the loader), and the batch's masked total (the loss's mean).
    public func plan(batch: Int, rng: inout SeededRandom, options: Options, clock: TrainingClock) -> PeCoPlan {
        let masks = Self.blockMasks(batch: batch, grid: encoder.config.gridSize, masked: settings.numMaskPatches, options: options, rng: &rng)
        return PeCoPlan(masks: masks, maskedInBatch: masks.reduce(0) { $0 + $1.filter { $0 }.count })
    }

    /// Per image, BEiT's block mask of `masked` patches with `options`' blocks (fewer patches when
    /// a block stops fitting first, as BEiT's generator).
    static func blockMasks(batch: Int, grid: Int, masked: Int, options: Options, rng: inout SeededRandom) -> [[Bool]] {
        let generator = BlockMaskGenerator.beit(height: grid, width: grid, minBlock: options.minBlock(patches: grid * grid),
                                                maxBlock: options.maxMaskPatchesPerBlock, minAspect: options.minAspect)
        return (0..<batch).map { _ in generator.mask(count: masked, rng: &rng) }
    }

    /// The tokenizer's codes (frozen, under no gradient: engine_for_pretraining.py computes them in
    /// `torch.no_grad()`), then the masked prediction.
    public func step(_ batch: PretrainingBatch, plan: PeCoPlan, options: Options, clock: TrainingClock, lossBatch: Int,
                     phase: PhaseMarker?) -> StepReport {
        guard let path = settings.tokenizer else { preconditionFailure("a peco config without its tokenizer is invalid") }
        let tokenizer: PeCoTokenizer
        do { tokenizer = try FrozenTokenizers.load(path, sha256: settings.tokenizerSHA256) } catch {
            preconditionFailure("the tokenizer \(path) (config.json \"tokenizer\") cannot be loaded: \(error)")
        }
        precondition(tokenizer.quantizer.codes == settings.vocabSize,
                     "the tokenizer \(path) has \(tokenizer.quantizer.codes) codes, the model's head \(settings.vocabSize)")
        let labels = tokenizer.codes(batch.images)
        phase?("tokenizer codes")
        let out = step(batch.images, masks: plan.masks, labels: labels, maskedInBatch: plan.maskedInBatch)
        phase?("peco forward + backward")
        return StepReport(losses: [.init("loss", out.loss), .init("mlm_acc", out.accuracy)])
    }
}

/// One step's masks for the batch; a shard keeps the whole batch's masked count.
public struct PeCoPlan: ShardablePlan, Equatable {
    public let masks: [[Bool]]
    public let maskedInBatch: Int

    public init(masks: [[Bool]], maskedInBatch: Int) { self.masks = masks; self.maskedInBatch = maskedInBatch }

    public func shard(_ images: Range<Int>) -> PeCoPlan { PeCoPlan(masks: Array(masks[images]), maskedInBatch: maskedInBatch) }
}

/// Frozen tokenizers by directory, loaded once per process and shared by every network copy:
/// stage 2 only reads them (`codes` runs the encoder forward and the nearest-code lookup, which
/// write nothing shared), so the shards of a step may use one concurrently.
public enum FrozenTokenizers {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var loaded: [String: PeCoTokenizer] = [:]

    /// SHA-256 (hex) of the weights file `load(path)` reads, as it is now (the service's
    /// `weights_sha256` of the same export).
    public static func weightsSHA256(_ path: String) throws -> String {
        SHA256.hex(try SHA256.digest(ofFile: PeCoTokenizer.weightsFile(in: URL(fileURLWithPath: path)).path))
    }

    /// The tokenizer at `path`; with `sha256`, its weights file must have that digest when it is
    /// first loaded in this process (a resumed stage 2 keeps the targets it started with).
    public struct TokenizerChanged: Error, CustomStringConvertible { public let description: String }

    /// Throws `TokenizerChanged` when the weights file at `path` no longer has `sha256`.
    public static func checkUnchanged(_ path: String, sha256: String) throws {
        let current = try weightsSHA256(path)
        guard current == sha256 else {
            throw TokenizerChanged(description: "the tokenizer \(path) changed since this run was configured: its weights have SHA-256 "
                + "\(current.prefix(12))…, config.json tokenizer_sha256 is \(sha256.prefix(12))…; restore the export it trained on")
        }
    }

    public static func load(_ path: String, sha256: String? = nil) throws -> PeCoTokenizer {
        try lock.withLock {
            if let t = loaded[path] { return t }
            if let sha256 { try checkUnchanged(path, sha256: sha256) }
            let t = try PeCoTokenizer.loadFrozen(URL(fileURLWithPath: path))
            loaded[path] = t
            return t
        }
    }
}

/// Served: with the tokenizer it was trained against, a stage-2 model reconstructs masked images
/// through codes (`TokenDecodedReconstructor`).
extension PeCo: CodePredicting {
    public var tokenizerReference: String? { settings.tokenizer }
    public var tokenizerSHA256: String? { settings.tokenizerSHA256 }
    public var vocabularySize: Int { settings.vocabSize }
    /// Reported as block masking; drawn as in training, not as `MaskingSpec.block` (BootMAE's
    /// capped, topped-up and rolled blocks): `defaultPlans`.
    public var defaultMasking: MaskingSpec { .block }
    public var maskedCount: Int { settings.numMaskPatches }

    /// Its training masks: BEiT's generator with the run's block options (nil: the defaults, as
    /// for an export, which keeps no recipe.json), grouped by masked count.
    public func defaultPlans(batch: Int, grid: Int, masked: Int, options: (any ObjectiveOptions)?, rng: inout SeededRandom) -> [MaskGroup] {
        MaskGroup.grouping(Self.blockMasks(batch: batch, grid: grid, masked: masked, options: Self.blockOptions(options), rng: &rng))
    }

    /// E.g. "BEiT block masks with the run's options: blocks of at least 12 patches, aspect 0.3 to 3.33".
    public func defaultMaskingDetail(grid: Int, options: (any ObjectiveOptions)?) -> String? {
        let o = Self.blockOptions(options)
        let smallest = o.minBlock(patches: grid * grid)
        let sizes = o.maxMaskPatchesPerBlock.map { "\(smallest) to \($0) patches" } ?? "at least \(smallest) patch\(smallest == 1 ? "" : "es")"
        return "BEiT block masks with \(options == nil ? "the default" : "the run's") options: blocks of \(sizes), aspect "
            + String(format: "%.3g to %.3g", o.minAspect, 1 / o.minAspect)
    }

    /// A run's options as PeCo's own; nil: the defaults.
    static func blockOptions(_ options: (any ObjectiveOptions)?) -> Options {
        options.map { PretrainingNetwork.cast($0, for: Self.self) } ?? Options()
    }

    /// The encoder as in training (mask token at the masked patches, every token through the
    /// blocks), `lm_head` on the masked rows, arg-max per row (lowest code on ties).
    public func predictCodes(_ images: Tensor, masks: [[Bool]]) -> [[Int]] {
        let n = encoder.config.numPatches, tokens = n + 1
        let rows = masks.enumerated().flatMap { b, mask in mask.indices.filter { mask[$0] }.map { b * tokens + 1 + $0 } }
        var out = masks.map { _ in [Int](repeating: -1, count: n) }
        guard !rows.isEmpty else { return out }
        let (encoded, _) = encoder.forwardMasked(images, mask: masks, maskEmbed: maskToken)
        let best = CrossEntropy.argmax(lmHead.forward(TokenRows.gather(encoded.latent, rows)))
        for (row, code) in zip(rows, best) { out[row / tokens][row % tokens - 1] = code }
        return out
    }
}
