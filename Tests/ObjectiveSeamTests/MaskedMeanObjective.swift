import Tensor
import ViT
import Objectives

/// A toy third objective, written against the seam alone: the encoder sees the visible patches and
/// a linear head on its class token predicts the mean of the masked pixels. It exists to show that
/// an objective needs no file outside its own (`ObjectiveSeamTests`).
struct MaskedMeanObjective: PretrainingObjective {
    struct Settings: ObjectiveSettings {
        var maskRatio: Double
        enum CodingKeys: String, CodingKey { case maskRatio = "mask_ratio" }
        func validationErrors(encoder: ViTConfig) -> [String] {
            maskRatio > 0 && maskRatio < 1 ? [] : ["mask_ratio must be within (0, 1)"]
        }
    }
    struct Options: ObjectiveOptions { var masking: MaskingSpec = .random }

    static let name = "toy-masked-mean"
    static let displayName = "Masked mean"
    static let summary = "a toy: the class token predicts the mean of the masked pixels"
    static let lossNames = ["loss"]
    static let flags: [ObjectiveFlag] = [.value("masking", "random or block")]

    static func configure(_ shape: BackboneShape, maskRatio: Double, flags: ObjectiveFlagValues) throws -> (ViTConfig, Settings) {
        let half = [Float](repeating: 0.5, count: shape.channels)
        return (shape.encoder(qkvBias: .qkv, mean: half, std: half, posEmbed: .sincosMAE), Settings(maskRatio: maskRatio))
    }
    static func options(flags: ObjectiveFlagValues, epochs: Int) throws -> Options { Options(masking: try flags.choice("masking") ?? .random) }

    let settings: Settings
    let encoder: VisionTransformer
    let head: Linear
    let parameters: ParameterList

    init(encoder c: ViTConfig, settings: Settings) {
        self.settings = settings
        encoder = VisionTransformer(config: c, parts: .init(norm: true))
        var p = encoder.parameters
        head = Linear(c.embedDim, 1, name: "mean_head", into: &p)
        parameters = p
    }

    func initialize(rng: inout SeededRandom) {
        ParameterInit(classTokenStd: 0.02, truncatedMaskTokens: false, xavierPerQKVBlock: false).initialize(parameters, rng: &rng)
    }

    func plan(batch: Int, rng: inout SeededRandom, options: Options, clock: TrainingClock) -> MaskPlan {
        let c = encoder.config
        return options.masking.plan(batch: batch, grid: c.gridSize, masked: MaskingSpec.maskedCount(ratio: settings.maskRatio, patches: c.numPatches), rng: &rng)
    }

    func step(_ batch: PretrainingBatch, plan: MaskPlan, options: Options, clock: TrainingClock, lossBatch: Int, phase: PhaseMarker?) -> StepReport {
        let (encoded, cache) = encoder.forwardVisible(batch.images, plan: plan)
        let classRows = [[Int]](repeating: [0], count: plan.batch)
        let cls = TokenOps.gather(encoded.latent, index: classRows)
        let prediction = head.forward(cls)                                    // (B, 1, 1)
        let patches = PatchOps.patchify(batch.images, patch: encoder.config.patchSize)
        let target = Tensor(shape: [plan.batch, 1, 1], data: plan.maskedPatches.enumerated().map { b, hidden in
            let values = hidden.flatMap { n in (0..<patches.lastDim).map { patches.data[(b * plan.numPatches + n) * patches.lastDim + $0] } }
            return values.reduce(0, +) / Float(values.count)
        })
        let (loss, dPrediction) = WeightedMSE.forwardBackward(prediction: prediction, target: target,
                                                              weight: [Float](repeating: 1, count: plan.batch), normalizer: Float(lossBatch))
        let dLatent = TokenOps.scatterAdd(head.backward(dPrediction, input: cls), index: classRows, tokens: encoded.latent.shape[1])
        _ = encoder.backwardVisible(dLatent: dLatent, dFeatures: [:], cache: cache)
        return StepReport(losses: [.init("loss", loss)])
    }
}
