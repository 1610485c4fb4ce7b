import Foundation
import Tensor
import ViT
import ImageKit
import Objectives

/// The inference service: decodes requests, runs models through the batcher, encodes responses.
/// It knows requests and models, not sockets; the executable connects it to the HTTP server.
public final class Service: @unchecked Sendable {
    public struct Options: Sendable {
        public var maxImagesPerRequest = 64
        public var maxPixelsPerImage = 40_000_000
        public var requestTimeout: TimeInterval = 30
        /// The HTTP layer's body limit, shown in /v1/models (the HTTP layer enforces it).
        public var maxBodyBytes = 32 << 20
        public var apiKey: String?
        public var openAPI: String?
        /// Warn (`cropped`) when the center crop cuts away more than this share of an image's area for its aspect ratio.
        public var cropWarningShare = 0.2
        /// Score every image's reconstruction error where a calibrated pixel decoder shares the model's encoder.
        public var oodScores = true
        /// `POST /v1/models/{id}/load` and `/unload` (off: those paths are not routed, 404).
        public var modelControl = false
        /// Where unexpected errors are written (their text never reaches the client).
        public var log: @Sendable (String) -> Void = { _ in }
        public init() {}
    }

    public typealias Respond = @Sendable (ServiceResponse) -> Void

    public let registry: ModelRegistry
    public let batcher: Batcher
    public let metrics: Metrics
    public let options: Options
    /// Loads, swaps and unloads models while serving (control API and folder watcher).
    public let loader: ModelLoader
    private let stateLock = NSLock()
    private var _ready = false
    private var _draining = false

    public init(registry: ModelRegistry, limits: Batcher.Limits, options: Options, metrics: Metrics = Metrics()) {
        self.registry = registry
        self.metrics = metrics
        self.options = options
        batcher = Batcher(limits: limits, metrics: metrics)
        loader = ModelLoader(registry: registry, batcher: batcher, metrics: metrics, log: options.log)
        describeMetrics()
    }

    public var isReady: Bool { stateLock.lock(); defer { stateLock.unlock() }; return _ready && !_draining }
    public func markReady() { stateLock.lock(); _ready = true; stateLock.unlock() }
    public func markDraining() { stateLock.lock(); _draining = true; stateLock.unlock() }

    /// Watches the models folder for added, replaced and removed model directories (`--watch-models`).
    public func watchModels(every interval: TimeInterval) { loader.watch(every: interval) }

    /// A route the HTTP layer registers: method, path pattern (`{id}` segments) and handler.
    public struct Route: Sendable {
        public let method: String
        public let pattern: String
        /// Whether a request must send a body (a POST that needs none, such as a model load, does not).
        public let requiresBody: Bool
        public let handler: @Sendable (ServiceRequest, [String: String], @escaping Respond) -> Void

        public init(method: String, pattern: String, requiresBody: Bool? = nil,
                    handler: @escaping @Sendable (ServiceRequest, [String: String], @escaping Respond) -> Void) {
            self.method = method; self.pattern = pattern; self.requiresBody = requiresBody ?? (method == "POST"); self.handler = handler
        }
    }

    public var routes: [Route] {
        [
            Route(method: "POST", pattern: "/v1/embeddings") { [self] r, _, respond in guarded(r, respond) { try self.embeddings(r, respond) } },
            Route(method: "POST", pattern: "/v1/classifications") { [self] r, _, respond in guarded(r, respond) { try self.classifications(r, respond) } },
            Route(method: "POST", pattern: "/v1/reconstructions") { [self] r, _, respond in guarded(r, respond) { try self.reconstructions(r, respond) } },
            Route(method: "POST", pattern: "/v1/tokens") { [self] r, _, respond in guarded(r, respond) { try self.tokens(r, respond) } },
            Route(method: "GET", pattern: "/v1/models") { [self] r, _, respond in guarded(r, respond) { respond(self.listModels()) } },
            Route(method: "GET", pattern: "/v1/models/{id}") { [self] r, params, respond in
                guarded(r, respond) {
                    let model = try self.registry.model(params["id"] ?? "")
                    respond(Self.versioned(.json(self.modelCard(model)), model))
                }
            },
            Route(method: "GET", pattern: "/healthz") { _, _, respond in respond(.json(StatusResponse(status: "ok"))) },
            Route(method: "GET", pattern: "/readyz") { [self] _, _, respond in
                respond(self.isReady ? .json(StatusResponse(status: "ready"))
                                     : .json(StatusResponse(status: self._draining ? "draining" : "starting"), status: 503))
            },
            Route(method: "GET", pattern: "/metrics") { [self] _, _, respond in
                self.metrics.set("bootmae_resident_memory_bytes", [], Metrics.residentBytes())
                if let live = HeapUsage.inUseBytes() { self.metrics.set("bootmae_heap_in_use_bytes", [], live) }
                self.metrics.set("bootmae_queue_depth", [], Double(self.batcher.depth))
                respond(.text(self.metrics.render(), contentType: "text/plain; version=0.0.4; charset=utf-8"))
            },
        ] + (options.modelControl ? controlRoutes : []) + [
            Route(method: "GET", pattern: "/") { _, _, respond in respond(Self.page(PageAssets.html, "text/html; charset=utf-8")) },
            Route(method: "GET", pattern: "/page.css") { _, _, respond in respond(Self.page(PageAssets.css, "text/css; charset=utf-8")) },
            Route(method: "GET", pattern: "/page.js") { _, _, respond in respond(Self.page(PageAssets.js, "text/javascript; charset=utf-8")) },
            Route(method: "GET", pattern: "/openapi.yaml") { [self] _, _, respond in
                if let spec = self.options.openAPI { respond(.text(spec, contentType: "application/yaml")) }
                else { respond(APIError.notFound("this server was started without its openapi.yaml").response) }
            },
        ]
    }

    /// `POST /v1/models/{id}/load` and `/unload` (with `--model-control`): answered once the loader
    /// queue has done the work, so a 200 means the new weights (or none) serve the next request.
    var controlRoutes: [Route] {
        [
            Route(method: "POST", pattern: "/v1/models/{id}/load", requiresBody: false) { [self] r, params, respond in
                guarded(r, respond) {
                    loader.load(params["id"] ?? "") { [self] result in
                        switch result {
                        case .success(let model): respond(Self.versioned(.json(modelCard(model)), model))
                        case .failure(let error): respond(error.response)
                        }
                    }
                }
            },
            Route(method: "POST", pattern: "/v1/models/{id}/unload", requiresBody: false) { [self] r, params, respond in
                guarded(r, respond) {
                    loader.unload(params["id"] ?? "") { result in
                        switch result {
                        case .success(let model):
                            respond(.json(ModelUnloaded(id: model.id, modelVersion: model.version)))
                        case .failure(let error): respond(error.response)
                        }
                    }
                }
            },
        ]
    }

    /// An answer computed by `model`, with its version in the `X-Model-Version` header (the only
    /// place a PNG answer can carry it; JSON answers also have `model_version`).
    static func versioned(_ response: ServiceResponse, _ model: LoadedModel) -> ServiceResponse {
        var r = response
        r.headers.append(("X-Model-Version", model.version))
        return r
    }

    /// One of the page's files. It loads nothing from elsewhere, which the policy states.
    static func page(_ text: String, _ contentType: String) -> ServiceResponse {
        var r = ServiceResponse.text(text, contentType: contentType)
        r.headers += [("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff"),
                      ("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")]
        return r
    }

    /// Authorization for /v1/*, then the handler; any thrown APIError becomes its JSON response.
    func guarded(_ request: ServiceRequest, _ respond: @escaping Respond, _ body: () throws -> Void) {
        do {
            if let key = options.apiKey, request.path.hasPrefix("/v1/") {
                guard Self.bearerToken(request.header("authorization")) == key else { throw APIError.unauthorized() }
            }
            try body()
        } catch let e as APIError {
            respond(e.response)
        } catch {
            options.log("error: request \(request.requestID) \(request.method) \(request.path): \(error)")
            respond(APIError(status: 500, type: "server_error", code: "internal_error",
                             message: "internal error (request \(request.requestID)); the server log has the details").response)
        }
    }

    /// The token of an `Authorization: Bearer <token>` header (the scheme name is case-insensitive, RFC 9110 §11.1).
    static func bearerToken(_ header: String?) -> String? {
        guard let header, let space = header.firstIndex(of: " "), header[..<space].lowercased() == "bearer" else { return nil }
        return String(header[header.index(after: space)...].drop { $0 == " " })
    }

    // MARK: Inputs

    /// A request's images and typed options: from a JSON body (options may also come as query
    /// parameters; the body's own win), a raw PNG/JPEG body (options in the query) or multipart
    /// parts (options in form fields, then the query).
    func decode<Body: ImageRequest>(_ type: Body.Type, _ request: ServiceRequest, single: Bool = false) throws -> (images: [[UInt8]], body: Body) {
        // JSON when the client says so, or when it sends no content type and the body opens an object.
        let contentType = request.contentType
        // A misspelt option must not quietly fall back to its default (`?poolng=mean`).
        try RequestFields.refuseUnknown(request.query.keys, Body.CodingKeys.self)
        try RequestFields.refuseRepeated(request.repeatedQuery, in: "the query")
        if contentType == "application/json" || (contentType == nil && request.body.first == UInt8(ascii: "{")) {
            let body = try ImageInputs.json(Body.self, request)
            switch try body.input.get() {
            case nil:
                throw APIError.invalid("missing 'input': a base64 image, a data URI or a list of them", param: "input")
            case .one(let item):
                return ([try ImageInputs.decode(item, index: nil)], body)
            case .list(let items):
                if single { throw APIError.invalid("'input' must be one image here, not a list", param: "input") }
                guard !items.isEmpty else { throw APIError.invalid("'input' is an empty list", param: "input") }
                return (try items.enumerated().map { try ImageInputs.decode($0.element, index: $0.offset) }, body)
            }
        }
        // Beside a raw or multipart body the images are the body's, so an `input` in the query would be
        // ignored: refused. (Beside a JSON body without one it stands in for the body's, as it always
        // did.) Checked once the body is known to be one of these, so an unsupported Content-Type stays a 415.
        func refuseQueryInput() throws {
            guard request.query["input"] != nil else { return }
            throw APIError.invalid("'input' is not a query parameter: send the images in the body (JSON 'input', "
                                   + "a raw image body, or multipart file parts)", param: "input", code: "unknown_parameter")
        }
        switch contentType {
        case "image/png", "image/jpeg", "image/jpg", "application/octet-stream":
            try refuseQueryInput()
            guard !request.body.isEmpty else { throw APIError.invalid("the image body is empty") }
            return ([request.body], try Body(fields: RequestFields(strings: request.query)))
        case "multipart/form-data":
            try refuseQueryInput()
            let (files, fields) = try ImageInputs.multipart(request)   // parts named `input` are images too
            try RequestFields.refuseUnknown(fields.keys, Body.CodingKeys.self)
            guard !files.isEmpty else { throw APIError.invalid("the multipart body has no file part", param: "input") }
            if single && files.count > 1 { throw APIError.invalid("send one image here, got \(files.count) file parts", param: "input") }
            return (files, try Body(fields: RequestFields(strings: fields.merging(request.query) { form, _ in form })))
        default:
            throw APIError.unsupportedMedia("unsupported Content-Type \(request.header("content-type") ?? "(none)"); "
                + "send application/json, image/png, image/jpeg (or application/octet-stream) or multipart/form-data")
        }
    }

    /// The 500 for an answer whose PNG could not be encoded (a bug, not the client's doing): the cause
    /// goes to the log, the client gets the request id to quote.
    func pngEncodingFailed(_ request: ServiceRequest, _ error: Error) -> ServiceResponse {
        options.log("error: request \(request.requestID) \(request.path): PNG encoding failed: \(error)")
        return APIError(status: 500, type: "server_error", code: "internal_error",
                        message: "internal error (request \(request.requestID)); the server log has the details").response
    }

    /// Decodes and preprocesses every image (on the caller's thread, overlapping other requests' inference),
    /// noting what the conversion did to each that the model was not trained for.
    func modelInputs(_ images: [[UInt8]], for model: LoadedModel) throws -> [PreparedImage] {
        prepare(try decodeImages(images), for: model)
    }

    /// A request's images decoded (with their bytes, which the alpha warning reads), in request order.
    func decodeImages(_ images: [[UInt8]]) throws -> [(image: Image, bytes: [UInt8])] {
        guard images.count <= options.maxImagesPerRequest else {
            throw APIError.tooLarge("\(images.count) images in one request; the limit is \(options.maxImagesPerRequest)", param: "input")
        }
        let start = Date()
        defer { metrics.observe("bootmae_decode_seconds", [], Date().timeIntervalSince(start)) }
        return try images.enumerated().map { i, bytes in
            let param = images.count == 1 ? "input" : "input[\(i)]"
            do {
                return (try ImageDecoder.decode(bytes, maxPixels: options.maxPixelsPerImage), bytes)
            } catch let e as ImageError {
                if case .tooLarge = e { throw APIError.tooLarge("\(param): \(e)", param: param) }
                throw APIError.invalid("\(param): \(e)", param: param, code: "invalid_image")
            }
        }
    }

    /// Decoded images as `model`'s input tensors, with the warnings their conversion earns. A colour
    /// image converted for a grayscale model is told which loaded model takes colour (a request that
    /// names none keeps the default model for embeddings and labels, so vectors stay comparable).
    func prepare(_ decoded: [(image: Image, bytes: [UInt8])], for model: LoadedModel) -> [PreparedImage] {
        let colourModel = model.config.inChans == 1
            ? registry.models.values.filter { $0.config.inChans == 3 }.map(\.id).sorted().first : nil
        return decoded.map { image, bytes in
            var warnings = InputChecks.warnings(image: image, bytes: bytes, preprocessor: model.preprocessor,
                                                cropShare: options.cropWarningShare)
            if let colourModel, let i = warnings.firstIndex(where: { $0.code == InputWarning.Code.convertedToGrayscale.rawValue }) {
                warnings[i].message += "; the loaded model '\(colourModel)' takes colour images: name it with 'model'"
            }
            return PreparedImage(tensor: model.preprocessor.tensorCHW(image), warnings: warnings)
        }
    }

    /// The out-of-distribution score of each of `tensors` (`model`'s input), measured on the compute
    /// thread by the calibrated model that shares `model`'s encoder; `done` gets nil when there is
    /// none, scores are off, or the queue cannot take the work in time (a score is never a reason to fail).
    func oodScores(_ tensors: [[Float]], for model: LoadedModel, deadline: Date, _ done: @escaping @Sendable ([OODScore]?) -> Void) {
        guard options.oodScores, let reference = registry.oodReference(for: model), let network = reference.network,
              let calibration = reference.calibration else { return done(nil) }
        let c = reference.config
        do {
            try batcher.schedule(deadline: deadline, run: { [metrics] in
                let start = Date()
                let images = Tensor(shape: [tensors.count, c.inChans, c.imgSize, c.imgSize], data: tensors.flatMap { $0 })
                let errors = network.maskedPatchErrors(images, protocol: calibration.measure)
                let features = Self.featureScores(images, reference: reference)
                metrics.observe("bootmae_ood_seconds", [("model", reference.id)], Date().timeIntervalSince(start))
                done(errors.enumerated().map { i, error in
                    OODScore(percentile: calibration.percentile(of: error), maskedPatchMSE: error, referenceModel: reference.id,
                             calibrationImages: calibration.errors.count, featureSpace: features?[i])
                })
            }, expire: { done(nil) })
        } catch {
            done(nil)
        }
    }

    /// The feature-space score of each image (B, C, H, W; the reference's input): the reference
    /// encoder's embedding (the calibration's pooling), its k-th-nearest distance to the bank and
    /// that distance's percentile; nil when the reference has no bank. Runs on the compute thread.
    static func featureScores(_ images: Tensor, reference: LoadedModel) -> [OODScore.FeatureScore]? {
        guard let bank = reference.featureBank, let f = reference.calibration?.featureSpace else { return nil }
        let embeddings = reference.encoder.embed(images, pooling: ViTConfig.Pooling(rawValue: f.pooling), workspace: reference.workspace)
        let d = embeddings.lastDim
        return (0..<images.shape[0]).map { i in
            let distance = bank.kthNearestDistance(Array(embeddings.data[(i * d)..<((i + 1) * d)]), k: f.k)
            return .init(percentile: f.percentile(of: distance), distance: distance, k: f.k, bankImages: bank.count,
                         calibrationImages: f.distances.count)
        }
    }

    /// Collects one result per image, then responds once (or with the first error).
    final class Gather<T>: @unchecked Sendable {
        private let lock = NSLock()
        private var results: [T?]
        private var done = false
        private let finish: ([T]) -> Void
        private let fail: (APIError) -> Void
        init(count: Int, finish: @escaping ([T]) -> Void, fail: @escaping (APIError) -> Void) {
            results = Array(repeating: nil, count: count); self.finish = finish; self.fail = fail
        }
        func complete(_ i: Int, _ result: Result<T, APIError>) {
            lock.lock()
            guard !done else { lock.unlock(); return }
            switch result {
            case .failure(let e):
                done = true
                lock.unlock()
                fail(e)
            case .success(let v):
                results[i] = v
                if results.allSatisfy({ $0 != nil }) {
                    done = true
                    let all = results.map { $0! }
                    lock.unlock()
                    finish(all)
                } else {
                    lock.unlock()
                }
            }
        }
    }

    func describeMetrics() {
        metrics.describe("bootmae_queue_depth", type: "gauge", "Images waiting for inference")
        metrics.describe("bootmae_batch_size", type: "histogram", "Images per encoder forward pass")
        metrics.describe("bootmae_inference_seconds", type: "histogram", "Encoder forward time per batch")
        metrics.describe("bootmae_queue_seconds", type: "histogram", "Time an image waited for its batch")
        metrics.describe("bootmae_decode_seconds", type: "histogram", "Image decode and preprocessing time per request")
        metrics.describe("bootmae_images_total", type: "counter", "Images run through an encoder")
        metrics.describe("bootmae_rejected_total", type: "counter", "Requests refused by the queue (full or deadline)")
        metrics.describe("bootmae_resident_memory_bytes", type: "gauge", "Resident set size of the server process")
        metrics.describe("bootmae_heap_in_use_bytes", type: "gauge",
                         "Bytes allocated and not yet freed (glibc mallinfo2); unlike the resident set, freed memory the heap keeps is not counted")
        metrics.describe("bootmae_reconstruction_seconds", type: "histogram", "Masked-image reconstruction time")
        metrics.describe("bootmae_tokenize_seconds", type: "histogram", "Tokenization (codes, and the decoding when asked) time")
        metrics.describe("bootmae_ood_seconds", type: "histogram", "Out-of-distribution scoring time per request (reconstructions under the calibration masks)")
    }
}
