import Foundation
import Tensor
import ViT
import Objectives
import ImageKit

extension Service {
    // MARK: POST /v1/reconstructions

    func reconstructions(_ request: ServiceRequest, _ respond: @escaping Respond) throws {
        let (images, body) = try decode(ReconstructionRequest.self, request, single: true)
        let model = try registry.model(try body.model.get(), capableOf: \.canReconstruct)
        guard let network = model.network, network.canReconstruct else {
            let capable = registry.models.values.filter(\.canReconstruct).map(\.id).sorted()
            throw APIError.invalid("model '\(model.id)' has no pixel decoder and cannot reconstruct"
                + (capable.isEmpty ? "" : "; models that can: \(capable.joined(separator: ", "))"), param: "model", code: "model_cannot_reconstruct")
        }
        let c = model.config
        let n = c.numPatches
        let (plan, masking, seed) = try maskPlan(body, network: network)
        let stats = try body.stats.get() ?? .patch
        let scale = try body.scale.get() ?? max(1, Int((192.0 / Double(c.imgSize)).rounded(.up)))   // about 192 px
        let wantsJSON = Self.prefersJSON(request.header("accept"))
        let input = try modelInputs(images, for: model)[0]
        let pixels = Tensor(shape: [1, c.inChans, c.imgSize, c.imgSize], data: input)
        try batcher.schedule(deadline: Date().addingTimeInterval(options.requestTimeout), run: { [self] in
            let start = Date()
            let r = network.reconstruct(pixels, plan: plan, statistics: stats.statistics)
            metrics.observe("bootmae_reconstruction_seconds", [("model", model.id)], Date().timeIntervalSince(start))
            let figure = ReconstructionFigure(reconstruction: r, config: c)
            var se = 0.0
            for patch in plan.order[0][plan.visible...] {
                for k in 0..<r.patchDim {
                    let d = Double(r.pixels.data[patch * r.patchDim + k] - r.truth.data[patch * r.patchDim + k])
                    se += d * d
                }
            }
            let mse = se / Double(plan.masked * r.patchDim)
            let psnr = 10 * log10(1 / max(mse, 1e-12))
            do {
                let strip = Image.hstack([figure.original, figure.masked, figure.reconstruction, figure.composite].map { $0.upscaledNearest(factor: scale) },
                                         gap: 2 * scale)
                let masked = plan.order[0][plan.visible...].sorted()
                if wantsJSON {
                    func b64(_ image: Image) throws -> String { Data(try PNGEncoder.encode(image.upscaledNearest(factor: scale))).base64EncodedString() }
                    respond(.json(ReconstructionResponse(
                        model: model.id, mask: masked, maskRatio: Double(masked.count) / Double(n), patches: n, grid: c.gridSize,
                        stats: stats, masking: masking, seed: Nullable(seed), mse: mse, psnr: psnr, scale: scale,
                        images: .init(strip: Data(try PNGEncoder.encode(strip)).base64EncodedString(),
                                      original: try b64(figure.original), masked: try b64(figure.masked),
                                      reconstruction: try b64(figure.reconstruction), composite: try b64(figure.composite)))))
                } else {
                    var response = ServiceResponse.png(try PNGEncoder.encode(strip))
                    response.headers += [("X-Mask-Ratio", String(format: "%.4f", Double(masked.count) / Double(n))),
                                         ("X-PSNR", String(format: "%.3f", psnr)), ("X-Stats", stats.rawValue),
                                         ("X-Panels", "original,masked,reconstruction,reconstruction+visible")]
                    respond(response)
                }
            } catch {
                options.log("error: request \(request.requestID) \(request.path): PNG encoding failed: \(error)")
                respond(APIError(status: 500, type: "server_error", code: "internal_error",
                                 message: "internal error (request \(request.requestID)); the server log has the details").response)
            }
        }, expire: {
            respond(APIError.timeout("the reconstruction waited past its deadline in the queue").response)
        })
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

    /// The mask from `mask` (explicit patch indices), or drawn from `mask_ratio` + `seed` + `masking`;
    /// with how it was drawn (explicit, or the masking and its seed), which the JSON answer echoes.
    func maskPlan(_ body: ReconstructionRequest, network: PretrainingNetwork) throws
        -> (plan: MaskPlan, masking: ReconstructionResponse.Masking, seed: Int?) {
        let c = network.config.encoder
        let n = c.numPatches
        if let list = try body.mask.get() {
            let indices = try list.map { v -> Int in
                guard let d = v, d == d.rounded(), d >= 0, d < Double(n) else {
                    throw APIError.invalid("'mask' holds patch indices 0..<\(n) (row-major on the \(c.gridSize)×\(c.gridSize) grid)", param: "mask")
                }
                return Int(d)
            }
            guard Set(indices).count == indices.count else { throw APIError.invalid("'mask' repeats a patch index", param: "mask") }
            guard !indices.isEmpty, indices.count < n else { throw APIError.invalid("'mask' must hide between 1 and \(n - 1) patches", param: "mask") }
            let hidden = Set(indices)
            return (MaskPlan(order: [(0..<n).filter { !hidden.contains($0) } + indices], visible: n - indices.count), .explicit, nil)
        }
        let reconstructor = network.reconstructor!
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
        return (masking.plan(batch: 1, grid: c.gridSize, masked: masked, rng: &rng), .init(masking), seed)
    }
}

/// The four panels of a reconstruction figure, as 8-bit images at model resolution.
struct ReconstructionFigure {
    let original: Image
    let masked: Image
    let reconstruction: Image
    let composite: Image

    init(reconstruction r: Reconstruction, config c: ViTConfig) {
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
    }
}
