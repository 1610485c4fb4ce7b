import Checkpoint
import Tensor
import ViT

/// LoMaR behind the objective seam: its settings, options, flags and step.
extension LoMaR: PretrainingObjective {
    public static let name = "lomar"
    public static let displayName = "LoMaR"
    public static let summary = "LoMaR: masked patches reconstructed inside small windows (mask token in the encoder, "
        + "relative positions only); cost per image independent of the resolution"
    public static let lossNames = ["loss"]

    /// config.json beside the encoder (official `forward(imgs, window_size, num_window, mask_ratio)`
    /// arguments and `norm_pix_loss`).
    public struct Settings: ObjectiveSettings {
        /// K, the window side in patches; nil: half the grid, rounded (at least 2), so that a window covers about
        /// the share of the image the official 7×7 covers of ViT-B's 14×14 grid (models_lomar.py
        /// `forward(imgs, window_size=7, …)`, the README's `--window_size 7` at 224 px).
        public var windowSize: Int?
        /// Windows per image M (official default 4).
        public var numWindow: Int?
        /// Masked share of each window (official default 0.8): ⌊K²·ratio⌋ patches.
        public var maskRatio: Double?
        /// Standardized per-patch pixel target (default on, as the README's command).
        public var normPixLoss: Bool?

        enum CodingKeys: String, CodingKey {
            case windowSize = "window_size", numWindow = "num_window", maskRatio = "mask_ratio", normPixLoss = "norm_pix_loss"
        }

        public init(windowSize: Int? = nil, numWindow: Int? = nil, maskRatio: Double? = nil, normPixLoss: Bool? = nil) {
            self.windowSize = windowSize; self.numWindow = numWindow; self.maskRatio = maskRatio; self.normPixLoss = normPixLoss
        }

        public static func defaultWindowSize(grid: Int) -> Int { max(2, Int((Double(grid) / 2).rounded())) }
        public func windowSize(grid: Int) -> Int { windowSize ?? Self.defaultWindowSize(grid: grid) }
        public var windows: Int { numWindow ?? 4 }
        /// `int(window_size * window_size * mask_ratio)`.
        public func maskedCount(window k: Int) -> Int { Int(Double(k * k) * (maskRatio ?? 0.8)) }

        public func validationErrors(encoder: ViTConfig) -> [String] {
            var errors: [String] = []
            let grid = encoder.gridSize, k = windowSize(grid: grid)
            // A window needs a visible and a masked patch, so K ≥ 2 and the grid at least 2×2; checked
            // only on a valid patch grid (a window against a truncated grid would name the wrong cause).
            var windowFits = false
            if encoder.validationErrors().isEmpty {
                if grid < 2 {
                    errors.append("LoMaR needs a patch grid of at least 2×2 (img_size / patch_size ≥ 2), got \(grid)×\(grid)")
                } else if k < 2 || k > grid {
                    errors.append("window_size must be within 2...\(grid) (the \(grid)×\(grid) patch grid), got \(k)")
                } else {
                    windowFits = true
                }
            }
            if windows < 1 { errors.append("num_window must be positive, got \(windows)") }
            let ratio = maskRatio ?? 0.8
            if !(ratio > 0 && ratio < 1) {
                errors.append("mask_ratio must be between 0 and 1 (exclusive), got \(ratio)")
            } else if windowFits, case let masked = maskedCount(window: k), !(1..<(k * k)).contains(masked) {
                errors.append("mask_ratio \(ratio) masks \(masked) of a window's \(k * k) patches; LoMaR needs 1...\(k * k - 1)")
            }
            if encoder.posEmbed != .absent { errors.append("LoMaR's encoder has no absolute positions: pos_embed must be \"none\"") }
            if encoder.relativePosition == nil {
                errors.append("LoMaR's encoder needs relative_position (\"irpe_product_k\"): windows have no other position")
            }
            return errors
        }
    }

    public struct Options: ObjectiveOptions {
        public var windowPairing: WindowPairing
        enum CodingKeys: String, CodingKey { case windowPairing = "window_pairing" }
        public init(windowPairing: WindowPairing = .distinct) { self.windowPairing = windowPairing }
    }

    public static let flags: [ObjectiveFlag] = [
        .value("window-size", "Window side K in patches (default: half the patch grid, rounded, at least 2; officially 7 of 14)."),
        .value("num-window", "Windows per image (default 4)."),
        .value("window-pairing", "distinct (default: every image gets all its windows) or official (the official code's "
               + "rows: image r mod N with window r mod M, so with N a multiple of M an image gets one window M times)."),
    ]

    /// The official run masks 80% of each window.
    public static var defaultMaskRatio: Double { 0.8 }

    public static func configure(_ shape: BackboneShape, maskRatio: Double, flags: ObjectiveFlagValues) throws -> (ViTConfig, Settings) {
        let (mean, std) = shape.imageNetNormalization
        var encoder = shape.encoder(qkvBias: .qkv, mean: mean, std: std, posEmbed: .absent)
        encoder.relativePosition = .irpeProductK
        let grid = encoder.gridSize
        let settings = Settings(windowSize: try flags.int("window-size") ?? Settings.defaultWindowSize(grid: grid),
                                numWindow: try flags.int("num-window") ?? 4, maskRatio: maskRatio, normPixLoss: true)
        let problems = encoder.validationErrors() + settings.validationErrors(encoder: encoder)
        try require(problems.isEmpty, problems.joined(separator: "; "))
        return (encoder, settings)
    }

    public static func options(flags: ObjectiveFlagValues, epochs: Int) throws -> Options {
        Options(windowPairing: try flags.choice("window-pairing") ?? Options().windowPairing)
    }

    /// Official init (models_lomar.py `initialize_weights`): Xavier linears and patch embedding,
    /// cls and mask tokens N(0, 0.02²), LayerNorm 1/0, biases 0, the iRPE tables 0 (irpe.py creates
    /// them as zeros and passes no initializer).
    public func initialize(rng: inout SeededRandom) {
        ParameterInit(classTokenStd: 0.02, truncatedMaskTokens: false, xavierPerQKVBlock: false).initialize(parameters, rng: &rng)
    }

    /// Official checkpoints carry a frozen sin-cos `pos_embed` the encoder never adds.
    public func load(_ weights: SafeTensorsFile, ignoring: [String]) throws {
        try ModelDirectory.load(parameters, from: weights, ignoring: ignoring + ["pos_embed"])
    }

    public func plan(batch: Int, rng: inout SeededRandom, options: Options, clock: TrainingClock) -> LoMaRPlan {
        let k = windowSize
        return LoMaRPlan.draw(batch: batch, grid: encoder.config.gridSize, size: k, count: settings.windows,
                              masked: settings.maskedCount(window: k), pairing: options.windowPairing, rng: &rng)
    }

    public func step(_ batch: PretrainingBatch, plan: LoMaRPlan, options: Options, clock: TrainingClock, lossBatch: Int,
                     phase: PhaseMarker?) -> StepReport {
        let out = step(batch.images, plan: plan, lossBatch: lossBatch)
        phase?("lomar forward + backward")
        // Reported under both names, as MAE does, so every objective's pixel loss plots on one chart.
        return StepReport(losses: [.init("loss", out.loss), .init("pixel_loss", out.loss)])
    }
}
