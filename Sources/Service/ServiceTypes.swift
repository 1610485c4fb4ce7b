import Foundation

/// A request as the service sees it: no sockets, no framing — the HTTP layer fills this in.
public struct ServiceRequest: Sendable {
    public var method: String
    public var path: String
    /// Each query parameter's first value.
    public var query: [String: String]
    /// The query parameters given more than once, sorted: an option takes one value, so the
    /// handlers refuse them rather than let one copy win (`RequestFields.refuseRepeated`).
    public var repeatedQuery: [String]
    /// Header names lowercased.
    public var headers: [String: String]
    public var body: [UInt8]
    public var requestID: String

    public init(method: String, path: String, query: [String: String] = [:], repeatedQuery: [String] = [], headers: [String: String] = [:],
                body: [UInt8] = [], requestID: String = "") {
        self.method = method; self.path = path; self.query = query; self.repeatedQuery = repeatedQuery
        self.headers = Dictionary(headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a })
        self.body = body; self.requestID = requestID
    }

    public func header(_ name: String) -> String? { headers[name.lowercased()] }

    /// The media type of the body without parameters, lowercased ("application/json"). A value
    /// holding a comma outside quotes is several Content-Type lines joined: it is returned whole, so
    /// it matches no supported type.
    public var contentType: String? {
        guard let value = header("content-type") else { return nil }
        var quoted = false
        for c in value {
            if c == "\"" { quoted.toggle() } else if c == "," && !quoted { return value.lowercased() }
        }
        return value.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
    }
}

public struct ServiceResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int = 200, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status; self.headers = headers; self.body = body
    }

    /// A body written with the service's one JSON configuration (`APIJSON.encoder`). A value that
    /// cannot be written (a NaN) is the server's fault: a 500 `internal_error`, never a 200 with
    /// an empty object the client would take for an answer.
    public static func json(_ value: some Encodable, status: Int = 200) -> ServiceResponse {
        guard let data = try? APIJSON.encoder.encode(value) else {
            let body = #"{"error":{"code":"internal_error","message":"the answer holds a value JSON cannot write (not a finite number)","type":"server_error","param":null}}"#
            return ServiceResponse(status: 500, headers: [("Content-Type", "application/json")], body: Array(body.utf8))
        }
        return ServiceResponse(status: status, headers: [("Content-Type", "application/json")], body: [UInt8](data))
    }

    public static func text(_ text: String, contentType: String = "text/plain; charset=utf-8", status: Int = 200) -> ServiceResponse {
        ServiceResponse(status: status, headers: [("Content-Type", contentType)], body: Array(text.utf8))
    }

    public static func png(_ bytes: [UInt8]) -> ServiceResponse {
        ServiceResponse(status: 200, headers: [("Content-Type", "image/png")], body: bytes)
    }
}

/// Every failure a client can cause or meet, mapped once to a status and the OpenAI-style envelope
/// `{"error": {"message", "type", "code", "param"}}`.
public struct APIError: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var type: String
    public var code: String
    public var message: String
    public var param: String?
    public var headers: [(String, String)] = []

    public init(status: Int, type: String, code: String, message: String, param: String? = nil) {
        self.status = status; self.type = type; self.code = code; self.message = message; self.param = param
    }

    public var description: String { "\(status) \(code): \(message)" }

    public static func invalid(_ message: String, param: String? = nil, code: String = "invalid_request") -> APIError {
        APIError(status: 400, type: "invalid_request_error", code: code, message: message, param: param)
    }
    public static func notFound(_ message: String, code: String = "not_found") -> APIError {
        APIError(status: 404, type: "invalid_request_error", code: code, message: message)
    }
    public static func unsupportedMedia(_ message: String, param: String? = nil) -> APIError {
        APIError(status: 415, type: "invalid_request_error", code: "unsupported_media_type", message: message, param: param)
    }
    public static func tooLarge(_ message: String, param: String? = nil) -> APIError {
        APIError(status: 413, type: "invalid_request_error", code: "content_too_large", message: message, param: param)
    }
    public static func overloaded(retryAfter seconds: Int) -> APIError {
        var e = APIError(status: 429, type: "overloaded_error", code: "queue_full",
                         message: "the model's queue is full; retry after \(seconds) s")
        e.headers = [("Retry-After", String(seconds))]
        return e
    }
    public static func timeout(_ message: String) -> APIError {
        var e = APIError(status: 503, type: "timeout_error", code: "deadline_exceeded", message: message)
        e.headers = [("Retry-After", "1")]  // the queue was long, not broken: a retry may well succeed
        return e
    }
    /// A fault of the served models' setup that only the operator can fix (a stage-2 model whose
    /// tokenizer is missing or another one): 503 `server_error`, so clients neither retry a request
    /// they think malformed nor report it as their own bug. No Retry-After: it lasts until the
    /// models folder changes.
    public static func misconfigured(_ message: String, code: String, param: String? = nil) -> APIError {
        APIError(status: 503, type: "server_error", code: code, message: message, param: param)
    }
    public static func unauthorized() -> APIError {
        var e = APIError(status: 401, type: "authentication_error", code: "invalid_api_key",
                         message: "missing or invalid API key: send 'Authorization: Bearer <key>'")
        e.headers = [("WWW-Authenticate", "Bearer")]
        return e
    }

    public var response: ServiceResponse {
        var r = ServiceResponse.json(ErrorResponse(error: .init(message: message, type: type, code: code, param: Nullable(param))),
                                     status: status)
        r.headers += headers
        return r
    }
}
