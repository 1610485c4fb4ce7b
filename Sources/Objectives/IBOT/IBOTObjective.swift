import Foundation
import Tensor
import ViT

/// iBOT behind the objective seam: options and schedules of the official recipe (bytedance/ibot
/// main_ibot.py and utils.py), its masks, step, optimizer adjustments and EMA teacher.
/// Two departures from main_ibot.py's defaults: no stochastic depth (its student's drop_path 0.1;
/// this trainer's ViT has none) and fp32 throughout (its default is fp16 autocast).
extension IBOT: PretrainingObjective {
    public static let name = "ibot"
    public static let displayName = "iBOT"
    public static let summary = "iBOT: an EMA teacher's [CLS] and patch distributions distilled into a student "
        + "that sees block-masked crops (self-distillation with an online tokenizer); serves the teacher's embeddings"
    public static let lossNames = ["loss", "cls_loss", "patch_loss"]

    /// Training options (official argument names in comments).
    public struct Options: ObjectiveOptions {
        public enum MaskShape: String, Codable, Sendable, CaseIterable { case block, rand }

        /// Global crops per image (`--global_crops_number`) and their random-resized-crop scale
        /// (the code's default with or without local crops).
        public var globalCrops: Int = 2
        public var globalCropScale: ClosedRange<Double> = 0.14...1
        /// Local crops per image (`--local_crops_number`; 0, the code default, turns multi-crop off),
        /// their side in pixels (nil: `defaultLocalCropSize`) and scale (`--local_crops_scale`).
        public var localCrops: Int = 0
        public var localCropSize: Int?
        public var localCropScale: ClosedRange<Double> = 0.05...0.4
        /// Per crop, a masked share drawn from these candidates (`--pred_ratio`, `--pred_ratio_var`).
        public var predRatio: [Double] = [0, 0.3]
        public var predRatioVar: [Double] = [0, 0.2]
        public var predShape: MaskShape = .block
        public var studentTemp: Double = 0.1
        /// Teacher temperatures, warmed up linearly over `warmupTeacherTempEpochs` (`--teacher_temp`, ...).
        /// [CLS] at main_ibot.py's default 0.04, the value that goes with cosine logits (`normLastLayer`):
        /// the ViT-S README's 0.07 belongs to its free last-layer norm, and with cosine logits it left
        /// our Fashion-MNIST teacher near uniform (`teacher_entropy` close to ln K).
        public var teacherTemp: Double = 0.04
        public var warmupTeacherTemp: Double = 0.04
        public var teacherPatchTemp: Double = 0.07
        public var warmupTeacherPatchTemp: Double = 0.04
        public var warmupTeacherTempEpochs: Int
        /// The teacher's EMA momentum, cosine from this to 1 over the run (`--momentum_teacher`).
        public var momentumTeacher: Double = 0.996
        /// The weight decay's cosine schedule ends here (`--weight_decay_end`); it starts at the recipe's.
        public var weightDecayEnd: Double = 0.4
        /// Per-tensor gradient norm clip (`--clip_grad`; 0 turns it off).
        public var clipGrad: Double = 3
        /// Epochs during which the head's last layer does not move (`--freeze_last_layer`).
        public var freezeLastLayer: Int = 1
        /// The global crops' colour jitter, grayscale, blur and solarization (`DataAugmentationiBOT`;
        /// no official switch). A recipe written before this option decodes as false: its run was
        /// trained without them, and a resume must see the same data.
        public var photometric: Bool = true

        enum CodingKeys: String, CodingKey {
            case globalCrops = "global_crops_number", globalCropScale = "global_crops_scale", predRatio = "pred_ratio"
            case predRatioVar = "pred_ratio_var", predShape = "pred_shape", studentTemp = "student_temp"
            case teacherTemp = "teacher_temp", warmupTeacherTemp = "warmup_teacher_temp", teacherPatchTemp = "teacher_patch_temp"
            case warmupTeacherPatchTemp = "warmup_teacher_patch_temp", warmupTeacherTempEpochs = "warmup_teacher_temp_epochs"
            case momentumTeacher = "momentum_teacher", weightDecayEnd = "weight_decay_end", clipGrad = "clip_grad"
            case freezeLastLayer = "freeze_last_layer", photometric
            case localCrops = "local_crops_number", localCropSize = "local_crops_size", localCropScale = "local_crops_scale"
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            globalCrops = try c.decode(Int.self, forKey: .globalCrops)
            globalCropScale = try c.decode(ClosedRange<Double>.self, forKey: .globalCropScale)
            predRatio = try c.decode([Double].self, forKey: .predRatio)
            predRatioVar = try c.decode([Double].self, forKey: .predRatioVar)
            predShape = try c.decode(MaskShape.self, forKey: .predShape)
            studentTemp = try c.decode(Double.self, forKey: .studentTemp)
            teacherTemp = try c.decode(Double.self, forKey: .teacherTemp)
            warmupTeacherTemp = try c.decode(Double.self, forKey: .warmupTeacherTemp)
            teacherPatchTemp = try c.decode(Double.self, forKey: .teacherPatchTemp)
            warmupTeacherPatchTemp = try c.decode(Double.self, forKey: .warmupTeacherPatchTemp)
            warmupTeacherTempEpochs = try c.decode(Int.self, forKey: .warmupTeacherTempEpochs)
            momentumTeacher = try c.decode(Double.self, forKey: .momentumTeacher)
            weightDecayEnd = try c.decode(Double.self, forKey: .weightDecayEnd)
            clipGrad = try c.decode(Double.self, forKey: .clipGrad)
            freezeLastLayer = try c.decode(Int.self, forKey: .freezeLastLayer)
            photometric = try c.decodeIfPresent(Bool.self, forKey: .photometric) ?? false
            // Recipes written before local crops trained without them.
            localCrops = try c.decodeIfPresent(Int.self, forKey: .localCrops) ?? 0
            localCropSize = try c.decodeIfPresent(Int.self, forKey: .localCropSize)
            localCropScale = try c.decodeIfPresent(ClosedRange<Double>.self, forKey: .localCropScale) ?? 0.05...0.4
        }

        /// The official 96 of 224 pixels (3/7) of the model's side, in whole patches (at least one):
        /// 12 px for 28-pixel images with 4-pixel patches.
        public static func defaultLocalCropSize(imageSize: Int, patch: Int) -> Int {
            max(1, Int((Double(imageSize) * 96 / 224 / Double(patch)).rounded())) * patch
        }

        /// The local crops' side for `encoder`.
        public func localCropSize(for encoder: ViTConfig) -> Int {
            localCropSize ?? Self.defaultLocalCropSize(imageSize: encoder.imgSize, patch: encoder.patchSize)
        }

        /// A local crop is a whole number of patches and no larger than the model's images.
        public func validationErrors(encoder: ViTConfig) -> [String] {
            guard localCrops > 0 else { return [] }
            let size = localCropSize(for: encoder), p = encoder.patchSize
            guard size % p != 0 || size < p || size > encoder.imgSize else { return [] }
            return ["--local-crop-size \(size) must be a multiple of the patch size \(p) within \(p)...\(encoder.imgSize)"]
        }

        public init(warmupTeacherTempEpochs: Int) { self.warmupTeacherTempEpochs = warmupTeacherTempEpochs }

        /// `np.linspace(warmup, final, epochs)` for the first epochs, then `final` (main_ibot.py
        /// `iBOTLoss.__init__`). `np.linspace(a, b, 1)` is `[a]`: a one-epoch warmup spends epoch 0 at `warmup`.
        static func warmed(_ warmup: Double, _ final: Double, epochs: Int, at epoch: Int) -> Double {
            guard epoch < epochs else { return final }
            guard epochs > 1 else { return warmup }
            return warmup + (final - warmup) * Double(epoch) / Double(epochs - 1)
        }

        public func temperatures(at clock: TrainingClock) -> IBOTLoss.Temperatures {
            IBOTLoss.Temperatures(student: Float(studentTemp),
                                  teacherCls: Float(Self.warmed(warmupTeacherTemp, teacherTemp, epochs: warmupTeacherTempEpochs, at: clock.epoch)),
                                  teacherPatch: Float(Self.warmed(warmupTeacherPatchTemp, teacherPatchTemp, epochs: warmupTeacherTempEpochs,
                                                                  at: clock.epoch)))
        }

        /// `utils.cosine_scheduler(base, final, epochs, iters)` at the clock's iteration.
        static func cosine(from base: Double, to final: Double, at clock: TrainingClock) -> Double {
            final + 0.5 * (base - final) * (1 + cos(Double.pi * Double(clock.step) / Double(max(clock.totalSteps, 1))))
        }

        public func momentum(at clock: TrainingClock) -> Double { Self.cosine(from: momentumTeacher, to: 1, at: clock) }
    }

    public static let flags: [ObjectiveFlag] = [
        .value("out-dim", "Prototypes K of the head's last layer (default 1024; officially 8192 at ImageNet scale)."),
        .value("head-hidden", "Hidden width of the head's MLP (default 512; officially 2048)."),
        .value("head-bottleneck", "Bottleneck width before the weight-normalized last layer (default 256)."),
        .value("norm-last-layer", "true (default: the last layer's g frozen at 1, cosine logits) or false."),
        .value("global-crops", "Global crops per image (default 2)."),
        .value("global-crop-scale", "Crop scale range of the global crops, e.g. 0.14,1 (default, the official code's with or "
               + "without local crops; its README's multi-crop recipe uses 0.25,1)."),
        .value("local-crops", "Local crops per image, seen by the student only, unmasked, for the [CLS] loss against each "
               + "teacher global crop (default 0: multi-crop off, as the official code)."),
        .value("local-crop-size", "Side of the local crops in pixels, a multiple of the patch (default: 3/7 of the image size "
               + "in whole patches, as 96 of 224; 12 for 28-pixel images with 4-pixel patches)."),
        .value("local-crop-scale", "Crop scale range of the local crops, e.g. 0.05,0.4 (default; the README's recipe 0.05,0.25)."),
        .value("pred-ratio", "Masked-share candidates per crop, e.g. 0,0.3 (default: about half the crops unmasked)."),
        .value("pred-ratio-var", "Spread of each candidate, e.g. 0,0.2 (default)."),
        .value("pred-shape", "Mask shape: block (default) or rand."),
        .value("teacher-temp", "Teacher temperature of [CLS] after warmup (default 0.04; the ViT-S README uses 0.07 with --norm-last-layer false)."),
        .value("teacher-patch-temp", "Teacher temperature of patch tokens after warmup (default 0.07)."),
        .value("warmup-teacher-temp", "Teacher temperatures at the start (default 0.04)."),
        .value("warmup-teacher-temp-epochs", "Epochs of the teacher-temperature warmup (default: 30% of the epochs, as 30 of 100)."),
        .value("momentum-teacher", "Teacher EMA momentum at the start, cosine to 1 (default 0.996)."),
        .value("weight-decay-end", "Weight decay at the end of its cosine schedule (default 0.4; it starts at --weight-decay)."),
        .value("clip-grad", "Per-tensor gradient norm clip (default 3; 0 turns it off)."),
        .value("freeze-last-layer", "Epochs the head's last layer stays frozen (default 1)."),
        .toggle("no-photometric", "Global crops without colour jitter, grayscale, blur and solarization (default: iBOT's two recipes)."),
    ]

    static func list(_ flags: ObjectiveFlagValues, _ name: String) throws -> [Double]? {
        guard let text = flags.string(name) else { return nil }
        let values = text.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil && $0!.isFinite }) else {
            throw ObjectiveFlagError("--\(name) needs comma-separated numbers, got '\(text)'")
        }
        return values.map { $0! }
    }

    public static func configure(_ shape: BackboneShape, maskRatio: Double, flags: ObjectiveFlagValues) throws -> (ViTConfig, Settings) {
        let (mean, std) = shape.imageNetNormalization
        let encoder = shape.encoder(qkvBias: .qkv, mean: mean, std: std, posEmbed: .checkpoint)
        var settings = Settings()
        if let k = try flags.int("out-dim") { settings.outDim = k }
        if let h = try flags.int("head-hidden") { settings.headHidden = h }
        if let b = try flags.int("head-bottleneck") { settings.headBottleneck = b }
        if let text = flags.string("norm-last-layer") {
            guard let value = Bool(text) else { throw ObjectiveFlagError("--norm-last-layer is true or false, got '\(text)'") }
            settings.normLastLayer = value
        }
        let problems = settings.validationErrors(encoder: encoder)
        try require(problems.isEmpty, problems.joined(separator: "; "))
        return (encoder, settings)
    }

    public static func options(flags: ObjectiveFlagValues, epochs: Int) throws -> Options {
        var o = Options(warmupTeacherTempEpochs: try flags.int("warmup-teacher-temp-epochs") ?? max(1, Int((Double(epochs) * 0.3).rounded())))
        if let n = try flags.int("global-crops") { o.globalCrops = n }
        if let s = try list(flags, "global-crop-scale") {
            try require(s.count == 2 && s[0] > 0 && s[0] <= s[1] && s[1] <= 1, "--global-crop-scale is two shares 0 < lo ≤ hi ≤ 1, e.g. 0.14,1")
            o.globalCropScale = s[0]...s[1]
        }
        if let n = try flags.int("local-crops") { o.localCrops = n }
        if let size = try flags.int("local-crop-size") { o.localCropSize = size }
        if let s = try list(flags, "local-crop-scale") {
            try require(s.count == 2 && s[0] > 0 && s[0] <= s[1] && s[1] <= 1, "--local-crop-scale is two shares 0 < lo ≤ hi ≤ 1, e.g. 0.05,0.4")
            o.localCropScale = s[0]...s[1]
        }
        if let r = try list(flags, "pred-ratio") { o.predRatio = r }
        if let v = try list(flags, "pred-ratio-var") { o.predRatioVar = v }
        if let shape = try flags.choice("pred-shape", Options.MaskShape.self) { o.predShape = shape }
        if let t = try flags.double("teacher-temp") { o.teacherTemp = t }
        if let t = try flags.double("teacher-patch-temp") { o.teacherPatchTemp = t }
        if let t = try flags.double("warmup-teacher-temp") { (o.warmupTeacherTemp, o.warmupTeacherPatchTemp) = (t, t) }
        if let m = try flags.double("momentum-teacher") { o.momentumTeacher = m }
        if let w = try flags.double("weight-decay-end") { o.weightDecayEnd = w }
        if let c = try flags.double("clip-grad") { o.clipGrad = c }
        if let f = try flags.int("freeze-last-layer") { o.freezeLastLayer = f }
        o.photometric = !flags.isSet("no-photometric")
        try require(o.globalCrops >= 2, "--global-crops must be at least 2 (the [CLS] loss pairs different crops)")
        try require(o.localCrops >= 0, "--local-crops cannot be negative")
        try require(o.localCropSize.map { $0 >= 1 } ?? true, "--local-crop-size must be positive")
        try require(o.predRatio.allSatisfy { (0..<1).contains($0) } && (o.predRatioVar.count == 1 || o.predRatioVar.count == o.predRatio.count)
                    && zip(o.predRatio, o.predRatioVar.count == 1 ? Array(repeating: o.predRatioVar[0], count: o.predRatio.count) : o.predRatioVar)
                        .allSatisfy { $0 - $1 >= 0 && $0 + $1 < 1 },
                    "--pred-ratio shares must lie in [0, 1) with their --pred-ratio-var spread (one spread, or one per share)")
        try require([o.teacherTemp, o.teacherPatchTemp, o.warmupTeacherTemp].allSatisfy { $0 > 0 }, "teacher temperatures must be positive")
        try require((0...1).contains(o.momentumTeacher), "--momentum-teacher is a decay within 0...1")
        try require(o.weightDecayEnd >= 0 && o.clipGrad >= 0 && o.freezeLastLayer >= 0 && o.warmupTeacherTempEpochs >= 1,
                    "--weight-decay-end, --clip-grad and --freeze-last-layer cannot be negative; --warmup-teacher-temp-epochs is at least 1")
        return o
    }

    /// The official recipe: lr 5e-4 per 256 images, warmup 10 of 100 epochs, cosine to 1e-6;
    /// AdamW with PyTorch's betas; weight decay 0.04 at the start.
    public static var defaultBaseLR: Double { 5e-4 }
    public static func defaultMinLR(peak: Double) -> Double { min(1e-6, peak) }
    public static var defaultWarmupShare: Double { 0.1 }
    public static var defaultBetas: (beta1: Double, beta2: Double) { (0.9, 0.999) }
    public static var defaultWeightDecay: Double { 0.04 }

    /// The served encoder: the teacher (the official README: "generally better").
    public var encoder: VisionTransformer { teacher }
    public var exportedEncoder: VisionTransformer? { teacher }

    /// Student, then the teacher under `teacher.`, then the loss's centres.
    public var checkpointParameters: ParameterList {
        var all = parameters
        all.append(contentsOf: teacherParameters, prefix: Self.teacherPrefix)
        all.add("ibot_loss.center", center)
        all.add("ibot_loss.center2", center2)
        return all
    }

    /// Official init (models/vision_transformer.py, models/head.py): Linear weights, `cls_token`
    /// and `pos_embed` truncated N(0, 0.02²) (timm's ±2 bounds), biases 0, LayerNorm 1/0; the patch
    /// embedding and the last layer's V keep PyTorch's default U(±1/√fan_in); g = 1;
    /// `masked_embed` 0. The teacher starts as the student.
    public func initialize(rng: inout SeededRandom) {
        for (name, p) in parameters.entries where p.trainable {
            let shape = p.shape
            func fill(_ f: (inout SeededRandom) -> Float) { p.fill { f(&rng) } }
            func pytorchDefault(fanIn: Int) {
                let bound = 1 / Float(fanIn).squareRoot()
                fill { ($0.uniform() * 2 - 1) * bound }
            }
            if name == "masked_embed" {
                fill { _ in 0 }
            } else if name.hasPrefix("patch_embed.proj.") {
                pytorchDefault(fanIn: student.config.patchDim)
            } else if name.hasSuffix("last_layer.weight_v") {
                pytorchDefault(fanIn: shape[1])
            } else if name.hasSuffix("last_layer.weight_g") {
                fill { _ in 1 }
            } else if name == "cls_token" || name == "pos_embed" || (shape.count == 2 && name.hasSuffix(".weight")) {
                fill { $0.truncatedNormal(std: 0.02, lo: -2, hi: 2) }
            } else if shape.count == 1 && name.hasSuffix(".weight") {
                fill { _ in 1 }   // LayerNorm scale
            } else {
                fill { _ in 0 }   // biases
            }
        }
        copyStudentToTeacher()
    }

    /// The global crops at the model's size, then the local crops (if any) at theirs. With
    /// `photometric`, the first global crop follows `DataAugmentationiBOT.global_transfo1` (blur
    /// always), the other global crops `global_transfo2` (blur p 0.1, solarization p 0.2):
    /// main_ibot.py appends `global_transfo2` for each of the `global_crops_number − 1` other crops,
    /// then `local_transfo` (blur p 0.5) for each local crop. Views are numbered across groups, so
    /// each crop keeps its random stream (and its geometry) with or without the photometric part,
    /// and the global crops are the same with or without local crops after them.
    public func dataViews(options: Options) -> [ViewGroupSpec]? {
        let (size, scale) = (student.config.imgSize, options.globalCropScale)
        let local = options.localCrops > 0
            ? [ViewGroupSpec(views: options.localCrops, size: options.localCropSize(for: student.config), scale: options.localCropScale,
                             photometric: options.photometric ? .ibotLocal : nil)]
            : []
        guard options.photometric else { return [ViewGroupSpec(views: options.globalCrops, size: size, scale: scale)] + local }
        return [ViewGroupSpec(views: 1, size: size, scale: scale, photometric: .ibotFirstGlobal),
                ViewGroupSpec(views: options.globalCrops - 1, size: size, scale: scale, photometric: .ibotSecondGlobal)] + local
    }

    /// Per image and crop, a share from `pred_ratio` and a block (or random) mask of it
    /// (bytedance/ibot loader.py `ImageFolderMask`); drawn per step instead of in the loader.
    public func plan(batch: Int, rng: inout SeededRandom, options: Options, clock: TrainingClock) -> IBOTPlan {
        let grid = student.config.gridSize, n = grid * grid
        let ratios = PredictionRatio(means: options.predRatio, variations: options.predRatioVar)
        let generator = BlockMaskGenerator.ibot(height: grid, width: grid)
        var masks = [[Bool]](repeating: [], count: options.globalCrops * batch)
        for image in 0..<batch {
            for view in 0..<options.globalCrops {
                let ratio = ratios.draw(epoch: clock.epoch, rng: &rng)
                switch options.predShape {
                case .block:
                    masks[view * batch + image] = generator.mask(ratio: ratio, rng: &rng)
                case .rand:
                    // Exactly ⌊ratio·N⌋ patches, in a uniformly random place.
                    let hidden = Set(RandomMasking.plan(batch: 1, numPatches: n, visible: n - Int(ratio * Double(n)), rng: &rng).maskedPatches[0])
                    masks[view * batch + image] = (0..<n).map { hidden.contains($0) }
                }
            }
        }
        return IBOTPlan(views: options.globalCrops, count: batch, masks: masks)
    }

    public func step(_ batch: PretrainingBatch, plan: IBOTPlan, options: Options, clock: TrainingClock, lossBatch: Int,
                     phase: PhaseMarker?) -> StepReport {
        let all = batch.allViews
        precondition(all.count == plan.views + options.localCrops,
                     "iBOT: \(all.count) crops per image for \(plan.views) global and \(options.localCrops) local crops")
        let views = Array(all.prefix(plan.views)), locals = Array(all.dropFirst(plan.views))
        let masks = (0..<plan.views).map { v in Array(plan.masks[(v * plan.count)..<((v + 1) * plan.count)]) }
        let temperatures = options.temperatures(at: clock)
        let result = forwardBackward(views: views, masks: masks, locals: locals, temperatures: temperatures, images: lossBatch,
                                     phase: phase)
        // Centre statistics as this shard's share of the whole batch's mean: shards add up to it.
        let crops = Float(plan.views * lossBatch)
        // The previous step's collapse monitors, once there is one (not after a resume's first step).
        let health = teacherHealth.value.data
        let monitors: [StepReport.Named] = health[2] > 0
            ? [.init("teacher_entropy", health[0]), .init("teacher_batch_entropy", health[1])] : []
        return StepReport(
            losses: [.init("loss", result.cls + result.patch), .init("cls_loss", result.cls), .init("patch_loss", result.patch)],
            schedule: [.init("teacher_temp", temperatures.teacherCls), .init("teacher_patch_temp", temperatures.teacherPatch),
                       .init("momentum", Float(options.momentum(at: clock)))] + monitors,
            sums: [.init("center", result.clsSum.map { $0 / crops }), .init("center2", result.patchSum.map { $0 / crops }),
                   .init("teacher_probabilities", result.teacherProbabilitySum),
                   .init("teacher_entropy", [result.teacherEntropySum, Float(plan.views * plan.count)])])
    }

    /// Per-tensor gradient clipping (utils.py `clip_gradients`), the last layer frozen in the first
    /// epochs (`cancel_gradients_last_layer`), and the cosine weight-decay schedule.
    public func prepareUpdate(options: Options, clock: TrainingClock, baseWeightDecay: Double) -> UpdateAdjustment {
        if options.clipGrad > 0 {
            for (_, p) in parameters.entries where p.trainable {
                let n = p.value.count
                let norm = p.withGradPointer { g in Vector.dot(g, g, n).squareRoot() }
                let coefficient = Float(options.clipGrad) / (norm + 1e-6)
                if coefficient < 1 { p.withGradPointer { Vector.scale($0, by: coefficient, n) } }
            }
        }
        let frozen = clock.epoch < options.freezeLastLayer
            ? Set(parameters.entries.map(\.name).filter { $0.contains("last_layer") }) : []
        return UpdateAdjustment(weightDecay: Options.cosine(from: baseWeightDecay, to: options.weightDecayEnd, at: clock), frozen: frozen)
    }

    /// The teacher's EMA of the student (shared names: `masked_embed` is the student's alone), then
    /// the centres from the step's teacher statistics (momentum 0.9).
    public func afterStep(options: Options, clock: TrainingClock, report: StepReport) {
        do { try teacherParameters.updateEMA(from: parameters, decay: Float(options.momentum(at: clock))) } catch {
            preconditionFailure("the teacher is built like the student: \(error)")
        }
        if let c = report.sum("center") { IBOTLoss.updateCenter(center, mean: c) }
        if let c = report.sum("center2") { IBOTLoss.updateCenter(center2, mean: c) }
        if let p = report.sum("teacher_probabilities"), let h = report.sum("teacher_entropy") {
            let health = IBOTLoss.TeacherHealth(probabilitySum: p, entropySum: h[0], crops: Int(h[1]))
            teacherHealth.value = Tensor(shape: [3], data: [health.entropy, health.batchEntropy, 1])
        }
    }
}

/// One step's student masks: `views` crops of `count` images, view-major.
public struct IBOTPlan: ShardablePlan, Equatable {
    public let views: Int
    public let count: Int
    public let masks: [[Bool]]

    /// `masks[view * count + image]`: N flags (true: masked), row-major patches.
    public init(views: Int, count: Int, masks: [[Bool]]) {
        precondition(masks.count == views * count, "an iBOT plan of \(views) views × \(count) images needs \(views * count) masks")
        self.views = views; self.count = count; self.masks = masks
    }

    public func shard(_ images: Range<Int>) -> IBOTPlan {
        IBOTPlan(views: views, count: images.count,
                 masks: (0..<views).flatMap { v in masks[(v * count + images.lowerBound)..<(v * count + images.upperBound)] })
    }
}
