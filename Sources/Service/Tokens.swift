import Foundation
import Tensor
import ViT
import Objectives
import ImageKit

extension Service {
    // MARK: POST /v1/tokens

    /// Each image's code grid from a tokenizer; with `decode` also the image the codes decode to:
    /// a PNG (one image) unless JSON is preferred, as `/v1/reconstructions` answers.
    func tokens(_ request: ServiceRequest, _ respond: @escaping Respond) throws {
        let (images, body) = try decode(TokenRequest.self, request)
        let named = try body.model.get()
        let model = try registry.model(named, capableOf: registry.capable(.tokenize))
        guard let tokenizer = model.network?.tokenizer else { throw registry.incapableModelError(model, named: named, need: .tokenize) }
        let decodes = try body.decode.get() ?? false
        let scale = try body.scale.get() ?? 1
        let wantsJSON = Self.prefersJSON(request.header("accept"))
        if decodes && !wantsJSON && images.count > 1 {
            throw APIError.invalid("'decode' answers one PNG: send one image, or ask for JSON (Accept: application/json) "
                                   + "to decode \(images.count)", param: "input")
        }
        let prepared = try modelInputs(images, for: model)
        let tensors = prepared.map(\.tensor)
        let c = model.config
        let deadline = Date().addingTimeInterval(options.requestTimeout)
        try batcher.schedule(deadline: deadline, run: { [self] in
            let start = Date()
            let batch = Tensor(shape: [tensors.count, c.inChans, c.imgSize, c.imgSize], data: tensors.flatMap { $0 })
            let grids = tokenizer.codes(batch)
            let decoded = decodes ? Self.decodedImages(tokenizer.decode(grids), input: batch, config: c) : nil
            metrics.observe("bootmae_tokenize_seconds", [("model", model.id)], Date().timeIntervalSince(start))
            oodScores(tensors, for: model, deadline: deadline) { [self] scores in
                do {
                    if let decoded, !wantsJSON {
                        var response = ServiceResponse.png(try PNGEncoder.encode(decoded[0].image.upscaledNearest(factor: scale)))
                        let warnings = Self.warnings(prepared[0], scores?.first)
                        response.headers += [("X-PSNR", String(format: "%.3f", decoded[0].psnr)), ("X-Grid", String(c.gridSize)),
                                             ("X-Codebook-Size", String(tokenizer.codebookSize))]
                        if !warnings.isEmpty { response.headers.append(("X-Warnings", warnings.map(\.code).joined(separator: ","))) }
                        if let score = scores?.first { response.headers += score.headers }
                        return respond(Self.versioned(response, model))
                    }
                    let data = try grids.enumerated().map { i, codes in
                        TokenResponse.Item(index: i, codes: codes, warnings: Self.warnings(prepared[i], scores?[i]), ood: scores?[i],
                                           decoded: try decoded.map { Data(try PNGEncoder.encode($0[i].image.upscaledNearest(factor: scale))).base64EncodedString() },
                                           psnr: decoded?[i].psnr)
                    }
                    respond(Self.versioned(.json(TokenResponse(model: model.id, modelVersion: model.version, grid: c.gridSize,
                                                               codebookSize: tokenizer.codebookSize, data: data)), model))
                } catch {
                    respond(pngEncodingFailed(request, error))
                }
            }
        }, expire: {
            respond(APIError.timeout("the tokenization waited past its deadline in the queue").response)
        })
    }

    /// Decoded images (B, C, H, W, model input units) as 8-bit images, each with its PSNR against
    /// the input, both in [0, 1] pixel units (the decoding unclamped, as reconstructions measure).
    static func decodedImages(_ decoded: Tensor, input: Tensor, config c: ViTConfig) -> [(image: Image, psnr: Double)] {
        let (ch, size) = (c.inChans, c.imgSize)
        let plane = size * size, count = ch * plane
        return (0..<decoded.shape[0]).map { b in
            func pixel(_ t: Tensor, _ k: Int, _ i: Int) -> Float { t.data[b * count + k * plane + i] * c.std[k] + c.mean[k] }
            var se = 0.0
            for k in 0..<ch { for i in 0..<plane { let d = Double(pixel(decoded, k, i) - pixel(input, k, i)); se += d * d } }
            let image = Image(width: size, height: size, channels: ch) { buffer in
                for i in 0..<plane { for k in 0..<ch { buffer[i * ch + k] = UInt8((min(max(pixel(decoded, k, i), 0), 1) * 255).rounded()) } }
            }
            return (image, 10 * log10(1 / max(se / Double(count), 1e-12)))
        }
    }
}
