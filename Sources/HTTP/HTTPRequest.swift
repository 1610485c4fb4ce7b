import Foundation

/// A complete request as a handler sees it: head, whole body, trailers, route parameters and the
/// request id that every response to it carries.
public struct HTTPRequest: Sendable {
    public var method: HTTPMethod
    /// The request-target exactly as sent (origin-form, absolute-form, `*` or an authority).
    public var target: String
    /// The path part of the target, still percent-encoded; `/` for an absolute-form target without one.
    public var path: String
    /// The raw query after `?`, or nil when the target has no `?`.
    public var query: String?
    public var version: HTTPVersion
    public var headers: HTTPHeaders
    /// Trailer fields of a chunked body (never used for framing).
    public var trailers: HTTPHeaders
    public var body: Data
    /// Values of the route's `{name}` segments, percent-decoded.
    public var pathParameters: [String: String]
    /// The client's `X-Request-Id` when it was sane (1-128 of `A-Za-z0-9._:-`), else a generated one.
    public var requestID: String
    /// The pattern of the matched route, e.g. `/v1/models/{id}`.
    public var route: String?
    /// The peer as `address:port` (`[v6]:port`), when known.
    public var remoteAddress: String?

    /// For handlers' unit tests; the server builds requests itself.
    public init(method: HTTPMethod, target: String, version: HTTPVersion = .http1_1, headers: HTTPHeaders = [:],
                body: Data = Data(), trailers: HTTPHeaders = [:], pathParameters: [String: String] = [:],
                requestID: String = "test", route: String? = nil, remoteAddress: String? = nil) {
        self.method = method
        self.target = target
        let parts = RequestTarget.split(target)
        self.path = parts.path
        self.query = parts.query
        self.version = version
        self.headers = headers
        self.body = body
        self.trailers = trailers
        self.pathParameters = pathParameters
        self.requestID = requestID
        self.route = route
        self.remoteAddress = remoteAddress
    }

    init(head: RequestHead, body: Data, trailers: HTTPHeaders, pathParameters: [String: String],
         requestID: String, route: String?, remoteAddress: String?) {
        method = head.method
        target = head.target
        path = head.path
        query = head.query
        version = head.version
        headers = head.headers
        self.body = body
        self.trailers = trailers
        self.pathParameters = pathParameters
        self.requestID = requestID
        self.route = route
        self.remoteAddress = remoteAddress
    }

    /// The query's `name=value` pairs, percent-decoded, `+` as space, in order.
    public var queryItems: [QueryItem] { QueryString.parse(query) }

    /// The first value of query parameter `name`.
    public func queryValue(_ name: String) -> String? {
        queryItems.first { $0.name == name }?.value
    }

    /// `Content-Type` without parameters, lowercased (`application/json` for `Application/JSON; charset=utf-8`).
    public var mediaType: String? {
        guard let value = headers["Content-Type"] else { return nil }
        let bare = value.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false)[0]
        return bare.trimmingCharacters(in: .whitespaces).lowercased()
    }

    /// Throws a 415 in the error envelope unless the media type is one of `accepted`
    /// (compared without parameters, case-insensitively; `image/*` matches any image type).
    public func requireContentType(_ accepted: String...) throws(HTTPError) {
        try requireContentType(accepted)
    }

    public func requireContentType(_ accepted: [String]) throws(HTTPError) {
        if let type = mediaType, accepted.contains(where: { Self.mediaType(type, matches: $0.lowercased()) }) {
            return
        }
        throw HTTPError.unsupportedMediaType(headers["Content-Type"], accepted: accepted)
    }

    static func mediaType(_ type: String, matches pattern: String) -> Bool {
        if pattern == "*/*" || pattern == type { return true }
        if pattern.hasSuffix("/*") { return type.hasPrefix(pattern.dropLast()) }
        return false
    }
}

enum RequestTarget {
    /// Path and query of an origin-form or absolute-form target.
    static func split(_ target: String) -> (path: String, query: String?) {
        var rest = Substring(target)
        if !rest.hasPrefix("/"), let scheme = rest.range(of: "://") {
            rest = rest[scheme.upperBound...]
            rest = rest.firstIndex(where: { $0 == "/" || $0 == "?" }).map { rest[$0...] } ?? ""
        }
        let q = rest.firstIndex(of: "?")
        var path = String(q.map { rest[..<$0] } ?? rest)
        if path.isEmpty { path = target == "*" ? "*" : "/" }
        return (path, q.map { String(rest[rest.index(after: $0)...]) })
    }
}
