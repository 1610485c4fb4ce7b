import Foundation
import Objectives
import Tensor
import ViT
import ImageKit

extension Service {
    // MARK: POST /v1/embeddings

    func embeddings(_ request: ServiceRequest, _ respond: @escaping Respond) throws {
        let inputs = try inputs(request)
        let model = try registry.model(try Self.string(inputs.options, "model"))
        let pooling: ViTConfig.Pooling
        switch try Self.string(inputs.options, "pooling") {
        case nil: pooling = model.config.globalPool
        case let p?:
            guard let v = ViTConfig.Pooling(rawValue: p) else { throw APIError.invalid("'pooling' must be cls or mean", param: "pooling") }
            pooling = v
        }
        let normalize = try Self.bool(inputs.options, "normalize") ?? false
        if let dimensions = try Self.number(inputs.options, "dimensions"), Int(exactly: dimensions) != model.config.embedDim {
            throw APIError.invalid("'dimensions': this model's embeddings have \(model.config.embedDim) dimensions and are not "
                                   + "truncated; leave it out or send \(model.config.embedDim)", param: "dimensions")
        }
        let format = try Self.string(inputs.options, "encoding_format") ?? "float"
        guard format == "float" || format == "base64" else { throw APIError.invalid("'encoding_format' must be float or base64", param: "encoding_format") }
        let tensors = try modelInputs(inputs.images, for: model)
        let tokensPerImage = model.config.numTokens
        let gather = Gather<[Float]>(count: tensors.count, finish: { vectors in
            let data: [[String: Any]] = vectors.enumerated().map { i, raw in
                var v = raw
                if normalize {
                    let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
                    if norm > 0 { v = v.map { $0 / norm } }
                }
                let embedding: Any = format == "base64" ? v.withUnsafeBytes { Data($0).base64EncodedString() } : v.map { Double($0) }
                return ["object": "embedding", "index": i, "embedding": embedding]
            }
            respond(.json(["object": "list", "model": model.id, "data": data,
                           "usage": ["images": vectors.count, "prompt_tokens": vectors.count * tokensPerImage,
                                     "total_tokens": vectors.count * tokensPerImage]]))
        }, fail: { respond($0.response) })
        try batcher.submit(model: model, inputs: tensors, kind: .embed(pooling), deadline: Date().addingTimeInterval(options.requestTimeout)) { i, result in
            gather.complete(i, result.map { if case .embedding(let e) = $0 { return e } else { return [] } })
        }
    }

    // MARK: POST /v1/classifications

    func classifications(_ request: ServiceRequest, _ respond: @escaping Respond) throws {
        let inputs = try inputs(request)
        let model = try registry.model(try Self.string(inputs.options, "model"), capableOf: \.canClassify)
        guard model.canClassify, let labels = model.config.labels else {
            let classifiers = registry.models.values.filter(\.canClassify).map(\.id).sorted()
            throw APIError.invalid("model '\(model.id)' has no classification head"
                + (classifiers.isEmpty ? "" : "; classifiers: \(classifiers.joined(separator: ", "))"), param: "model", code: "model_cannot_classify")
        }
        let requested = try Self.number(inputs.options, "top_k") ?? 5
        guard requested >= 1, requested == requested.rounded() else { throw APIError.invalid("'top_k' must be a positive integer", param: "top_k") }
        let k = min(Int(requested), labels.count)
        let tensors = try modelInputs(inputs.images, for: model)
        let gather = Gather<[Float]>(count: tensors.count, finish: { all in
            let data: [[String: Any]] = all.enumerated().map { i, logits in
                let m = logits.max() ?? 0
                let e = logits.map { Foundation.exp(Double($0 - m)) }
                let z = e.reduce(0, +)
                let ranked = e.indices.sorted { e[$0] > e[$1] || (e[$0] == e[$1] && $0 < $1) }.prefix(k)
                return ["index": i, "labels": ranked.map { ["label": labels[$0], "score": e[$0] / z] as [String: Any] }]
            }
            respond(.json(["object": "list", "model": model.id, "data": data]))
        }, fail: { respond($0.response) })
        try batcher.submit(model: model, inputs: tensors, kind: .classify, deadline: Date().addingTimeInterval(options.requestTimeout)) { i, result in
            gather.complete(i, result.map { if case .logits(let l) = $0 { return l } else { return [] } })
        }
    }

    // MARK: GET /v1/models

    func listModels() -> ServiceResponse {
        .json(["object": "list", "data": registry.models.keys.sorted().map { modelCard(registry.models[$0]!) }])
    }

    func modelCard(_ m: LoadedModel) -> [String: Any] {
        let c = m.config
        var card: [String: Any] = [
            "id": m.id, "object": "model", "created": m.created, "owned_by": "bootmae-swift",
            "default": m.id == registry.defaultModel,
            "capabilities": m.capabilities,
            "architecture": ["type": "vit", "objective": m.network?.config.objective ?? "encoder",
                             "img_size": c.imgSize, "patch_size": c.patchSize, "in_chans": c.inChans, "embed_dim": c.embedDim,
                             "depth": c.depth, "num_heads": c.numHeads, "qkv_bias": c.qkvBias.rawValue,
                             "parameters": m.parameterCount] as [String: Any],
            "embedding": ["dimensions": c.embedDim, "default_pooling": c.globalPool.rawValue, "poolings": ["cls", "mean"]],
            "preprocessing": ["mean": c.mean.map(Double.init), "std": c.std.map(Double.init), "crop_pct": c.cropPct ?? 1,
                              "resize": "bicubic (antialiased), shorter side, then center crop"] as [String: Any],
            "limits": ["max_batch": batcher.limits.maxBatch, "max_batch_delay_ms": batcher.limits.maxDelay * 1000,
                       "max_queue": batcher.limits.maxQueue, "max_images_per_request": options.maxImagesPerRequest,
                       "max_pixels_per_image": options.maxPixelsPerImage, "request_timeout_s": options.requestTimeout] as [String: Any],
            "provenance": m.provenance,
        ]
        if let labels = c.labels, m.canClassify { card["labels"] = labels }
        if let reconstructor = m.network?.reconstructor {
            card["reconstruction"] = ["default_mask_ratio": Double(reconstructor.maskedCount) / Double(c.numPatches),
                                      "default_masking": reconstructor.defaultMasking.rawValue,
                                      "patches": c.numPatches]
        }
        return card
    }
}
