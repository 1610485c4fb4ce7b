/// The architecture and preprocessing of a served or trained ViT: `config.json` in a model
/// directory (schema in docs/MODEL_DIRECTORY.md). JSON keys are snake_case as written there.
public struct ViTConfig: Codable, Sendable, Equatable {
    public enum Pooling: String, Codable, Sendable { case cls, mean }
    public enum PositionalEmbedding: String, Codable, Sendable {
        /// Use the checkpoint's `pos_embed` tensor.
        case checkpoint
        /// Generate the fixed 2-D sin-cos table: BootMAE order (row halves first) or MAE (column first).
        case sincosBootMAE = "sincos_bootmae"
        case sincosMAE = "sincos_mae"
        /// No absolute positions at all (LoMaR: positions enter through relative attention biases).
        /// Not `.none`: on an optional that would read as `Optional.none`.
        case absent = "none"
    }

    /// Relative position encodings inside attention.
    public enum RelativePosition: String, Codable, Sendable {
        /// iRPE, contextual, product method, on keys, one table shared by the heads (LoMaR:
        /// junchen14/LoMaR vision_transformer_irpe.py `rpe_config`); `blocks.N.attn.rpe_k.lookup_table_weight`.
        case irpeProductK = "irpe_product_k"
    }

    public var imgSize: Int
    public var patchSize: Int
    public var inChans: Int
    public var embedDim: Int
    public var depth: Int
    public var numHeads: Int
    public var mlpRatio: Double
    public var qkvBias: QKVBias
    public var layerNormEps: Double
    public var globalPool: Pooling
    public var mean: [Float]
    public var std: [Float]
    public var labels: [String]?
    public var posEmbed: PositionalEmbedding?
    /// Fraction of the resized image kept by the center crop at inference (timm's crop_pct).
    public var cropPct: Double?
    /// Layer scale: every block gets `gamma_1` / `gamma_2` initialised to this (BEiT's
    /// `init_values`); nil (absent from config.json) builds blocks without layer scale.
    public var layerScaleInit: Double?
    /// A relative position encoding in every block's attention; nil (absent from config.json): none.
    public var relativePosition: RelativePosition?

    enum CodingKeys: String, CodingKey {
        case imgSize = "img_size", patchSize = "patch_size", inChans = "in_chans", embedDim = "embed_dim"
        case depth, numHeads = "num_heads", mlpRatio = "mlp_ratio", qkvBias = "qkv_bias"
        case layerNormEps = "layer_norm_eps", globalPool = "global_pool", mean, std, labels
        case posEmbed = "pos_embed", cropPct = "crop_pct", layerScaleInit = "layer_scale_init"
        case relativePosition = "relative_position"
    }

    public init(imgSize: Int, patchSize: Int, inChans: Int = 3, embedDim: Int, depth: Int, numHeads: Int,
                mlpRatio: Double = 4, qkvBias: QKVBias = .qkv, layerNormEps: Double = 1e-6,
                globalPool: Pooling = .cls, mean: [Float] = [0.5, 0.5, 0.5], std: [Float] = [0.5, 0.5, 0.5],
                labels: [String]? = nil, posEmbed: PositionalEmbedding? = nil, cropPct: Double? = nil,
                layerScaleInit: Double? = nil, relativePosition: RelativePosition? = nil) {
        self.imgSize = imgSize; self.patchSize = patchSize; self.inChans = inChans; self.embedDim = embedDim
        self.depth = depth; self.numHeads = numHeads; self.mlpRatio = mlpRatio; self.qkvBias = qkvBias
        self.layerNormEps = layerNormEps; self.globalPool = globalPool; self.mean = mean; self.std = std
        self.labels = labels; self.posEmbed = posEmbed; self.cropPct = cropPct
        self.layerScaleInit = layerScaleInit
        self.relativePosition = relativePosition
    }

    public var gridSize: Int { imgSize / patchSize }
    public var numPatches: Int { gridSize * gridSize }
    /// Patches plus the cls token.
    public var numTokens: Int { numPatches + 1 }
    public var patchDim: Int { inChans * patchSize * patchSize }
    public var mlpHidden: Int { Int(Double(embedDim) * mlpRatio) }

    /// Problems a hand-written config may have, as sentences; empty when valid.
    public func validationErrors() -> [String] {
        var errors: [String] = []
        if imgSize <= 0 || patchSize <= 0 || imgSize % patchSize != 0 {
            errors.append("img_size \(imgSize) must be a positive multiple of patch_size \(patchSize)")
        }
        if inChans != 1 && inChans != 3 { errors.append("in_chans must be 1 or 3, got \(inChans)") }
        if embedDim <= 0 || numHeads <= 0 || embedDim % numHeads != 0 {
            errors.append("embed_dim \(embedDim) must be a positive multiple of num_heads \(numHeads)")
        }
        if (posEmbed == .sincosMAE || posEmbed == .sincosBootMAE) && embedDim % 4 != 0 {
            errors.append("embed_dim \(embedDim) must be divisible by 4 for a sin-cos positional table")
        }
        if depth <= 0 { errors.append("depth must be positive, got \(depth)") }
        if mlpRatio <= 0 { errors.append("mlp_ratio must be positive") }
        if mean.count != inChans || std.count != inChans {
            errors.append("mean and std need \(inChans) values each (one per input channel)")
        }
        if std.contains(where: { $0 <= 0 }) { errors.append("std values must be positive") }
        if let c = cropPct, !(c > 0 && c <= 1) { errors.append("crop_pct must be in (0, 1], got \(c)") }
        if let g = layerScaleInit, !g.isFinite { errors.append("layer_scale_init must be a finite number, got \(g)") }
        return errors
    }
}
