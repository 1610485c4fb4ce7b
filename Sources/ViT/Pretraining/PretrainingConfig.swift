/// The whole pretraining network: the encoder's `ViTConfig` fields plus the decoders', in one flat
/// JSON object (the `config.json` of a pretraining checkpoint or export).
public struct PretrainingConfig: Codable, Sendable, Equatable {
    public enum Objective: String, Codable, Sendable {
        case mae, bootmae

        /// The masking each objective was published with: BootMAE's block masks, MAE's random ones.
        public var defaultMasking: String { self == .bootmae ? "block" : "random" }
    }

    public var objective: Objective
    public var encoder: ViTConfig
    /// Pixel-decoder width (MAE `decoder_embed_dim`, BootMAE `decode_dim`).
    public var decoderEmbedDim: Int
    public var decoderDepth: Int
    /// MAE: its own head count. BootMAE uses the encoder's heads (official code), so this is unset.
    public var decoderNumHeads: Int?
    /// BootMAE feature-decoder depth (its width is the encoder's).
    public var featureDecoderDepth: Int?
    /// BootMAE: encoder blocks whose outputs feed the pixel and the feature decoder (`fea_list`).
    public var featureLayers: [Int]?
    /// MAE: masked share. BootMAE: `num_mask` masked patches (takes precedence when set).
    public var maskRatio: Double?
    public var numMask: Int?
    /// MAE: normalized-pixel target (default on).
    public var normPixLoss: Bool?
    /// BootMAE: whether the decoders cross-attend to encoder features (the target-aware decoders;
    /// default on). Off is the ablation: plain decoder blocks that see only the latent tokens.
    public var decoderContext: Bool?

    enum CodingKeys: String, CodingKey {
        case objective, decoderEmbedDim = "decoder_embed_dim", decoderDepth = "decoder_depth"
        case decoderNumHeads = "decoder_num_heads", featureDecoderDepth = "feature_decoder_depth"
        case featureLayers = "feature_layers", maskRatio = "mask_ratio", numMask = "num_mask"
        case normPixLoss = "norm_pix_loss", decoderContext = "decoder_context"
    }

    public init(objective: Objective, encoder: ViTConfig, decoderEmbedDim: Int, decoderDepth: Int,
                decoderNumHeads: Int? = nil, featureDecoderDepth: Int? = nil, featureLayers: [Int]? = nil,
                maskRatio: Double? = nil, numMask: Int? = nil, normPixLoss: Bool? = nil, decoderContext: Bool? = nil) {
        self.objective = objective; self.encoder = encoder; self.decoderEmbedDim = decoderEmbedDim
        self.decoderDepth = decoderDepth; self.decoderNumHeads = decoderNumHeads
        self.featureDecoderDepth = featureDecoderDepth; self.featureLayers = featureLayers
        self.maskRatio = maskRatio; self.numMask = numMask; self.normPixLoss = normPixLoss
        self.decoderContext = decoderContext
    }

    public init(from decoder: Decoder) throws {
        encoder = try ViTConfig(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        objective = try c.decode(Objective.self, forKey: .objective)
        decoderEmbedDim = try c.decode(Int.self, forKey: .decoderEmbedDim)
        decoderDepth = try c.decode(Int.self, forKey: .decoderDepth)
        decoderNumHeads = try c.decodeIfPresent(Int.self, forKey: .decoderNumHeads)
        featureDecoderDepth = try c.decodeIfPresent(Int.self, forKey: .featureDecoderDepth)
        featureLayers = try c.decodeIfPresent([Int].self, forKey: .featureLayers)
        maskRatio = try c.decodeIfPresent(Double.self, forKey: .maskRatio)
        numMask = try c.decodeIfPresent(Int.self, forKey: .numMask)
        normPixLoss = try c.decodeIfPresent(Bool.self, forKey: .normPixLoss)
        decoderContext = try c.decodeIfPresent(Bool.self, forKey: .decoderContext)
    }

    public func encode(to encoder: Encoder) throws {
        try self.encoder.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(objective, forKey: .objective)
        try c.encode(decoderEmbedDim, forKey: .decoderEmbedDim)
        try c.encode(decoderDepth, forKey: .decoderDepth)
        try c.encodeIfPresent(decoderNumHeads, forKey: .decoderNumHeads)
        try c.encodeIfPresent(featureDecoderDepth, forKey: .featureDecoderDepth)
        try c.encodeIfPresent(featureLayers, forKey: .featureLayers)
        try c.encodeIfPresent(maskRatio, forKey: .maskRatio)
        try c.encodeIfPresent(numMask, forKey: .numMask)
        try c.encodeIfPresent(normPixLoss, forKey: .normPixLoss)
        try c.encodeIfPresent(decoderContext, forKey: .decoderContext)
    }

    /// Masked patches per image.
    public var maskedCount: Int {
        let n = encoder.numPatches
        if let numMask { return numMask }
        return n - max(1, Int(Double(n) * (1 - (maskRatio ?? 0.75))))
    }

    public var resolvedFeatureLayers: [Int] { featureLayers ?? [0, encoder.depth - 1] }

    public var usesDecoderContext: Bool { decoderContext ?? true }

    /// The encoder blocks the decoders cross-attend to, pixel decoder's first: the feature layers,
    /// or none when the decoders have no context.
    public var decoderContextLayers: [Int] { usesDecoderContext ? resolvedFeatureLayers : [] }

    public func validationErrors() -> [String] {
        var errors = encoder.validationErrors()
        if decoderEmbedDim <= 0 || decoderDepth <= 0 { errors.append("decoder_embed_dim and decoder_depth must be positive") }
        let heads = decoderNumHeads ?? encoder.numHeads
        if decoderEmbedDim / heads == 0 { errors.append("decoder_embed_dim \(decoderEmbedDim) is smaller than its \(heads) heads") }
        if decoderEmbedDim % 4 != 0 { errors.append("decoder_embed_dim \(decoderEmbedDim) must be divisible by 4 (2-D sin-cos positions)") }
        // Only once the patch grid itself is valid: otherwise the count says nothing.
        if errors.isEmpty && (maskedCount <= 0 || maskedCount >= encoder.numPatches) {
            errors.append("the mask must hide between 1 and \(encoder.numPatches - 1) patches, got \(maskedCount)")
        }
        if objective == .bootmae {
            if resolvedFeatureLayers.isEmpty || resolvedFeatureLayers.contains(where: { $0 < 0 || $0 >= encoder.depth }) {
                errors.append("feature_layers must name encoder blocks 0..<\(encoder.depth)")
            }
            if encoder.qkvBias != .qv { errors.append("BootMAE uses q/v attention biases: qkv_bias must be \"qv\"") }
        }
        return errors
    }
}
