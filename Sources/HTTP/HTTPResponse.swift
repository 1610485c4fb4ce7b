import Foundation

/// What a handler answers. The server adds `Content-Length`, `Date`, `Server`, `X-Request-Id` and
/// `Connection` itself and drops any such fields set here, so framing is always consistent.
public struct HTTPResponse: Sendable {
    public var status: HTTPStatus
    public var headers: HTTPHeaders
    public var body: Data

    public init(status: HTTPStatus = .ok, headers: HTTPHeaders = [:], body: Data = Data()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func text(_ text: String, status: HTTPStatus = .ok,
                            contentType: String = "text/plain; charset=utf-8") -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": contentType], body: Data(text.utf8))
    }

    /// Already-encoded JSON.
    public static func json(_ data: Data, status: HTTPStatus = .ok) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: data)
    }

    public static func json<T: Encodable>(_ value: T, status: HTTPStatus = .ok,
                                          encoder: JSONEncoder = JSONEncoder()) throws -> HTTPResponse {
        json(try encoder.encode(value), status: status)
    }

    /// A response in the error envelope (see `ErrorEnvelope`).
    public static func error(_ status: HTTPStatus, message: String, type: String? = nil, code: String? = nil,
                             param: String? = nil, headers: HTTPHeaders = [:]) -> HTTPResponse {
        HTTPError(status, message: message, type: type, code: code, param: param, headers: headers).response
    }
}
