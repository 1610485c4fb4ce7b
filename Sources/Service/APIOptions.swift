import Foundation
import ViT
import Objectives

// The values of the /v1 endpoints' enum-valued options, as openapi.yaml names them.

/// `pooling`: the class token or the mean of the patch tokens (default: the model's `global_pool`).
enum Pooling: String, Codable, CaseIterable, Sendable {
    case cls, mean

    init(_ pooling: ViTConfig.Pooling) {
        switch pooling { case .cls: self = .cls; case .mean: self = .mean }
    }
    var vit: ViTConfig.Pooling {
        switch self { case .cls: .cls; case .mean: .mean }
    }
}

/// `encoding_format`: JSON numbers, or base64 of the little-endian float32 bytes.
enum EncodingFormat: String, Codable, CaseIterable, Sendable {
    case float, base64
}

/// `stats`: the statistics that map normalized-pixel predictions back to pixels.
enum ReconstructionStats: String, Codable, CaseIterable, Sendable {
    case patch, visible

    var statistics: Reconstruction.Statistics {
        switch self { case .patch: .patch; case .visible: .visible }
    }

    init(_ statistics: Reconstruction.Statistics) {
        switch statistics { case .patch: self = .patch; case .visible: self = .visible }
    }
}
