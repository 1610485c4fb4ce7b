import Foundation
import Tensor
import ViT
import Objectives
import ImageKit

extension Service {
    // MARK: POST /v1/reconstructions

    func reconstructions(_ request: ServiceRequest, _ respond: @escaping Respond) throws {
        let (images, body) = try decode(ReconstructionRequest.self, request, single: true)
        let named = try body.model.get()
        let decoded = try decodeImages(images)
        let channels = InputChecks.isColourful(decoded[0].image) ? 3 : 1
        let model = try registry.model(named, capableOf: registry.capable(.reconstruct), channels: channels)
        // A stage-2 code predictor reconstructs through its tokenizer: a 400 says which one is missing.
        guard let network = model.network, let reconstructor = try registry.reconstructor(for: model) else {
            throw registry.incapableModelError(model, named: named, need: .reconstruct)
        }
        let c = model.config
        let n = c.numPatches
        let (plan, masking, seed) = try maskPlan(body, model: model, network: network, reconstructor: reconstructor)
        let stats = try body.stats.get() ?? .patch
        let scale = try body.scale.get() ?? max(1, Int((192.0 / Double(c.imgSize)).rounded(.up)))   // about 192 px
        let wantsJSON = Self.prefersJSON(request.header("accept"))
        let prepared = prepare(decoded, for: model)[0]
        let input = prepared.tensor
        let pixels = Tensor(shape: [1, c.inChans, c.imgSize, c.imgSize], data: input)
        let deadline = Date().addingTimeInterval(options.requestTimeout)
        try batcher.schedule(deadline: deadline, run: { [self] in
            let start = Date()
            let r = network.reconstruct(pixels, plan: plan, statistics: stats.statistics, using: reconstructor)
            metrics.observe("bootmae_reconstruction_seconds", [("model", model.id)], Date().timeIntervalSince(start))
            let errors = Self.patchErrors(r)
            let figure = ReconstructionFigure(reconstruction: r, config: c, errors: errors)
            let maskedErrors = errors.compactMap { $0 }
            let mse = maskedErrors.reduce(0, +) / Double(maskedErrors.count)   // every masked patch has as many values
            let psnr = 10 * log10(1 / max(mse, 1e-12))
            let masked = plan.order[0][plan.visible...].sorted()
            oodScores([input], for: model, deadline: deadline) { [self] scores in
                let score = scores?.first
                let warnings = Self.warnings(prepared, score)
                do {
                    let panels = [figure.original, figure.masked, figure.reconstruction, figure.composite, figure.heatmap]
                    let strip = Image.hstack(panels.map { $0.upscaledNearest(factor: scale) }, gap: 2 * scale)
                    if wantsJSON {
                        func b64(_ image: Image) throws -> String { Data(try PNGEncoder.encode(image.upscaledNearest(factor: scale))).base64EncodedString() }
                        respond(Self.versioned(.json(ReconstructionResponse(
                            model: model.id, modelVersion: model.version, mask: masked, maskRatio: Double(masked.count) / Double(n), patches: n, grid: c.gridSize,
                            stats: Nullable(r.statistics.map(ReconstructionStats.init)), masking: masking, seed: Nullable(seed), mse: mse, psnr: psnr, scale: scale,
                            errors: errors.map(Nullable.init), warnings: warnings, ood: score,
                            images: .init(strip: Data(try PNGEncoder.encode(strip)).base64EncodedString(),
                                          original: try b64(figure.original), masked: try b64(figure.masked),
                                          reconstruction: try b64(figure.reconstruction), composite: try b64(figure.composite),
                                          heatmap: try b64(figure.heatmap)),
                            codes: r.codes?[0])), model))
                    } else {
                        var response = ServiceResponse.png(try PNGEncoder.encode(strip))
                        response.headers += [("X-Mask-Ratio", String(format: "%.4f", Double(masked.count) / Double(n))),
                                             ("X-PSNR", String(format: "%.3f", psnr)),
                                             ("X-Panels", "original,masked,reconstruction,reconstruction+visible,error_heatmap")]
                        if let applied = r.statistics { response.headers.append(("X-Stats", applied.rawValue)) }
                        if !warnings.isEmpty { response.headers.append(("X-Warnings", warnings.map(\.code).joined(separator: ","))) }
                        if let score { response.headers += score.headers }
                        respond(Self.versioned(response, model))
                    }
                } catch {
                    respond(pngEncodingFailed(request, error))
                }
            }
        }, expire: {
            respond(APIError.timeout("the reconstruction waited past its deadline in the queue").response)
        })
    }

    /// Per patch of image 0, row-major: the masked patch's MSE in [0, 1] pixel units; nil when visible.
    static func patchErrors(_ r: Reconstruction) -> [Double?] {
        var out = [Double?](repeating: nil, count: r.plan.numPatches)
        for patch in r.plan.order[0][r.plan.visible...] {
            var se = 0.0
            for k in 0..<r.patchDim {
                let d = Double(r.pixels.data[patch * r.patchDim + k] - r.truth.data[patch * r.patchDim + k])
                se += d * d
            }
            out[patch] = se / Double(r.patchDim)
        }
        return out
    }

    /// Whether an Accept header ranks application/json above image/png (by q-value, RFC 9110
    /// §12.5.1). A tie goes to JSON only when the header names it; no header gives the PNG.
    static func prefersJSON(_ accept: String?) -> Bool {
        guard let accept else { return false }
        var json = 0.0, png = 0.0
        for range in accept.split(separator: ",") {
            let parts = range.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard let type = parts.first else { continue }
            let q = parts.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
            if ["application/json", "application/*", "*/*"].contains(type) { json = max(json, q) }
            if ["image/png", "image/*", "*/*"].contains(type) { png = max(png, q) }
        }
        return json > png || (json == png && json > 0 && accept.lowercased().contains("application/json"))
    }

    /// The mask from `mask` (explicit patch indices, or a mask image), or drawn from `mask_ratio` +
    /// `seed` + `masking`; with how it was drawn (explicit, or the masking and its seed), which the
    /// JSON answer echoes.
    func maskPlan(_ body: ReconstructionRequest, model: LoadedModel, network: PretrainingNetwork,
                  reconstructor: any PixelReconstructing) throws
        -> (plan: MaskPlan, masking: ReconstructionResponse.Masking, seed: Int?) {
        let c = network.config.encoder
        let n = c.numPatches
        func explicit(_ indices: [Int], _ what: String) throws -> (MaskPlan, ReconstructionResponse.Masking, Int?) {
            guard !indices.isEmpty, indices.count < n else {
                throw APIError.invalid("'mask' must hide between 1 and \(n - 1) patches\(what)", param: "mask")
            }
            let hidden = Set(indices)
            return (MaskPlan(order: [(0..<n).filter { !hidden.contains($0) } + indices], visible: n - indices.count), .explicit, nil)
        }
        switch try body.mask.get() {
        case .indices(let list)?:
            let indices = try list.map { v -> Int in
                guard let d = v, d == d.rounded(), d >= 0, d < Double(n) else {
                    throw APIError.invalid("'mask' holds patch indices 0..<\(n) (row-major on the \(c.gridSize)×\(c.gridSize) grid)", param: "mask")
                }
                return Int(d)
            }
            guard Set(indices).count == indices.count else { throw APIError.invalid("'mask' repeats a patch index", param: "mask") }
            return try explicit(indices, "")
        case .image(let text)?:
            let bytes = try ImageInputs.decode(text, index: nil, param: "mask")
            let image: Image
            do { image = try ImageDecoder.decode(bytes, maxPixels: options.maxPixelsPerImage) } catch {
                if case .tooLarge = error { throw APIError.tooLarge("mask: \(error)", param: "mask") }
                throw APIError.invalid("mask: \(error)", param: "mask", code: "invalid_image")
            }
            let indices = Self.maskedPatches(image, config: c)
            return try explicit(indices, "; this mask image hides \(indices.count) (white: masked)")
        case nil:
            break
        }
        let masked: Int
        if let ratio = try body.maskRatio.get() {
            // Any share strictly between 0 and 1 hides at least one patch and leaves one visible
            // under the trainer's rule (MAE's: ⌊N·(1 − ratio)⌋ patches stay visible, at least one).
            guard ratio > 0, ratio < 1 else {
                throw APIError.invalid("'mask_ratio' must be above 0 and below 1 (this model has \(n) patches)", param: "mask_ratio")
            }
            masked = MaskingSpec.maskedCount(ratio: ratio, patches: n)
        } else {
            masked = reconstructor.maskedCount
        }
        let seed = try body.seed.get() ?? 0
        let masking = try body.masking.get() ?? reconstructor.defaultMasking
        var rng = SeededRandom(seed: UInt64(seed))
        // The model's own masking is drawn as in its training (PeCo: BEiT's generator) with the
        // default options (an export keeps no recipe.json), another one as every model draws it.
        let plan = reconstructor.plans(masking: masking, batch: 1, grid: c.gridSize, masked: masked, options: nil, rng: &rng)[0].plan
        // BEiT's block generator stops at the first block that does not fit, so a small share can
        // draw no patch at all: nothing to reconstruct or score.
        guard plan.lossMask.contains(where: { $0 > 0 }) else {
            throw APIError.invalid("the model's \(masking.rawValue) masking drew no patch to hide at this mask_ratio (\(masked) of \(n) asked; "
                + "its generator stops at the first block that does not fit): ask for a larger 'mask_ratio', another 'seed', or 'masking': 'random'",
                param: "mask_ratio")
        }
        return (plan, .init(masking), seed)
    }
}

extension Service {
    /// The patches a mask image hides: the image goes through the input's resize and center crop (to
    /// the model's size, as one gray channel), then a patch is masked when more than half of its
    /// pixels are white (at least 128 of 255).
    static func maskedPatches(_ image: Image, config c: ViTConfig) -> [Int] {
        let gray = ImagePreprocessor(imageSize: c.imgSize, channels: 1, mean: [0], std: [1], cropPct: c.cropPct ?? 1).tensorCHW(image)
        let p = c.patchSize, g = c.gridSize
        var out: [Int] = []
        for patch in 0..<(g * g) {
            let top = (patch / g) * p, left = (patch % g) * p
            var white = 0
            for y in top..<(top + p) { for x in left..<(left + p) where gray[y * c.imgSize + x] >= 0.5 { white += 1 } }
            if 2 * white > p * p { out.append(patch) }
        }
        return out
    }
}

/// The five panels of a reconstruction figure, as 8-bit images at model resolution.
struct ReconstructionFigure {
    let original: Image
    let masked: Image
    let reconstruction: Image
    let composite: Image
    /// Masked patches coloured by their error (dark = none, light = this image's largest), visible
    /// ones as the original, dimmed to a third, in gray.
    let heatmap: Image

    init(reconstruction r: Reconstruction, config c: ViTConfig, errors: [Double?]) {
        let p = c.patchSize, g = c.gridSize, ch = c.inChans, size = c.imgSize
        let hidden = Set(r.plan.order[0][r.plan.visible...])
        // Patch vectors are (c, py, px); pixel (x, y) of channel k lives in patch (y/p)·g + x/p.
        func render(_ pick: (_ patch: Int, _ offset: Int) -> Float?) -> Image {
            Image(width: size, height: size, channels: ch) { buffer in
                for y in 0..<size { for x in 0..<size {
                    let patch = (y / p) * g + x / p
                    for k in 0..<ch {
                        let offset = (k * p + y % p) * p + x % p
                        let v = pick(patch, offset)
                        buffer[(y * size + x) * ch + k] = v.map { UInt8((min(max($0, 0), 1) * 255).rounded()) } ?? 128
                    }
                } }
            }
        }
        let dim = r.patchDim
        original = render { patch, o in r.truth.data[patch * dim + o] }
        masked = render { patch, o in hidden.contains(patch) ? nil : r.truth.data[patch * dim + o] }
        reconstruction = render { patch, o in r.pixels.data[patch * dim + o] }
        composite = render { patch, o in (hidden.contains(patch) ? r.pixels : r.truth).data[patch * dim + o] }
        let largest = errors.compactMap { $0 }.max() ?? 0
        heatmap = Image(width: size, height: size, channels: 3) { buffer in
            for y in 0..<size { for x in 0..<size {
                let patch = (y / p) * g + x / p
                let rgb: (UInt8, UInt8, UInt8)
                if let e = errors[patch] {
                    rgb = Self.heat(largest > 0 ? e / largest : 0)
                } else {
                    var v: Float = 0
                    for k in 0..<ch { v += r.truth.data[patch * dim + (k * p + y % p) * p + x % p] }
                    let level = UInt8((min(max(v / Float(ch), 0), 1) * 85).rounded())
                    rgb = (level, level, level)
                }
                let at = (y * size + x) * 3
                buffer[at] = rgb.0; buffer[at + 1] = rgb.1; buffer[at + 2] = rgb.2
            } }
        }
    }

    /// A dark-violet → red → orange → pale-yellow ramp for t in [0, 1].
    static func heat(_ t: Double) -> (UInt8, UInt8, UInt8) {
        let stops: [(Double, Double, Double, Double)] = [(0, 28, 12, 60), (0.35, 130, 32, 100), (0.7, 232, 96, 44), (1, 252, 236, 150)]
        let t = min(max(t, 0), 1)
        let i = stops.lastIndex { $0.0 <= t }.map { min($0, stops.count - 2) } ?? 0
        let (a, b) = (stops[i], stops[i + 1])
        let f = (t - a.0) / (b.0 - a.0)
        func mix(_ u: Double, _ v: Double) -> UInt8 { UInt8((u + (v - u) * f).rounded()) }
        return (mix(a.1, b.1), mix(a.2, b.2), mix(a.3, b.3))
    }
}
