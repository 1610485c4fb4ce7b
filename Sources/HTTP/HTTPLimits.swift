/// Every bound the server enforces, with defaults suited to an image-embedding API. All are
/// settable; tests shrink the timeouts to fractions of a second.
public struct HTTPLimits: Sendable {
    /// Longest request-target (414 beyond). The request line may be 64 bytes longer (method, version).
    public var maxURILength = 8 * 1024
    /// Bytes of the header section after the request line, CRLFs included (431 beyond). Also bounds
    /// the trailer section of a chunked body.
    public var maxHeaderBytes = 16 * 1024
    /// Header fields per request, and trailer fields per body (431 beyond).
    public var maxHeaderCount = 100
    /// Decoded body bytes (413 beyond), decided from Content-Length before the body is read, or
    /// as soon as a chunked body's running total passes it. A route may set its own.
    public var maxBodyBytes = 16 * 1024 * 1024
    /// Open connections. Connections beyond it are accepted, answered 503 with `Retry-After` and
    /// `Connection: close`, and closed (see `HTTPServer`).
    public var maxConnections = 1024
    /// Requests of one connection that may wait for their handlers at once (pipelining). Beyond it
    /// the connection stops reading until responses go out.
    public var maxPipelinedRequests = 16

    /// From the first byte of a request (or the accept, for the first one) to the end of its head.
    /// Guards against slowloris; 408 and close.
    public var headerReadTimeout: Duration = .seconds(10)
    /// From the end of the head to the end of the body. Guards against slow uploads; 408 and close.
    public var bodyReadTimeout: Duration = .seconds(60)
    /// A keep-alive connection with nothing in flight is closed after this long.
    public var idleTimeout: Duration = .seconds(30)
    /// A response that makes no write progress for this long (slow reader) aborts the connection.
    public var writeTimeout: Duration = .seconds(30)
    /// After a final response on a closing connection: how long to keep reading and discarding, so
    /// that unread request bytes don't turn the close into a reset that destroys the response.
    public var lingerTimeout: Duration = .seconds(2)

    public init() {}
}

extension Duration {
    var nanoseconds: UInt64 {
        let (s, atto) = components
        return UInt64(max(0, s)) &* 1_000_000_000 &+ UInt64(max(0, atto) / 1_000_000_000)
    }
}
