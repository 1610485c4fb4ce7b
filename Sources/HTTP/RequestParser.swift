/// How the body of a request is delimited.
public enum BodyFraming: Sendable, Equatable {
    case none
    case length(Int)
    case chunked
}

/// A parsed request head with its framing already decided.
public struct RequestHead: Sendable, Equatable {
    public var method: HTTPMethod
    public var target: String
    public var path: String
    public var query: String?
    public var version: HTTPVersion
    public var headers: HTTPHeaders
    public var framing: BodyFraming
    /// False for `Connection: close`, and for HTTP/1.0 without `Connection: keep-alive`.
    public var keepAlive: Bool
    /// `Expect: 100-continue` on an HTTP/1.1 request (ignored for 1.0, RFC 9110 §10.1.1).
    public var expectContinue: Bool
}

/// A request the parser refuses. The connection answers `status` and closes: after a framing
/// error nothing later on the connection can be trusted.
public struct HTTPParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: HTTPStatus
    public var message: String

    public init(_ status: HTTPStatus, _ message: String) {
        self.status = status
        self.message = message
    }

    public var description: String { "\(status.code) \(message)" }

    /// The error as a response in the envelope.
    public var response: HTTPResponse { .error(status, message: message) }
}

/// An incremental HTTP/1.1 request parser over bytes (RFC 9112), strict where leniency enables
/// smuggling.
///
/// Feed it the unconsumed bytes; it returns one event and how many bytes it consumed. Call again
/// (with the rest plus whatever arrived) until it says `.needMore`. Every decision depends only on
/// bytes already seen, in order, so feeding a message byte by byte gives the same events as feeding
/// it at once (the parser tests and the fuzzer check this).
///
/// Choices, stricter than the RFC's MAYs:
/// - Lines end with CRLF only. A bare LF or bare CR anywhere in the head, a chunk line or the
///   trailers is a 400 (RFC 9112 §2.2 allows rejecting; lenient LF handling is a smuggling vector).
/// - Empty lines before the request line are skipped (§2.2 SHOULD).
/// - obs-fold and whitespace before the first field or before a colon: 400.
/// - Content-Length: digits only, one field only (a repeat, even identical, or a list is a 400).
/// - Transfer-Encoding with Content-Length, in HTTP/1.0, or not ending in a single `chunked`: 400;
///   a coding other than `chunked` before it: 501.
/// - HTTP/1.1 without exactly one Host, or a Host that is not `uri-host[:port]`: 400.
///   Major version other than 1: 505.
public struct RequestParser: Sendable {
    public enum Event: Sendable, Equatable {
        /// Nothing more can be decided without more bytes (some may have been consumed).
        case needMore
        case head(RequestHead)
        /// Body bytes at these indices of the buffer just passed (already counted as consumed).
        case body(Range<Int>)
        /// The message is complete; the parser is ready for the next request.
        case end(trailers: HTTPHeaders)
        /// The message is invalid; the parser stays failed.
        case error(HTTPParseError)
    }

    public let limits: HTTPLimits
    /// Body limit for the current message. The connection lowers or raises it per route right
    /// after `.head`; it resets to `limits.maxBodyBytes` for each message.
    public var bodyLimit: Int
    /// Added to the 413 of this request (the route's `tooLargeAdvice`); reset with the limit.
    public var bodyLimitAdvice: String?

    static let maxChunkLineBytes = 4096

    private enum State: Sendable {
        case head
        case afterHead(BodyFraming)
        case body(remaining: Int)
        case chunkLine
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case complete
        case failed(HTTPParseError)
    }

    /// Where the head scan stopped; positions are relative to the start of the pending head.
    private struct HeadScan: Sendable {
        var pos = 0
        var lineStart = 0
        var requestLineEnd = 0  // index just past the request line's CRLF; 0 until seen
        var headerLines = 0
    }

    private var state = State.head
    private var scan = HeadScan()
    private var bodyReceived = 0
    private var trailerBytes = 0
    private var trailers = HTTPHeaders()

    public init(limits: HTTPLimits = HTTPLimits()) {
        self.limits = limits
        self.bodyLimit = limits.maxBodyBytes
    }

    /// True between messages, before any byte of the next head was examined.
    public var isIdle: Bool {
        if case .head = state { return scan.pos == 0 }
        return false
    }

    /// True while a message's head has been seen but its body is still being read.
    public var isReadingBody: Bool {
        switch state {
        case .afterHead, .body, .chunkLine, .chunkData, .chunkDataEnd, .trailers: true
        default: false
        }
    }

    public mutating func parse(_ bytes: UnsafeRawBufferPointer) -> (event: Event, consumed: Int) {
        var offset = 0
        while true {
            switch state {
            case .failed(let error):
                return (.error(error), offset)

            case .head:
                if scan.pos == 0 {
                    // Skip empty lines before the request line.
                    while offset + 1 < bytes.count, bytes[offset] == CR, bytes[offset + 1] == LF { offset += 2 }
                    if offset == bytes.count || (offset + 1 == bytes.count && bytes[offset] == CR) {
                        return (.needMore, offset)
                    }
                }
                let pending = UnsafeRawBufferPointer(rebasing: bytes[offset...])
                switch scanHead(pending) {
                case .incomplete:
                    return (.needMore, offset)
                case .failed(let error):
                    return fail(error, offset)
                case .complete(let end):
                    switch HeadParser(bytes: pending, requestLineEnd: scan.requestLineEnd, end: end,
                                      limits: limits).parse() {
                    case .failure(let error):
                        return fail(error, offset)
                    case .success(let head):
                        state = .afterHead(head.framing)
                        scan = HeadScan()
                        return (.head(head), offset + end)
                    }
                }

            case .afterHead(let framing):
                switch framing {
                case .none:
                    state = .complete
                case .length(let n):
                    if n > bodyLimit {
                        return fail(Self.tooLarge(bodyLimit, advice: bodyLimitAdvice), offset)
                    }
                    state = n == 0 ? .complete : .body(remaining: n)
                case .chunked:
                    state = .chunkLine
                }

            case .body(let remaining):
                guard offset < bytes.count else { return (.needMore, offset) }
                let n = min(remaining, bytes.count - offset)
                state = n == remaining ? .complete : .body(remaining: remaining - n)
                bodyReceived += n
                return (.body(offset..<offset + n), offset + n)

            case .chunkLine:
                guard let line = findLine(bytes, from: offset, maxLength: Self.maxChunkLineBytes) else {
                    return (.needMore, offset)
                }
                switch line {
                case .failure(let error):
                    return fail(error, offset)
                case .success(let lf):
                    switch parseChunkSize(UnsafeRawBufferPointer(rebasing: bytes[offset..<lf - 1])) {
                    case .failure(let error):
                        return fail(error, offset)
                    case .success(let size):
                        offset = lf + 1
                        if size == 0 {
                            state = .trailers
                        } else if size > bodyLimit - bodyReceived {
                            return fail(Self.tooLarge(bodyLimit, advice: bodyLimitAdvice), offset)
                        } else {
                            state = .chunkData(remaining: size)
                        }
                    }
                }

            case .chunkData(let remaining):
                guard offset < bytes.count else { return (.needMore, offset) }
                let n = min(remaining, bytes.count - offset)
                state = n == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - n)
                bodyReceived += n
                return (.body(offset..<offset + n), offset + n)

            case .chunkDataEnd:
                let available = bytes.count - offset
                if available >= 1 && bytes[offset] != CR || available >= 2 && bytes[offset + 1] != LF {
                    return fail(HTTPParseError(.badRequest, "Chunk data is not followed by CRLF."), offset)
                }
                guard available >= 2 else { return (.needMore, offset) }
                offset += 2
                state = .chunkLine

            case .trailers:
                let budget = limits.maxHeaderBytes - trailerBytes
                guard let line = findLine(bytes, from: offset, maxLength: budget,
                                          tooLong: HTTPParseError(.headerFieldsTooLarge,
                                                                  "The trailer section is larger than \(limits.maxHeaderBytes) bytes."))
                else { return (.needMore, offset) }
                switch line {
                case .failure(let error):
                    return fail(error, offset)
                case .success(let lf):
                    trailerBytes += lf + 1 - offset
                    let content = UnsafeRawBufferPointer(rebasing: bytes[offset..<lf - 1])
                    offset = lf + 1
                    if content.isEmpty {
                        state = .complete
                        continue
                    }
                    if trailers.count == limits.maxHeaderCount {
                        return fail(HTTPParseError(.headerFieldsTooLarge,
                                                   "More than \(limits.maxHeaderCount) trailer fields."), offset)
                    }
                    switch HeadParser.parseField(content) {
                    case .failure(let error):
                        return fail(error, offset)
                    case .success(let field):
                        trailers.add(name: field.name, value: field.value)
                    }
                }

            case .complete:
                let done = trailers
                reset()
                return (.end(trailers: done), offset)
            }
        }
    }

    private mutating func reset() {
        state = .head
        scan = HeadScan()
        bodyReceived = 0
        trailerBytes = 0
        trailers = HTTPHeaders()
        bodyLimit = limits.maxBodyBytes
        bodyLimitAdvice = nil
    }

    private mutating func fail(_ error: HTTPParseError, _ offset: Int) -> (event: Event, consumed: Int) {
        state = .failed(error)
        return (.error(error), offset)
    }

    static func tooLarge(_ limit: Int, advice: String? = nil) -> HTTPParseError {
        HTTPParseError(.contentTooLarge, "The request body is larger than the limit of \(limit) bytes." + (advice.map { " " + $0 } ?? ""))
    }

    // MARK: Head scan

    private enum ScanResult {
        case incomplete
        case complete(end: Int)
        case failed(HTTPParseError)
    }

    /// Walks the pending head byte by byte from where it last stopped: checks line endings and the
    /// size limits in byte order, and finds the empty line that ends the head.
    private mutating func scanHead(_ p: UnsafeRawBufferPointer) -> ScanResult {
        var s = scan
        defer { scan = s }
        let maxRequestLine = limits.maxURILength + 64
        let maxHeaderBytes = limits.maxHeaderBytes
        let count = p.count
        while s.pos < count {
            let b = p[s.pos]
            if b == CR {
                guard s.pos + 1 < count else { return .incomplete }
                guard p[s.pos + 1] == LF else { return .failed(HTTPParseError(.badRequest, "Bare CR in the request head.")) }
                let next = s.pos + 2
                if s.requestLineEnd == 0 {
                    s.requestLineEnd = next
                } else {
                    if next - s.requestLineEnd > maxHeaderBytes {
                        return .failed(Self.headerTooLarge(maxHeaderBytes))
                    }
                    if s.pos == s.lineStart { return .complete(end: next) }
                    s.headerLines += 1
                    if s.headerLines > limits.maxHeaderCount {
                        return .failed(HTTPParseError(.headerFieldsTooLarge, "More than \(limits.maxHeaderCount) header fields."))
                    }
                }
                s.lineStart = next
                s.pos = next
                continue
            }
            if b == LF {
                return .failed(HTTPParseError(.badRequest, "Bare LF in the request head; lines must end with CRLF."))
            }
            if s.requestLineEnd == 0 {
                if s.pos - s.lineStart + 1 > maxRequestLine {
                    return .failed(HTTPParseError(.uriTooLong, "The request line is longer than \(maxRequestLine) bytes."))
                }
            } else if s.pos + 1 - s.requestLineEnd > maxHeaderBytes {
                return .failed(Self.headerTooLarge(maxHeaderBytes))
            }
            s.pos += 1
        }
        return .incomplete
    }

    static func headerTooLarge(_ limit: Int) -> HTTPParseError {
        HTTPParseError(.headerFieldsTooLarge, "The header section is larger than \(limit) bytes.")
    }

    // MARK: Chunk lines

    /// Index of the LF ending the line that starts at `from`, if the line is complete.
    /// Fails for a bare LF, or when the line (LF included) would exceed `maxLength`.
    private func findLine(_ bytes: UnsafeRawBufferPointer, from: Int, maxLength: Int,
                          tooLong: HTTPParseError = HTTPParseError(.badRequest, "A chunk line is longer than \(RequestParser.maxChunkLineBytes) bytes."))
        -> Result<Int, HTTPParseError>? {
        let available = bytes.count - from
        let window = min(available, maxLength)
        var i = from
        while i < from + window {
            if bytes[i] == LF {
                if i == from || bytes[i - 1] != CR {
                    return .failure(HTTPParseError(.badRequest, "Bare LF in a chunk line or trailer; lines must end with CRLF."))
                }
                return .success(i)
            }
            i += 1
        }
        return available >= maxLength ? .failure(tooLong) : nil
    }

    /// `1*HEXDIG [ BWS ";" chunk-ext ]`; extension text is checked for control bytes and ignored.
    private func parseChunkSize(_ line: UnsafeRawBufferPointer) -> Result<Int, HTTPParseError> {
        var size = 0
        var i = 0
        while i < line.count, let digit = PercentDecoding.hexValue(line[i]) {
            guard size <= (Int.max - 15) >> 4 else {
                return .failure(HTTPParseError(.badRequest, "The chunk size overflows."))
            }
            size = size << 4 | Int(digit)
            i += 1
        }
        guard i > 0 else { return .failure(HTTPParseError(.badRequest, "Invalid chunk size.")) }
        if i < line.count {
            while i < line.count, line[i] == SP || line[i] == HTAB { i += 1 }
            guard i < line.count, line[i] == UInt8(ascii: ";") else {
                return .failure(HTTPParseError(.badRequest, "Invalid chunk size."))
            }
            while i < line.count {
                guard CharacterClass.isFieldValue(line[i]) else {
                    return .failure(HTTPParseError(.badRequest, "Invalid byte in a chunk extension."))
                }
                i += 1
            }
        }
        return .success(size)
    }
}

let CR: UInt8 = 0x0D
let LF: UInt8 = 0x0A
let SP: UInt8 = 0x20
let HTAB: UInt8 = 0x09
