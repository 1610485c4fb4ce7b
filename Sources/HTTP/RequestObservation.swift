/// One finished request, for metrics. Handed to `HTTPServer.Configuration.observer` on an I/O
/// queue when the response is queued to the socket in order: keep the observer cheap and
/// non-blocking (increment counters, observe a histogram).
public struct RequestObservation: Sendable {
    /// Nil when the request line could not be parsed (a protocol error).
    public var method: HTTPMethod?
    /// The matched route's pattern (`/v1/models/{id}`), or nil for 404s and protocol errors, so
    /// metric labels stay low-cardinality.
    public var route: String?
    public var status: Int
    /// From the first byte of the request to its response being queued to the socket (this
    /// includes waiting behind earlier pipelined responses).
    public var duration: Duration
    /// Request bytes on the wire: head, body and chunk framing.
    public var bytesIn: Int
    /// Response bytes: status line, headers and body.
    public var bytesOut: Int
    public var requestID: String
}

/// Connection counters, e.g. for gauges read at scrape time.
public struct ConnectionStats: Sendable, Equatable {
    /// Connections open now (those being refused over the limit are not counted).
    public var open: Int
    /// Connections accepted since start, refused ones included.
    public var accepted: Int
    /// Connections answered 503 because `maxConnections` were open.
    public var refused: Int
}
