import Foundation
import ViT

// The request bodies of the /v1 endpoints, field for field as openapi.yaml's schemas
// (EmbeddingRequest, ClassificationRequest, ReconstructionRequest). Raw-image and multipart
// requests fill the same types from query parameters and form fields.

/// `input`: one image, or a list of them; a list item that is not a string is nil, refused in
/// its turn (so an earlier item's fault is reported first).
enum ImageInput {
    case one(String)
    case list([String?])
}

/// `mask`: patch indices, or an image (base64 or a data URI) whose white parts are masked.
enum MaskInput {
    case indices([Double?])
    case image(String)
}

/// A body whose images come in `input` (JSON) or beside its options (raw image, multipart).
protocol ImageRequest: Decodable {
    /// Every option the endpoint takes (JSON fields, query parameters, form fields); any other name is refused.
    associatedtype CodingKeys: CodingKey & CaseIterable
    /// Reads every option; throws only when a JSON body is not valid JSON.
    init(fields: RequestFields) throws
    var input: Field<ImageInput> { get }
}

/// POST /v1/embeddings.
struct EmbeddingRequest: ImageRequest {
    var model: Field<String>
    var input: Field<ImageInput>
    var pooling: Field<Pooling>
    var normalize: Field<Bool>
    var encodingFormat: Field<EncodingFormat>
    /// Must equal the model's width. Kept as the number sent: 32.5 is simply a width the model lacks.
    var dimensions: Field<Double>

    /// `user` is OpenAI's end-user tag, which its clients may send: accepted and ignored.
    enum CodingKeys: String, CodingKey, CaseIterable {
        case model, input, pooling, normalize, encodingFormat = "encoding_format", dimensions, user
    }

    init(from decoder: any Decoder) throws { try self.init(fields: RequestFields(decoder, keys: CodingKeys.self)) }

    init(fields f: RequestFields) throws {
        model = try f.string(CodingKeys.model)
        input = try f.images(CodingKeys.input)
        pooling = try f.choice(CodingKeys.pooling)
        normalize = try f.bool(CodingKeys.normalize)
        encodingFormat = try f.choice(CodingKeys.encodingFormat)
        dimensions = try f.number(CodingKeys.dimensions)
    }
}

/// POST /v1/classifications.
struct ClassificationRequest: ImageRequest {
    var model: Field<String>
    var input: Field<ImageInput>
    /// At least 1; clamped to the number of labels.
    var topK: Field<Int>

    enum CodingKeys: String, CodingKey, CaseIterable {
        case model, input, topK = "top_k"
    }

    init(from decoder: any Decoder) throws { try self.init(fields: RequestFields(decoder, keys: CodingKeys.self)) }

    init(fields f: RequestFields) throws {
        model = try f.string(CodingKeys.model)
        input = try f.images(CodingKeys.input)
        topK = try f.integer(CodingKeys.topK, "'top_k' must be a positive integer") { $0 >= 1 && $0 == $0.rounded() }
    }
}

/// POST /v1/reconstructions.
struct ReconstructionRequest: ImageRequest {
    var model: Field<String>
    var input: Field<ImageInput>
    /// Strictly between 0 and 1 (checked against the model's patch count).
    var maskRatio: Field<Double>
    var seed: Field<Int>
    /// Masked patch indices, row-major, or a mask image; replaces mask_ratio, seed and masking. An
    /// index that is not a number is nil: the handler, which knows the patch count, refuses it.
    var mask: Field<MaskInput>
    var masking: Field<MaskingSpec>
    var scale: Field<Int>
    var stats: Field<ReconstructionStats>

    enum CodingKeys: String, CodingKey, CaseIterable {
        case model, input, maskRatio = "mask_ratio", seed, mask, masking, scale, stats
    }

    init(from decoder: any Decoder) throws { try self.init(fields: RequestFields(decoder, keys: CodingKeys.self)) }

    init(fields f: RequestFields) throws {
        model = try f.string(CodingKeys.model)
        input = try f.images(CodingKeys.input)
        maskRatio = try f.number(CodingKeys.maskRatio)
        // Below 9e15 every integer is exact as a Double.
        seed = try f.integer(CodingKeys.seed, "'seed' must be a non-negative integer") { $0 >= 0 && $0 == $0.rounded() && $0 < 9e15 }
        mask = try f.numbersOrImage(CodingKeys.mask, neither: "'mask' must be a list of patch indices or a mask image (base64 or a data URI)")
        masking = try f.choice(CodingKeys.masking)
        // A fraction is cut off (2.5 is 2), as it always was.
        scale = try f.integer(CodingKeys.scale, "'scale' must be an integer in 1...16") { $0 >= 1 && $0 < 17 }
        stats = try f.choice(CodingKeys.stats)
    }
}

/// POST /v1/tokens.
struct TokenRequest: ImageRequest {
    var model: Field<String>
    var input: Field<ImageInput>
    /// Also answer with the tokenizer's decoding of the codes (a PNG unless JSON is preferred).
    var decode: Field<Bool>
    var scale: Field<Int>

    enum CodingKeys: String, CodingKey, CaseIterable {
        case model, input, decode, scale
    }

    init(from decoder: any Decoder) throws { try self.init(fields: RequestFields(decoder, keys: CodingKeys.self)) }

    init(fields f: RequestFields) throws {
        model = try f.string(CodingKeys.model)
        input = try f.images(CodingKeys.input)
        decode = try f.bool(CodingKeys.decode)
        scale = try f.integer(CodingKeys.scale, "'scale' must be an integer in 1...16") { $0 >= 1 && $0 < 17 }
    }
}

