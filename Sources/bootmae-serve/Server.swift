import ArgumentParser
import Foundation
import ViT
import HTTP
import Logging
import Service
import Tensor

/// Wires the service into the HTTP server and runs until SIGTERM/SIGINT, then drains.
final class Server: @unchecked Sendable {
    let options: BootMAEServe
    let logger = Logger(label: "bootmae-serve")

    init(options: BootMAEServe) { self.options = options }

    func run() throws {
        let o = options
        signal(SIGPIPE, SIG_IGN)
        TensorRuntime.configure(threads: o.threads)
        InferenceSplit.current = o.split ?? .byImage
        let log: @Sendable (String) -> Void = { FileHandle.standardError.write(Data(("bootmae-serve: " + $0 + "\n").utf8)) }
        // A port already in use fails now, not after every model has loaded and warmed up.
        do { try HTTPServer.checkBindable(host: o.host, port: o.port) } catch {
            log("error: cannot listen on \(o.host):\(o.port): \(error)")
            throw ExitCode(2)
        }
        let registry: ModelRegistry
        do {
            let preferred = (o.defaultModel ?? env("BOOTMAE_DEFAULT_MODEL")) ?? (FileManager.default.fileExists(atPath: o.modelsDir + "/bootmae-vit-tiny-fmnist") ? "bootmae-vit-tiny-fmnist" : nil)
            registry = try ModelRegistry(directory: o.modelsDir, defaultModel: preferred, precisions: try o.precisions(), log: log)
        } catch {
            log("error: \(error)")
            throw ExitCode(2)
        }
        var serviceOptions = Service.Options()
        serviceOptions.maxImagesPerRequest = o.maxImages
        serviceOptions.maxPixelsPerImage = o.maxPixels
        serviceOptions.requestTimeout = o.requestTimeout
        serviceOptions.apiKey = o.apiKey ?? env("BOOTMAE_API_KEY")
        // The spec this binary was built with (openapi.yaml, compiled in), unless --openapi names another.
        serviceOptions.openAPI = String(decoding: PackageResources.openapi_yaml, as: UTF8.self)
        if let path = o.openapi ?? env("BOOTMAE_OPENAPI") {
            do { serviceOptions.openAPI = try String(contentsOfFile: path, encoding: .utf8) } catch {
                log("error: --openapi \(path) cannot be read (\(error.localizedDescription)); leave it out to serve the built-in openapi.yaml")
                throw ExitCode(2)
            }
        }
        serviceOptions.log = log
        serviceOptions.maxBodyBytes = o.maxBodyBytes
        serviceOptions.cropWarningShare = o.warnCropShare
        serviceOptions.oodScores = o.oodScore
        serviceOptions.modelControl = o.modelControl
        let service = Service(registry: registry, limits: .init(maxBatch: o.maxBatch, maxDelay: o.maxBatchDelayMs / 1000, maxQueue: o.maxQueue),
                              options: serviceOptions)

        var router = Router()
        for route in service.routes {
            let advice: (@Sendable (String?) -> String)? = route.requiresBody ? { @Sendable in Server.tooLargeAdvice(contentType: $0) } : nil
            let options = RouteOptions(requiresBody: route.requiresBody, tooLargeAdvice: advice)
            router.add(HTTPMethod(route.method), route.pattern, options: options) { request, responder in
                route.handler(Self.serviceRequest(request), request.pathParameters) { responder.send(Self.httpResponse($0)) }
            }
        }
        let known = service.routes.map { (method: $0.method, pattern: $0.pattern) }
        router.notFoundAdvice = { path in RouteAdvice.forPath(path, among: known) }
        var limits = HTTPLimits()
        limits.maxBodyBytes = o.maxBodyBytes
        limits.maxConnections = o.maxConnections
        var configuration = HTTPServer.Configuration(host: o.host, port: o.port, limits: limits)
        let metrics = service.metrics
        metrics.describe("bootmae_http_requests_total", type: "counter", "HTTP requests by route and status")
        metrics.describe("bootmae_http_request_seconds", type: "histogram", "HTTP request latency by route")
        configuration.observer = { observation in
            let route = observation.route ?? "unmatched"
            let seconds = Double(observation.duration.components.seconds) + Double(observation.duration.components.attoseconds) / 1e18
            metrics.increment("bootmae_http_requests_total", [("route", route), ("status", String(observation.status))])
            metrics.observe("bootmae_http_request_seconds", [("route", route), ("status", String(observation.status))], seconds)
        }
        let server = HTTPServer(configuration: configuration, router: router)

        // Warm up before listening for readiness: one forward pass per model.
        let start = Date()
        registry.warmUp()
        do { try server.start() } catch {
            log("error: cannot listen on \(o.host):\(o.port): \(error)")
            throw ExitCode(2)
        }
        service.markReady()
        if o.watchModels { service.watchModels(every: Double(o.watchIntervalMs) / 1000) }

        // SIGTERM/SIGINT: stop accepting, finish in-flight requests, exit within the drain timeout.
        // Dispatch registers a signal source asynchronously; "ready" is logged once both are
        // registered, so a supervisor that signals as soon as it reads "ready" gets a drain, not a
        // signal ignored (or a kill by the default action).
        let done = DispatchSemaphore(value: 0)
        let registered = DispatchSemaphore(value: 0)
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { @Sendable in
                log("signal \(sig): draining (up to \(o.drainTimeout) s)")
                service.markDraining()
                server.beginDrain(timeout: .milliseconds(Int(o.drainTimeout * 1000))) { done.signal() }
            }
            source.setRegistrationHandler { @Sendable in registered.signal() }
            source.resume()
            sources.append(source)
        }
        for _ in sources { _ = registered.wait(timeout: .now() + 5) }
        log("ready on http://\(o.host):\(server.port) with \(registry.models.count) model(s) (default \(registry.defaultModel)); warm-up \(String(format: "%.2f", Date().timeIntervalSince(start))) s")
        done.wait()
        log("drained; bye")
        _ = sources
    }

    /// What a 413 of the /v1 endpoints adds to the size limit, for the kind of body that was sent.
    @Sendable static func tooLargeAdvice(contentType: String?) -> String {
        let type = contentType?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
        let limits = "GET /v1/models lists every limit (max_body_bytes here; --max-body-bytes raises it)."
        if type.hasPrefix("image/") {
            return "The image file alone is larger: shrink it before sending (every image is scaled down to its model's input, "
                + "a few dozen pixels a side, so nothing is lost; a JPEG of a photo is also far smaller than a PNG). " + limits
        }
        if type.hasPrefix("multipart/") {
            return "Every part counts toward it: send fewer or smaller images per request. " + limits
        }
        return "JSON bodies carry images as base64, a third larger than the files: send one image as the "
            + "raw body (Content-Type: image/png or image/jpeg) or several as multipart/form-data parts. " + limits
    }

    static func serviceRequest(_ r: HTTPRequest) -> ServiceRequest {
        // Repeated field lines become one comma-separated value (RFC 9110 §5.3), so a repeated
        // singleton such as Content-Type or Authorization fails its check instead of one copy winning.
        var headers: [String: String] = [:]
        for field in r.headers {
            let name = field.name.lowercased()
            headers[name] = headers[name].map { $0 + ", " + field.value } ?? field.value
        }
        var query: [String: String] = [:], repeated: Set<String> = []
        for item in r.queryItems {
            if query[item.name] == nil { query[item.name] = item.value } else { repeated.insert(item.name) }
        }
        return ServiceRequest(method: r.method.rawValue, path: r.path, query: query, repeatedQuery: repeated.sorted(), headers: headers,
                              body: [UInt8](r.body), requestID: r.requestID)
    }

    static func httpResponse(_ s: ServiceResponse) -> HTTPResponse {
        HTTPResponse(status: HTTPStatus(s.status), headers: HTTPHeaders(s.headers), body: Data(s.body))
    }
}

/// `--healthcheck`: GET /healthz over loopback with a short timeout (no curl in slim images).
enum HealthCheck {
    static func run(host: String, port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else { return false }
        let connected = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else { return false }
        let request = Array("GET /healthz HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8)
        guard send(fd, request, request.count, 0) == request.count else { return false }
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 12 && String(decoding: buffer[0..<n], as: UTF8.self).hasPrefix("HTTP/1.1 200")
    }
}
