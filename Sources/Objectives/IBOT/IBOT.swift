import Tensor
import ViT

/// iBOT (Zhou et al., ICLR 2022) as the official code trains it (bytedance/ibot main_ibot.py,
/// models/vision_transformer.py, models/head.py): a student ViT sees each global crop with
/// block-masked patches replaced by a learned `masked_embed`; an EMA teacher sees the crops
/// unmasked; one shared projection head on both; the student's [CLS] distils the teacher's [CLS] of
/// the other crops, and its masked patch tokens the teacher's patch tokens of the same crop
/// (`IBOTLoss`), against centred and sharpened teacher distributions.
public struct IBOT: Sendable {
    public let settings: Settings
    public let student: VisionTransformer
    /// Replaces the patch embedding of masked patches (zero-initialised, never EMA'd).
    public let maskedEmbed: Parameter
    public let studentHead: IBOTHead
    /// The EMA teacher: backbone and head under the student's names, saved under `teacher.`.
    public let teacher: VisionTransformer
    public let teacherHead: IBOTHead
    /// The loss's running centres of the teacher's [CLS] and patch logits (1, K).
    public let center: Parameter
    public let center2: Parameter
    /// The last step's collapse monitors (`IBOTLoss.TeacherHealth`: per-crop and batch-mean entropy
    /// of the teacher's [CLS] distributions), logged with the next step; not saved in checkpoints.
    public let teacherHealth: Parameter

    /// The student (backbone, `masked_embed`, `head.*`): what the optimizer updates.
    public let parameters: ParameterList
    /// The teacher's tensors under the student's names.
    public let teacherParameters: ParameterList
    public static let teacherPrefix = "teacher."

    /// config.json beside the encoder: the head's sizes (official `--out_dim`, and the `DINOHead`
    /// hidden and bottleneck widths) and `norm_last_layer`.
    public struct Settings: ObjectiveSettings {
        public var outDim: Int
        public var headHidden: Int
        public var headBottleneck: Int
        public var normLastLayer: Bool

        enum CodingKeys: String, CodingKey {
            case outDim = "out_dim", headHidden = "head_hidden_dim", headBottleneck = "head_bottleneck_dim"
            case normLastLayer = "norm_last_layer"
        }

        public init(outDim: Int = 1024, headHidden: Int = 512, headBottleneck: Int = 256, normLastLayer: Bool = true) {
            self.outDim = outDim; self.headHidden = headHidden; self.headBottleneck = headBottleneck
            self.normLastLayer = normLastLayer
        }

        public func validationErrors(encoder: ViTConfig) -> [String] {
            var errors: [String] = []
            if outDim < 2 { errors.append("out_dim must be at least 2, got \(outDim)") }
            if headHidden < 1 || headBottleneck < 1 { errors.append("head_hidden_dim and head_bottleneck_dim must be positive") }
            if encoder.posEmbed == .absent { errors.append("iBOT's encoder adds learned positions: pos_embed cannot be \"none\"") }
            return errors
        }
    }

    public init(encoder c: ViTConfig, settings: Settings) {
        self.settings = settings
        var encoderConfig = c
        if encoderConfig.posEmbed == nil { encoderConfig.posEmbed = .checkpoint }
        student = VisionTransformer(config: encoderConfig, parts: .init(norm: true))
        var p = student.parameters
        maskedEmbed = Parameter(Tensor(zeros: [1, c.embedDim]))
        p.add("masked_embed", maskedEmbed)
        studentHead = IBOTHead(dim: c.embedDim, hidden: settings.headHidden, bottleneck: settings.headBottleneck,
                               outDim: settings.outDim, normLastLayer: settings.normLastLayer, name: "head", into: &p)
        parameters = p
        teacher = VisionTransformer(config: encoderConfig, parts: .init(norm: true))
        var t = teacher.parameters
        teacherHead = IBOTHead(dim: c.embedDim, hidden: settings.headHidden, bottleneck: settings.headBottleneck,
                               outDim: settings.outDim, normLastLayer: settings.normLastLayer, name: "head", into: &t)
        teacherParameters = t
        center = Parameter(Tensor(zeros: [1, settings.outDim]), trainable: false)
        center2 = Parameter(Tensor(zeros: [1, settings.outDim]), trainable: false)
        teacherHealth = Parameter(Tensor(zeros: [3]), trainable: false)  // entropy, batch entropy, measured
    }

    /// The teacher as the student (the start of training; `main_ibot.py` loads the student's state).
    public func copyStudentToTeacher() {
        for (name, t) in teacherParameters.entries {
            guard let s = parameters[name] else { continue }
            t.value = s.value
        }
    }

    /// One step's forward and backward on the global crops `views` (B images each), with
    /// `masks[v][b]` the student's masks, and the local crops `locals` (B images each, any size).
    /// Returns the loss's result; gradients accumulate into the student.
    /// The student's head runs only on [CLS] and the masked tokens: the loss reads no other
    /// student output (the teacher's head runs on every token, which the patch centre needs).
    /// Local crops go through the student alone, unmasked (main_ibot.py switches
    /// `masked_im_modeling` off for them), with positions interpolated to their grid; only their
    /// [CLS] reaches the head and the loss.
    func forwardBackward(views: [Tensor], masks: [[[Bool]]], locals: [Tensor] = [], temperatures: IBOTLoss.Temperatures, images: Int,
                         phase: PhaseMarker?) -> IBOTLoss.Result {
        var teacherLogits: [IBOTLoss.ViewLogits] = [], studentLogits: [IBOTLoss.ViewLogits] = []
        var caches: [(VisionTransformer.MaskedCache, IBOTHead.Cache, rows: [Int], tokens: Int)] = []
        for (v, x) in views.enumerated() {
            teacherLogits.append(Self.split(teacherHead.infer(teacher.infer(x))))
            let (encoded, encoderCache) = student.forwardMasked(x, mask: masks[v], maskEmbed: maskedEmbed)
            let tokens = encoded.latent.shape[1]
            let rows = Self.readRows(masks[v])
            let (logits, headCache) = studentHead.forward(TokenRows.gather(encoded.latent, rows))
            studentLogits.append(Self.split(TokenRows.scatter(logits, rows, images: x.shape[0], tokens: tokens)))
            caches.append((encoderCache, headCache, rows, tokens))
        }
        phase?("teacher and student forward")
        var localLogits: [Tensor] = []
        var localCaches: [(VisionTransformer.Cache, IBOTHead.Cache, rows: [Int], tokens: Int)] = []
        for x in locals {
            let (latent, encoderCache) = student.forward(x)
            let tokens = latent.shape[1]
            let rows = (0..<x.shape[0]).map { $0 * tokens }   // each image's [CLS]
            let (logits, headCache) = studentHead.forward(TokenRows.gather(latent, rows))
            localLogits.append(logits)
            localCaches.append((encoderCache, headCache, rows, tokens))
        }
        if !locals.isEmpty { phase?("local crops forward") }
        let flags = masks.map { view in view.flatMap { $0.map { $0 ? Float(1) : 0 } } }
        let result = IBOTLoss.compute(student: studentLogits, studentLocal: localLogits, teacher: teacherLogits, masks: flags,
                                      center: center.value, center2: center2.value, temperatures: temperatures, images: images)
        phase?("loss")
        for (grad, cache) in zip(result.studentLocalGrads, localCaches) {
            let dRows = studentHead.backward(grad, cache: cache.1)
            _ = student.backward(TokenRows.scatter(dRows, cache.rows, images: grad.rows, tokens: cache.tokens), cache: cache.0)
        }
        if !locals.isEmpty { phase?("local crops backward") }
        for (grad, cache) in zip(result.studentGrads, caches) {
            let dRows = studentHead.backward(TokenRows.gather(Self.join(grad), cache.rows), cache: cache.1)
            let dLatent = TokenRows.scatter(dRows, cache.rows, images: grad.cls.rows, tokens: cache.tokens)
            _ = student.backwardMasked(dLatent: dLatent, cache: cache.0)
        }
        phase?("student backward")
        return result
    }

    /// Rows of a (B, 1 + N, ·) tensor the loss reads: each image's [CLS] and its masked patches.
    static func readRows(_ masks: [[Bool]]) -> [Int] {
        let tokens = 1 + (masks.first?.count ?? 0)
        return masks.enumerated().flatMap { b, mask in [b * tokens] + mask.indices.filter { mask[$0] }.map { b * tokens + 1 + $0 } }
    }

    /// (B, 1 + N, K) head output → [CLS] rows (B, K) and patch rows (B·N, K).
    static func split(_ logits: Tensor) -> IBOTLoss.ViewLogits {
        let (b, t, k) = (logits.shape[0], logits.shape[1], logits.shape[2])
        let patches = DecoderInput.dropClass(logits)
        return IBOTLoss.ViewLogits(cls: TokenOps.select(logits, token: 0), patches: patches.reshaped([b * (t - 1), k]))
    }

    /// The inverse of `split`, for gradients.
    static func join(_ view: IBOTLoss.ViewLogits) -> Tensor {
        let (b, k) = (view.cls.shape[0], view.cls.shape[1])
        let n = view.patches.rows / b
        return Tensor(shape: [b, 1 + n, k]) { out in
            view.cls.withPointer { c in view.patches.withPointer { p in
                for image in 0..<b {
                    (out + image * (1 + n) * k).update(from: c + image * k, count: k)
                    (out + (image * (1 + n) + 1) * k).update(from: p + image * n * k, count: n * k)
                }
            } }
        }
    }
}
