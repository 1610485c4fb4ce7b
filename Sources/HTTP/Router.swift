import Foundation

/// The core handler shape: take the request, answer through the responder once, from any thread,
/// now or later. Requests of one connection may be answered out of order; the connection still
/// writes the responses in request order.
public typealias HTTPHandler = @Sendable (HTTPRequest, Responder) -> Void

/// Per-route behaviour.
public struct RouteOptions: Sendable {
    /// Answer 411 when the request has neither Content-Length nor chunked framing.
    public var requiresBody: Bool
    /// Body limit for this route instead of `HTTPLimits.maxBodyBytes`.
    public var maxBodyBytes: Int?
    /// Run the handler on the connection's I/O queue instead of the handler queue. Only for
    /// handlers that take microseconds and never block (health probes, metrics text).
    public var runsOnIOQueue: Bool
    /// What this route's 413 adds for a body of the given Content-Type (what to send instead,
    /// where the limits are).
    public var tooLargeAdvice: (@Sendable (_ contentType: String?) -> String)?

    public init(requiresBody: Bool = false, maxBodyBytes: Int? = nil, runsOnIOQueue: Bool = false,
                tooLargeAdvice: (@Sendable (_ contentType: String?) -> String)? = nil) {
        self.requiresBody = requiresBody
        self.maxBodyBytes = maxBodyBytes
        self.runsOnIOQueue = runsOnIOQueue
        self.tooLargeAdvice = tooLargeAdvice
    }
}

/// Maps method + path to handlers. Patterns are exact paths or have whole `{name}` segments
/// (`/v1/models/{id}`); a literal pattern wins over a parameterised one, then the first registered.
/// GET routes answer HEAD too (same headers, no body); a path with no handler for the method is
/// answered 405 with `Allow`, OPTIONS without a handler 204 with `Allow`.
/// Register everything before `HTTPServer.start()`; the server keeps its own copy.
public struct Router: Sendable {
    struct Route: Sendable {
        let pattern: String
        let segments: [Segment]
        var handlers: [HTTPMethod: (HTTPHandler, RouteOptions)]

        var allowedMethods: [HTTPMethod] {
            var methods = Set(handlers.keys)
            if methods.contains(.get) { methods.insert(.head) }
            methods.insert(.options)
            let order: [HTTPMethod] = [.get, .head, .post, .put, .patch, .delete, .options]
            return order.filter { methods.contains($0) } + methods.subtracting(order).sorted { $0.rawValue < $1.rawValue }
        }
    }

    enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
    }

    /// The outcome of a lookup.
    enum Match {
        case handler(HTTPHandler, RouteOptions, pattern: String, parameters: [String: String])
        case options(allow: [HTTPMethod], pattern: String)
        case methodNotAllowed(allow: [HTTPMethod], pattern: String)
        case notFound
    }

    private var literal: [String: Route] = [:]
    private var parameterised: [Route] = []

    /// What a 404 adds after "No route for <path>." (bootmae-serve: the nearest route by spelling);
    /// nil, or an answer of nil, adds nothing.
    public var notFoundAdvice: (@Sendable (_ path: String) -> String?)?

    public init() {}

    /// Registers `handler` for `method` on `pattern`. Registering the same pair twice replaces it.
    public mutating func add(_ method: HTTPMethod, _ pattern: String, options: RouteOptions = RouteOptions(),
                             handler: @escaping HTTPHandler) {
        precondition(pattern.hasPrefix("/"), "route patterns start with '/': \(pattern)")
        let segments = Self.segments(of: pattern)
        if segments.allSatisfy({ if case .literal = $0 { true } else { false } }) {
            literal[pattern, default: Route(pattern: pattern, segments: segments, handlers: [:])]
                .handlers[method] = (handler, options)
        } else if let i = parameterised.firstIndex(where: { $0.segments == segments }) {
            parameterised[i].handlers[method] = (handler, options)
        } else {
            parameterised.append(Route(pattern: pattern, segments: segments, handlers: [method: (handler, options)]))
        }
    }

    /// A handler that returns its response (or throws) and runs on the handler queue.
    public mutating func add(_ method: HTTPMethod, _ pattern: String, options: RouteOptions = RouteOptions(),
                             respond: @escaping @Sendable (HTTPRequest) throws -> HTTPResponse) {
        add(method, pattern, options: options) { request, responder in
            do { responder.send(try respond(request)) } catch { responder.fail(error) }
        }
    }

    /// An async handler, run in a Task: for handlers that await a batcher or other async work.
    /// It must not block its thread (Swift's cooperative pool is small).
    public mutating func add(_ method: HTTPMethod, _ pattern: String, options: RouteOptions = RouteOptions(),
                             respondAsync: @escaping @Sendable (HTTPRequest) async throws -> HTTPResponse) {
        add(method, pattern, options: options) { request, responder in
            Task {
                do { responder.send(try await respondAsync(request)) } catch { responder.fail(error) }
            }
        }
    }

    public mutating func get(_ pattern: String, options: RouteOptions = RouteOptions(),
                             respond: @escaping @Sendable (HTTPRequest) throws -> HTTPResponse) {
        add(.get, pattern, options: options, respond: respond)
    }

    public mutating func post(_ pattern: String, options: RouteOptions = RouteOptions(requiresBody: true),
                              respond: @escaping @Sendable (HTTPRequest) throws -> HTTPResponse) {
        add(.post, pattern, options: options, respond: respond)
    }

    public mutating func put(_ pattern: String, options: RouteOptions = RouteOptions(requiresBody: true),
                             respond: @escaping @Sendable (HTTPRequest) throws -> HTTPResponse) {
        add(.put, pattern, options: options, respond: respond)
    }

    public mutating func delete(_ pattern: String, options: RouteOptions = RouteOptions(),
                                respond: @escaping @Sendable (HTTPRequest) throws -> HTTPResponse) {
        add(.delete, pattern, options: options, respond: respond)
    }

    func match(_ method: HTTPMethod, path: String) -> Match {
        var parameters: [String: String] = [:]
        let route: Route
        if let exact = literal[path] {
            route = exact
        } else {
            let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            guard let found = parameterised.first(where: { Self.matches($0.segments, parts, into: &parameters) }) else {
                return .notFound
            }
            route = found
        }
        if let (handler, options) = route.handlers[method] ?? (method == .head ? route.handlers[.get] : nil) {
            return .handler(handler, options, pattern: route.pattern, parameters: parameters)
        }
        if method == .options {
            return .options(allow: route.allowedMethods, pattern: route.pattern)
        }
        return .methodNotAllowed(allow: route.allowedMethods, pattern: route.pattern)
    }

    private static func segments(of pattern: String) -> [Segment] {
        pattern.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map { part in
            if part.count > 2, part.hasPrefix("{"), part.hasSuffix("}") {
                return .parameter(String(part.dropFirst().dropLast()))
            }
            return .literal(String(part))
        }
    }

    private static func matches(_ segments: [Segment], _ parts: ArraySlice<Substring>,
                                into parameters: inout [String: String]) -> Bool {
        guard segments.count == parts.count else { return false }
        var found: [String: String] = [:]
        for (segment, part) in zip(segments, parts) {
            switch segment {
            case .literal(let text):
                guard part == text else { return false }
            case .parameter(let name):
                guard !part.isEmpty, let value = PercentDecoding.decode(part) else { return false }
                found[name] = value
            }
        }
        parameters = found
        return true
    }
}
