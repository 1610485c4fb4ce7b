import Foundation

/// The one error body every layer uses (OpenAI's shape):
/// `{"error": {"message": "...", "type": "...", "code": "...", "param": null}}`.
/// The HTTP module writes it for protocol errors. The Service module (which does not import this
/// one) writes the same keys and the same codes per status for its own errors.
public enum ErrorEnvelope {
    public static let contentType = "application/json"

    public static func json(message: String, type: String, code: String?, param: String? = nil) -> Data {
        var out = "{\"error\": {\"message\": "
        appendJSONString(message, to: &out)
        out += ", \"type\": "
        appendJSONString(type, to: &out)
        out += ", \"code\": "
        if let code { appendJSONString(code, to: &out) } else { out += "null" }
        out += ", \"param\": "
        if let param { appendJSONString(param, to: &out) } else { out += "null" }
        out += "}}"
        return Data(out.utf8)
    }

    /// The `type` used when a caller gives none: client errors vs server errors.
    public static func defaultType(for status: HTTPStatus) -> String {
        status.code >= 500 ? "server_error" : "invalid_request_error"
    }

    /// A stable snake_case `code` per status, for protocol errors.
    public static func defaultCode(for status: HTTPStatus) -> String {
        switch status.code {
        case 400: "bad_request"
        case 401: "unauthorized"
        case 403: "forbidden"
        case 404: "not_found"
        case 405: "method_not_allowed"
        case 408: "request_timeout"
        case 411: "length_required"
        case 413: "content_too_large"
        case 414: "uri_too_long"
        case 415: "unsupported_media_type"
        case 417: "expectation_failed"
        case 422: "unprocessable_content"
        case 429: "too_many_requests"
        case 431: "header_fields_too_large"
        case 500: "internal_error"
        case 501: "not_implemented"
        case 503: "service_unavailable"
        case 504: "timeout"
        case 505: "http_version_not_supported"
        default: "http_\(status.code)"
        }
    }

    static func appendJSONString(_ s: String, to out: inout String) {
        out.append("\"")
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out.append("\\\"")
            case "\\": out.append("\\\\")
            case "\n": out.append("\\n")
            case "\r": out.append("\\r")
            case "\t": out.append("\\t")
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16)
                out.append("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
            default: out.unicodeScalars.append(scalar)
            }
        }
        out.append("\"")
    }
}

/// An error that maps to one HTTP response in the error envelope. Handlers may throw it; the
/// server answers with `response`. Any other error thrown by a handler becomes a 500 whose message
/// does not leak the error's text.
public struct HTTPError: Error, Sendable, CustomStringConvertible {
    public var status: HTTPStatus
    public var message: String
    public var type: String
    public var code: String?
    public var param: String?
    /// Extra response headers, e.g. `Allow` for 405 or `Retry-After` for 503.
    public var headers: HTTPHeaders

    public init(_ status: HTTPStatus, message: String, type: String? = nil, code: String? = nil,
                param: String? = nil, headers: HTTPHeaders = [:]) {
        self.status = status
        self.message = message
        self.type = type ?? ErrorEnvelope.defaultType(for: status)
        self.code = code ?? ErrorEnvelope.defaultCode(for: status)
        self.param = param
        self.headers = headers
    }

    public var description: String { "\(status.code) \(message)" }

    public var response: HTTPResponse {
        var headers = self.headers
        headers.replaceOrAdd(name: "Content-Type", value: ErrorEnvelope.contentType)
        return HTTPResponse(status: status, headers: headers,
                            body: ErrorEnvelope.json(message: message, type: type, code: code, param: param))
    }

    /// 415 listing what the route accepts; `HTTPRequest.requireContentType` throws it.
    public static func unsupportedMediaType(_ received: String?, accepted: [String]) -> HTTPError {
        let got = received.map { "'\($0)'" } ?? "no Content-Type"
        return HTTPError(.unsupportedMediaType,
                         message: "Unsupported media type: \(got); expected \(accepted.joined(separator: " or ")).",
                         param: "Content-Type")
    }
}
