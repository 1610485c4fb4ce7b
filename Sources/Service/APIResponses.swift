import Foundation
import Tensor
import ViT
import Objectives

// The response bodies, field for field as openapi.yaml's schemas, and the one JSON configuration
// they are written with.

enum APIJSON {
    /// Sorted keys, slashes unescaped: byte for byte what the JSONSerialization-built bodies were
    /// (Doubles print the same shortest round-trip digits; no key holds a digit, where the two
    /// sort orders differ).
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}

/// A value the schema requires even when there is none: written as null, not left out.
struct Nullable<Wrapped: Codable>: Codable {
    var value: Wrapped?

    init(_ value: Wrapped?) { self.value = value }

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        value = c.decodeNil() ? nil : try c.decode(Wrapped.self)
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if let value { try c.encode(value) } else { try c.encodeNil() }
    }
}

/// Every error: `{"error": {"message", "type", "code", "param"}}`.
struct ErrorResponse: Codable {
    struct Detail: Codable {
        var message: String
        var type: String
        var code: String
        var param: Nullable<String>
    }
    var error: Detail
}

/// GET /healthz and /readyz.
struct StatusResponse: Codable {
    var status: String
}

/// POST /v1/embeddings → 200.
struct EmbeddingResponse: Codable {
    var object = "list"
    var model: String
    /// The first 12 hex digits of the SHA-256 of the model's weights file.
    var modelVersion: String
    var data: [Item]
    var usage: Usage

    enum CodingKeys: String, CodingKey { case object, model, modelVersion = "model_version", data, usage }

    struct Item: Codable {
        var object = "embedding"
        var index: Int
        var embedding: Embedding
        /// What about this image the model was not trained for (empty when nothing).
        var warnings: [InputWarning]
        /// Absent when no calibrated pixel decoder shares this model's encoder.
        var ood: OODScore?
    }

    /// JSON numbers — each float32 widened to the Double of the same value, so a client parsing
    /// Doubles gets the model's floats exactly — or base64 of the little-endian float32 bytes.
    enum Embedding: Codable, Equatable {
        case float([Double])
        case base64(String)

        init(_ vector: [Float], format: EncodingFormat) {
            switch format {
            case .float: self = .float(vector.map(Double.init))
            case .base64: self = .base64(vector.withUnsafeBytes { Data($0).base64EncodedString() })
            }
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let text = try? c.decode(String.self) { self = .base64(text) } else { self = .float(try c.decode([Double].self)) }
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .float(let values): try c.encode(values)
            case .base64(let text): try c.encode(text)
            }
        }
    }

    struct Usage: Codable {
        var images: Int
        /// Tokens (patches + cls) processed.
        var promptTokens: Int
        var totalTokens: Int
        enum CodingKeys: String, CodingKey { case images, promptTokens = "prompt_tokens", totalTokens = "total_tokens" }
    }
}

/// POST /v1/classifications → 200.
struct ClassificationResponse: Codable {
    var object = "list"
    var model: String
    var modelVersion: String
    var data: [Item]

    enum CodingKeys: String, CodingKey { case object, model, modelVersion = "model_version", data }

    struct Item: Codable {
        var index: Int
        /// Best first.
        var labels: [Label]
        var warnings: [InputWarning]
        var ood: OODScore?
    }

    struct Label: Codable {
        var label: String
        /// Softmax probability.
        var score: Double
    }
}

/// POST /v1/reconstructions → 200 with `Accept: application/json`.
struct ReconstructionResponse: Codable {
    var object = "reconstruction"
    var model: String
    var modelVersion: String
    var mask: [Int]
    var maskRatio: Double
    var patches: Int
    var grid: Int
    /// The statistics the prediction was mapped back with; null when the model predicts pixels
    /// themselves (no normalized-pixel target), where `stats` has no effect.
    var stats: Nullable<ReconstructionStats>
    var masking: Masking
    /// The seed the mask was drawn with; null for an explicit mask.
    var seed: Nullable<Int>
    /// Masked-patch mean squared error in [0, 1] pixel units.
    var mse: Double
    var psnr: Double
    var scale: Int
    /// Per patch (row-major): the masked patch's MSE in [0, 1] pixel units; null for visible patches.
    var errors: [Nullable<Double>]
    var warnings: [InputWarning]
    var ood: OODScore?
    var images: Images
    /// A model that reconstructs through a tokenizer's codes (PeCo stage 2): the decoded code grid,
    /// row-major, the model's predictions at the masked patches and the tokenizer's own elsewhere.
    var codes: [Int]?

    /// How the mask was drawn; `explicit` is the request's `mask`.
    enum Masking: String, Codable, CaseIterable {
        case random, block, explicit

        init(_ spec: MaskingSpec) {
            switch spec { case .random: self = .random; case .block: self = .block }
        }
    }

    /// Base64 PNGs, each panel upscaled by `scale`.
    struct Images: Codable {
        var strip: String
        var original: String
        var masked: String
        var reconstruction: String
        var composite: String
        /// Masked patches coloured by their error (0 to this image's largest), visible ones dimmed gray.
        var heatmap: String
    }

    enum CodingKeys: String, CodingKey {
        case object, model, modelVersion = "model_version", mask, maskRatio = "mask_ratio", patches, grid, stats, masking, seed, mse, psnr, scale, errors, warnings, ood, images, codes
    }
}

/// POST /v1/tokens → 200 (JSON): each image's code grid, and with `decode` the image its codes decode to.
struct TokenResponse: Codable {
    var object = "list"
    var model: String
    var modelVersion: String
    /// The code grid is grid × grid, codes row-major; codes are 0..<codebook_size.
    var grid: Int
    var codebookSize: Int
    var data: [Item]

    enum CodingKeys: String, CodingKey { case object, model, modelVersion = "model_version", grid, codebookSize = "codebook_size", data }

    struct Item: Codable {
        var object = "tokens"
        var index: Int
        var codes: [Int]
        var warnings: [InputWarning]
        var ood: OODScore?
        /// With `decode`: the decoded image (base64 PNG, upscaled by `scale`) and its PSNR against
        /// the model's input in [0, 1] pixel units.
        var decoded: String?
        var psnr: Double?
    }
}

/// POST /v1/models/{id}/unload → 200.
struct ModelUnloaded: Codable {
    var id: String
    var object = "model"
    var status = "unloaded"
    var modelVersion: String
    enum CodingKeys: String, CodingKey { case id, object, status, modelVersion = "model_version" }
}

/// GET /v1/models → 200.
struct ModelList: Codable {
    var object = "list"
    var data: [ModelCard]
}

/// GET /v1/models/{id} → 200 (openapi: Model).
struct ModelCard: Codable {
    var id: String
    var object = "model"
    var created: Int
    /// The first 12 hex digits of `weightsSHA256`.
    var modelVersion: String
    var weightsSHA256: String
    var ownedBy = "bootmae-swift"
    var isDefault: Bool
    var capabilities: [Capability]
    var architecture: Architecture
    var embedding: Embedding
    var preprocessing: Preprocessing
    var limits: Limits
    var provenance: [String: String]
    /// Only for models that classify.
    var labels: [String]?
    /// Only for models that reconstruct.
    var reconstruction: ReconstructionDefaults?
    /// Only for tokenizers (`/v1/tokens`).
    var tokenizer: TokenizerFacts?
    /// Only for stage-2 code predictors (PeCo): the tokenizer they reconstruct through, and why
    /// they cannot reconstruct now when they cannot.
    var requiresTokenizer: TokenizerRequirement?
    /// What the model was made for, when its config.json says (`intended_input`).
    var intendedInput: IntendedInput?
    /// How its answers' `ood` scores are measured; absent when they have none.
    var oodScore: OODScoring?
    /// The number format and kernel its encoder's Linear layers run.
    var inference: Inference

    enum CodingKeys: String, CodingKey {
        case id, object, created, modelVersion = "model_version", weightsSHA256 = "weights_sha256", ownedBy = "owned_by", isDefault = "default", capabilities, architecture, embedding,
             preprocessing, limits, provenance, labels, reconstruction, tokenizer, requiresTokenizer = "requires_tokenizer", intendedInput = "intended_input", oodScore = "ood_score", inference
    }

    struct Inference: Codable {
        /// What runs: bf16 only where it was asked for, the CPU has bf16 instructions and the
        /// model is not a tokenizer.
        var precision: InferencePrecision
        var requestedPrecision: InferencePrecision
        var kernel: InferenceKernel
        /// Why `precision` is not `requestedPrecision`; absent when they agree.
        var note: String?
        enum CodingKeys: String, CodingKey { case precision, requestedPrecision = "requested_precision", kernel, note }
    }

    struct TokenizerFacts: Codable {
        var codebookSize: Int
        var grid: Int
        var patches: Int
        enum CodingKeys: String, CodingKey { case codebookSize = "codebook_size", grid, patches }
    }

    struct TokenizerRequirement: Codable {
        /// The model id (directory name under --models-dir) the tokenizer must be served as; null
        /// when the model's config.json names no tokenizer.
        var id: Nullable<String>
        /// Whether a tokenizer is served under that id.
        var loaded: Bool
        /// The error a reconstruction would get now (`tokenizer_not_loaded`, `tokenizer_mismatch`),
        /// which says what to do; absent while the pair reconstructs.
        var problem: Problem?

        struct Problem: Codable {
            var code: String
            var message: String
        }
    }

    struct OODScoring: Codable {
        var referenceModel: String
        var calibrationImages: Int
        var dataset: String
        var metric: String
        var `protocol`: ReconstructionErrorProtocol
        var warningPercentile: Double
        /// The score whose percentile raises the warning: "feature_space" where there is one, else "masked_patch_mse".
        var warningScore: String
        var featureSpace: FeatureScoring?
        enum CodingKeys: String, CodingKey {
            case referenceModel = "reference_model", calibrationImages = "calibration_images", dataset, metric, `protocol`,
                 warningPercentile = "warning_percentile", warningScore = "warning_score", featureSpace = "feature_space"
        }
    }

    /// The feature-space calibration without its distances.
    struct FeatureScoring: Codable {
        var metric: String
        var k: Int
        var pooling: String
        var bankImages: Int
        var bankDataset: String
        var calibrationImages: Int
        var dataset: String
        enum CodingKeys: String, CodingKey {
            case metric, k, pooling, bankImages = "bank_images", bankDataset = "bank_dataset", calibrationImages = "calibration_images", dataset
        }
    }

    struct Architecture: Codable {
        var type = "vit"
        /// The pretraining objective, or "encoder" for a plain encoder.
        var objective: String
        var imgSize: Int
        var patchSize: Int
        var inChans: Int
        var embedDim: Int
        var depth: Int
        var numHeads: Int
        var qkvBias: QKVBias
        var parameters: Int
        enum CodingKeys: String, CodingKey {
            case type, objective, imgSize = "img_size", patchSize = "patch_size", inChans = "in_chans", embedDim = "embed_dim",
                 depth, numHeads = "num_heads", qkvBias = "qkv_bias", parameters
        }
    }

    struct Embedding: Codable {
        var dimensions: Int
        var defaultPooling: Pooling
        var poolings = Pooling.allCases
        enum CodingKeys: String, CodingKey { case dimensions, defaultPooling = "default_pooling", poolings }
    }

    struct Preprocessing: Codable {
        var mean: [Double]
        var std: [Double]
        var cropPct: Double
        var resize = "bicubic (antialiased), shorter side, then center crop"
        enum CodingKeys: String, CodingKey { case mean, std, cropPct = "crop_pct", resize }
    }

    struct Limits: Codable {
        var maxBatch: Int
        var maxBatchDelayMs: Double
        var maxQueue: Int
        var maxImagesPerRequest: Int
        var maxPixelsPerImage: Int
        var requestTimeoutS: Double
        /// Request bodies above it get 413 (JSON carries images as base64: a third larger than the files).
        var maxBodyBytes: Int
        enum CodingKeys: String, CodingKey {
            case maxBatch = "max_batch", maxBatchDelayMs = "max_batch_delay_ms", maxQueue = "max_queue",
                 maxImagesPerRequest = "max_images_per_request", maxPixelsPerImage = "max_pixels_per_image",
                 requestTimeoutS = "request_timeout_s", maxBodyBytes = "max_body_bytes"
        }
    }

    struct ReconstructionDefaults: Codable {
        var defaultMaskRatio: Double
        var defaultMasking: MaskingSpec
        var patches: Int
        enum CodingKeys: String, CodingKey { case defaultMaskRatio = "default_mask_ratio", defaultMasking = "default_masking", patches }
    }
}
