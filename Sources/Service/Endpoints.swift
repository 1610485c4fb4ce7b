import Foundation
import Objectives
import Tensor
import ViT
import ImageKit

extension Service {
    // MARK: POST /v1/embeddings

    func embeddings(_ request: ServiceRequest, _ respond: @escaping Respond) throws {
        let (images, body) = try decode(EmbeddingRequest.self, request)
        let model = try registry.model(try body.model.get())
        let pooling = try body.pooling.get()?.vit ?? model.config.globalPool
        let normalize = try body.normalize.get() ?? false
        if let dimensions = try body.dimensions.get(), Int(exactly: dimensions) != model.config.embedDim {
            throw APIError.invalid("'dimensions': this model's embeddings have \(model.config.embedDim) dimensions and are not "
                                   + "truncated; leave it out or send \(model.config.embedDim)", param: "dimensions")
        }
        let format = try body.encodingFormat.get() ?? .float
        let prepared = try modelInputs(images, for: model)
        let tensors = prepared.map(\.tensor)
        let tokensPerImage = model.config.numTokens
        let deadline = Date().addingTimeInterval(options.requestTimeout)
        let gather = Gather<[Float]>(count: tensors.count, finish: { [self] vectors in oodScores(tensors, for: model, deadline: deadline) { scores in
            let data = vectors.enumerated().map { i, raw in
                var v = raw
                if normalize {
                    let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
                    if norm > 0 { v = v.map { $0 / norm } }
                }
                return EmbeddingResponse.Item(index: i, embedding: .init(v, format: format),
                                              warnings: Self.warnings(prepared[i], scores?[i]), ood: scores?[i])
            }
            let tokens = vectors.count * tokensPerImage
            respond(Self.versioned(.json(EmbeddingResponse(model: model.id, modelVersion: model.version, data: data,
                                                           usage: .init(images: vectors.count, promptTokens: tokens, totalTokens: tokens))), model))
        } }, fail: { respond($0.response) })
        try batcher.submit(model: model, inputs: tensors, kind: .embed(pooling), deadline: deadline) { i, result in
            gather.complete(i, result.map { if case .embedding(let e) = $0 { return e } else { return [] } })
        }
    }

    // MARK: POST /v1/classifications

    func classifications(_ request: ServiceRequest, _ respond: @escaping Respond) throws {
        let (images, body) = try decode(ClassificationRequest.self, request)
        let named = try body.model.get()
        let model = try registry.model(named, capableOf: registry.capable(.classify))
        guard model.canClassify, let labels = model.config.labels else { throw registry.incapableModelError(model, named: named, need: .classify) }
        let k = min(try body.topK.get() ?? 5, labels.count)
        let prepared = try modelInputs(images, for: model)
        let tensors = prepared.map(\.tensor)
        let deadline = Date().addingTimeInterval(options.requestTimeout)
        let gather = Gather<[Float]>(count: tensors.count, finish: { [self] all in oodScores(tensors, for: model, deadline: deadline) { scores in
            let data = all.enumerated().map { i, logits in
                let m = logits.max() ?? 0
                let e = logits.map { Foundation.exp(Double($0 - m)) }
                let z = e.reduce(0, +)
                let ranked = e.indices.sorted { e[$0] > e[$1] || (e[$0] == e[$1] && $0 < $1) }.prefix(k)
                return ClassificationResponse.Item(index: i, labels: ranked.map { .init(label: labels[$0], score: e[$0] / z) },
                                                   warnings: Self.warnings(prepared[i], scores?[i]), ood: scores?[i])
            }
            respond(Self.versioned(.json(ClassificationResponse(model: model.id, modelVersion: model.version, data: data)), model))
        } }, fail: { respond($0.response) })
        try batcher.submit(model: model, inputs: tensors, kind: .classify, deadline: deadline) { i, result in
            gather.complete(i, result.map { if case .logits(let l) = $0 { return l } else { return [] } })
        }
    }

    /// An image's conversion warnings, then the out-of-distribution one when its score earns it.
    static func warnings(_ image: PreparedImage, _ score: OODScore?) -> [InputWarning] {
        image.warnings + (score?.warning.map { [$0] } ?? [])
    }

    // MARK: GET /v1/models

    func listModels() -> ServiceResponse {
        let models = registry.models
        return .json(ModelList(data: models.keys.sorted().map { modelCard(models[$0]!) }))
    }

    func modelCard(_ m: LoadedModel) -> ModelCard {
        let c = m.config
        // A stage-2 code predictor reconstructs while its tokenizer is served beside it; otherwise
        // its card says which tokenizer it needs, with the error a reconstruction would get.
        let pairing = Result { try registry.reconstructor(for: m) }
        let reconstructor = (try? pairing.get()) ?? nil
        let requiresTokenizer = m.network?.codePredictor.map { predictor in
            let name = ModelRegistry.tokenizerName(of: predictor)
            var problem: ModelCard.TokenizerRequirement.Problem?
            if case .failure(let error as APIError) = pairing { problem = .init(code: error.code, message: error.message) }
            return ModelCard.TokenizerRequirement(id: Nullable(name), loaded: name.map { registry.models[$0]?.canTokenize == true } ?? false,
                                                  problem: problem)
        }
        let capabilities = Capability.allCases.filter { m.capabilities.contains($0) || ($0 == .reconstruct && reconstructor != nil) }
        return ModelCard(
            id: m.id, created: m.created, modelVersion: m.version, weightsSHA256: m.weightsSHA256, isDefault: m.id == registry.defaultModel, capabilities: capabilities,
            architecture: .init(objective: m.network?.config.objective ?? "encoder", imgSize: c.imgSize, patchSize: c.patchSize,
                                inChans: c.inChans, embedDim: c.embedDim, depth: c.depth, numHeads: c.numHeads, qkvBias: c.qkvBias,
                                parameters: m.parameterCount),
            embedding: .init(dimensions: c.embedDim, defaultPooling: Pooling(c.globalPool)),
            preprocessing: .init(mean: c.mean.map(Double.init), std: c.std.map(Double.init), cropPct: c.cropPct ?? 1),
            limits: .init(maxBatch: batcher.limits.maxBatch, maxBatchDelayMs: batcher.limits.maxDelay * 1000, maxQueue: batcher.limits.maxQueue,
                          maxImagesPerRequest: options.maxImagesPerRequest, maxPixelsPerImage: options.maxPixelsPerImage,
                          requestTimeoutS: options.requestTimeout, maxBodyBytes: options.maxBodyBytes),
            provenance: m.provenance,
            labels: m.canClassify ? c.labels : nil,
            reconstruction: reconstructor.map {
                .init(defaultMaskRatio: Double($0.maskedCount) / Double(c.numPatches), defaultMasking: $0.defaultMasking, patches: c.numPatches)
            },
            tokenizer: m.network?.tokenizer.map { .init(codebookSize: $0.codebookSize, grid: c.gridSize, patches: c.numPatches) },
            requiresTokenizer: requiresTokenizer,
            intendedInput: m.intendedInput,
            oodScore: (options.oodScores ? registry.oodReference(for: m) : nil).flatMap { ref in ref.calibration.map {
                .init(referenceModel: ref.id, calibrationImages: $0.errors.count, dataset: $0.dataset, metric: $0.metric, protocol: $0.measure,
                      warningPercentile: OODScore.warningPercentile, warningScore: OODScore.warningScore(withFeatureSpace: $0.featureSpace != nil),
                      featureSpace: $0.featureSpace.map { f in
                          .init(metric: f.metric, k: f.k, pooling: f.pooling, bankImages: f.bankImages, bankDataset: f.bankDataset,
                                calibrationImages: f.distances.count, dataset: f.dataset)
                      })
            } },
            inference: .init(precision: m.kernel.precision, requestedPrecision: m.requestedPrecision, kernel: m.kernel, note: m.precisionNote))
    }
}
