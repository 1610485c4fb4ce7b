import Dispatch
import Foundation
import HTTP
import XCTest

final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<R>(_ body: (inout Value) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }

    var snapshot: Value { withLock { $0 } }
}

extension HTTPLimits {
    /// Defaults with small timeouts, so timeout tests run in fractions of a second while other
    /// tests never hit them.
    static var test: HTTPLimits {
        var limits = HTTPLimits()
        limits.maxBodyBytes = 64 * 1024
        limits.headerReadTimeout = .seconds(5)
        limits.bodyReadTimeout = .seconds(5)
        limits.idleTimeout = .seconds(5)
        limits.writeTimeout = .seconds(5)
        limits.lingerTimeout = .milliseconds(500)
        return limits
    }
}

/// A server on 127.0.0.1 with an ephemeral port and the routes the tests use.
final class TestServer {
    let server: HTTPServer
    let observations = Locked<[RequestObservation]>([])
    /// Tags of `/delay` requests in the order their handlers answered.
    let completionOrder = Locked<[String]>([])

    var port: Int { server.port }

    init(limits: HTTPLimits = .test, host: String = "127.0.0.1", extraRoutes: (inout Router) -> Void = { _ in }) throws {
        var router = Router()
        let completionOrder = self.completionOrder
        router.get("/hello") { _ in .text("hello\n") }
        router.get("/inline", options: RouteOptions(runsOnIOQueue: true)) { _ in .text("inline\n") }
        router.post("/echo") { request in
            var response = HTTPResponse(headers: ["Content-Type": request.headers["Content-Type"] ?? "application/octet-stream"],
                                        body: request.body)
            for field in request.trailers { response.headers.add(name: "X-Trailer-\(field.name)", value: field.value) }
            return response
        }
        router.add(.put, "/upload", options: RouteOptions(requiresBody: true, maxBodyBytes: 1024)) { request in
            .text("stored \(request.body.count)\n")
        }
        router.get("/inspect/{id}") { request in
            let object: [String: Any] = [
                "method": request.method.rawValue, "path": request.path, "query": request.query ?? NSNull(),
                "items": request.queryItems.map { [$0.name, $0.value] }, "id": request.pathParameters["id"] ?? "",
                "requestID": request.requestID, "route": request.route ?? "", "version": "\(request.version)",
                "target": request.target,
            ]
            return .json(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
        }
        // Answers after ?ms= milliseconds from another queue (out-of-order completion).
        router.add(.get, "/delay") { request, responder in
            let ms = Int(request.queryValue("ms") ?? "0") ?? 0
            let tag = request.queryValue("tag") ?? ""
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(ms)) {
                completionOrder.withLock { $0.append(tag) }
                responder.send(.text("delayed \(tag)\n"))
            }
        }
        router.get("/spin") { request in
            let ms = Double(request.queryValue("ms") ?? "100") ?? 100
            let end = DispatchTime.now().uptimeNanoseconds + UInt64(ms * 1e6)
            while DispatchTime.now().uptimeNanoseconds < end {}
            return .text("spun\n")
        }
        router.get("/big") { request in
            HTTPResponse(body: Data(repeating: 0x61, count: Int(request.queryValue("bytes") ?? "0") ?? 0))
        }
        router.post("/json-only") { request in
            try request.requireContentType("application/json")
            return .text("ok\n")
        }
        router.add(.get, "/forgets") { _, _ in }  // drops its responder: the server answers 500
        router.get("/throws") { _ in throw CocoaError(.fileNoSuchFile) }
        extraRoutes(&router)

        let observations = self.observations
        server = HTTPServer(configuration: .init(host: host, port: 0, limits: limits, observer: { observation in
            observations.withLock { $0.append(observation) }
        }), router: router)
        try server.start()
    }

    func client(timeout: Double = 5) throws -> RawClient {
        try RawClient(port: port, timeout: timeout)
    }

    func stop() {
        server.stop()
        _ = server.waitUntilDrained(deadline: .now() + 5)
    }

    deinit { stop() }
}
