import Foundation
import Tensor
import ViT

/// An objective whose export turns images into a grid of discrete codes and back (PeCo's
/// tokenizer): what the service's `/v1/tokens` serves.
public protocol ImageTokenizing: Sendable {
    /// K: codes are 0..<K.
    var codebookSize: Int { get }
    /// Each image's code grid, row-major over the patch grid (model-normalized input, (B, C, H, W)).
    func codes(_ images: Tensor) -> [[Int]]
    /// The images (B, C, H, W) in the input normalization that code grids decode to.
    func decode(_ codes: [[Int]]) -> Tensor
}

/// An objective that predicts a tokenizer's codes at masked patches (BEiT-style stage 2): with
/// that tokenizer it reconstructs masked images (`TokenDecodedReconstructor`).
public protocol CodePredicting: Sendable {
    /// The tokenizer whose codes it predicts, as its config names it (a path, or an export's
    /// directory name).
    var tokenizerReference: String? { get }
    /// SHA-256 (hex) of the tokenizer's weights file it trained on, when its config records it.
    var tokenizerSHA256: String? { get }
    /// K of the prediction head.
    var vocabularySize: Int { get }
    /// The arg-max code of every patch `masks` hides (per image, true = masked); visible patches get -1.
    func predictCodes(_ images: Tensor, masks: [[Bool]]) -> [[Int]]
    /// The masking and masked-patch count of its training: the service's defaults.
    var defaultMasking: MaskingSpec { get }
    var maskedCount: Int { get }
    /// Its training masks with a run's options (`PixelReconstructing.defaultPlans`), and them in
    /// words; by default `defaultMasking`'s plan, and no words.
    func defaultPlans(batch: Int, grid: Int, masked: Int, options: (any ObjectiveOptions)?, rng: inout SeededRandom) -> [MaskGroup]
    func defaultMaskingDetail(grid: Int, options: (any ObjectiveOptions)?) -> String?
}

extension CodePredicting {
    /// The tokenizer's directory for the model whose config.json is in `modelDirectory`: the path
    /// a run's config names, or for an exported config's bare directory name the folder of that
    /// name beside the model (as `--models-dir` holds both).
    public func tokenizerDirectory(besides modelDirectory: URL) -> URL? {
        guard let reference = tokenizerReference else { return nil }
        return reference.contains("/") ? URL(fileURLWithPath: reference)
            : modelDirectory.standardizedFileURL.deletingLastPathComponent().appendingPathComponent(reference)
    }

    /// Why `tokenizer` (encoder config `b`, weights file digest `weightsSHA256`) is not the one this
    /// predictor (encoder config `a`) was trained against, as phrases; empty when they pair: the
    /// weights file it trained on (when its config records it), the codebook size, and what the
    /// images become (size, patch, channels, mean, std).
    public func pairingDifferences(encoder a: ViTConfig, tokenizer: any ImageTokenizing, tokenizerEncoder b: ViTConfig,
                                   weightsSHA256: String) -> [String] {
        var differences: [String] = []
        if let trained = tokenizerSHA256, trained != weightsSHA256 {
            differences.append("its weights have SHA-256 \(weightsSHA256.prefix(12))…, the model trained on \(trained.prefix(12))… "
                + "(config.json tokenizer_sha256)")
        }
        if tokenizer.codebookSize != vocabularySize {
            differences.append("codebook \(tokenizer.codebookSize) vs the head's \(vocabularySize) codes")
        }
        if (a.imgSize, a.patchSize, a.inChans) != (b.imgSize, b.patchSize, b.inChans) {
            differences.append("\(b.imgSize) px / patch \(b.patchSize) / \(b.inChans) channels vs \(a.imgSize) / \(a.patchSize) / \(a.inChans)")
        }
        if a.mean != b.mean || a.std != b.std { differences.append("input normalization (mean/std)") }
        return differences
    }

    public func defaultPlans(batch: Int, grid: Int, masked: Int, options: (any ObjectiveOptions)?, rng: inout SeededRandom) -> [MaskGroup] {
        [.whole(defaultMasking.plan(batch: batch, grid: grid, masked: masked, rng: &rng))]
    }

    public func defaultMaskingDetail(grid: Int, options: (any ObjectiveOptions)?) -> String? { nil }
}

extension PretrainingNetwork {
    /// The code grids this network makes, when it is a tokenizer.
    public var tokenizer: (any ImageTokenizing)? { objective as? any ImageTokenizing }
    /// The code predictions this network makes, when it predicts a tokenizer's codes.
    public var codePredictor: (any CodePredicting)? { objective as? any CodePredicting }
}

/// A masked image reconstructed through codes: the predictor's arg-max codes at the masked
/// patches, the tokenizer's own codes at the visible ones, the whole grid decoded by the
/// tokenizer. Both networks must read the same normalized input (same size, patch, channels,
/// mean and std; the caller checks).
public struct TokenDecodedReconstructor: PixelReconstructing {
    public let predictor: any CodePredicting
    public let tokenizer: any ImageTokenizing

    public init(predictor: any CodePredicting, tokenizer: any ImageTokenizing) {
        self.predictor = predictor; self.tokenizer = tokenizer
    }

    public var defaultMasking: MaskingSpec { predictor.defaultMasking }
    public var maskedCount: Int { predictor.maskedCount }
    public func defaultPlans(batch: Int, grid: Int, masked: Int, options: (any ObjectiveOptions)?, rng: inout SeededRandom) -> [MaskGroup] {
        predictor.defaultPlans(batch: batch, grid: grid, masked: masked, options: options, rng: &rng)
    }
    public func defaultMaskingDetail(grid: Int, options: (any ObjectiveOptions)?) -> String? {
        predictor.defaultMaskingDetail(grid: grid, options: options)
    }

    /// The code grid the reconstruction decodes: visible patches keep the image's own codes.
    public func mergedCodes(_ images: Tensor, plan: MaskPlan) -> [[Int]] {
        let masks = Self.masks(plan)
        let own = tokenizer.codes(images)
        let predicted = predictor.predictCodes(images, masks: masks)
        return zip(zip(own, predicted), masks).map { pair, mask in
            mask.indices.map { mask[$0] ? pair.1[$0] : pair.0[$0] }
        }
    }

    public func predictPixels(_ images: Tensor, plan: MaskPlan) -> PixelPrediction {
        let codes = mergedCodes(images, plan: plan)
        let decoded = tokenizer.decode(codes)
        let grid = Int(Double(plan.numPatches).squareRoot().rounded())   // square images: one code per patch
        let p = images.shape[2] / grid
        return PixelPrediction(patches: PatchOps.patchify(decoded, patch: p), normalization: nil, codes: codes)
    }

    /// Per image, N flags (true = masked) from a plan's order.
    public static func masks(_ plan: MaskPlan) -> [[Bool]] {
        plan.order.map { order in
            var mask = [Bool](repeating: false, count: plan.numPatches)
            for patch in order[plan.visible...] { mask[patch] = true }
            return mask
        }
    }
}
