/// Parses one complete request head whose lines are known to end in CRLF (the scan checked that),
/// and decides the message framing. Errors are reported in byte order: request line, then fields.
struct HeadParser {
    let bytes: UnsafeRawBufferPointer
    let requestLineEnd: Int
    let end: Int
    let limits: HTTPLimits

    func parse() -> Result<RequestHead, HTTPParseError> {
        let requestLine: RequestLine
        switch parseRequestLine(UnsafeRawBufferPointer(rebasing: bytes[0..<requestLineEnd - 2])) {
        case .failure(let error): return .failure(error)
        case .success(let line): requestLine = line
        }

        var headers = HTTPHeaders()
        var contentLength: Int?
        var contentLengthCount = 0
        var transferCodings: [String] = []
        var sawTransferEncoding = false
        var hostCount = 0
        var connectionClose = false
        var connectionKeepAlive = false
        var expectContinue = false
        var unsupportedExpectation: String?
        let isHTTP11 = requestLine.version.minor >= 1

        var lineStart = requestLineEnd
        while lineStart < end - 2 {
            var lineEnd = lineStart
            while bytes[lineEnd] != CR { lineEnd += 1 }
            let line = UnsafeRawBufferPointer(rebasing: bytes[lineStart..<lineEnd])
            lineStart = lineEnd + 2
            if line[0] == SP || line[0] == HTAB {
                return .failure(HTTPParseError(.badRequest,
                    "A header line starts with whitespace (obs-fold or whitespace before the first field)."))
            }
            let field: RawField
            switch Self.parseRawField(line) {
            case .failure(let error): return .failure(error)
            case .success(let f): field = f
            }
            let name = field.name
            let value = field.value
            if name.equalsLowercase(FieldName.contentLength) {
                contentLengthCount += 1
                if contentLengthCount > 1 {
                    return .failure(HTTPParseError(.badRequest, "More than one Content-Length field."))
                }
                guard let n = Self.parseContentLength(value) else {
                    return .failure(HTTPParseError(.badRequest, "Invalid Content-Length: digits only, within range."))
                }
                contentLength = n
            } else if name.equalsLowercase(FieldName.transferEncoding) {
                sawTransferEncoding = true
                for element in Self.listElements(value) {
                    guard element.allSatisfy(CharacterClass.isToken) else {
                        return .failure(HTTPParseError(.badRequest, "Invalid Transfer-Encoding."))
                    }
                    transferCodings.append(String(decoding: element, as: UTF8.self).lowercased())
                }
            } else if name.equalsLowercase(FieldName.host) {
                hostCount += 1
                if hostCount > 1 {
                    return .failure(HTTPParseError(.badRequest, "More than one Host field."))
                }
                guard Self.isValidHost(Array(value)) else {
                    return .failure(HTTPParseError(.badRequest, "Invalid Host."))
                }
            } else if name.equalsLowercase(FieldName.connection) {
                for element in Self.listElements(value) {
                    if element.equalsLowercase(FieldName.close) { connectionClose = true }
                    if element.equalsLowercase(FieldName.keepAlive) { connectionKeepAlive = true }
                }
            } else if name.equalsLowercase(FieldName.expect) && isHTTP11 {
                if value.equalsLowercase(FieldName.continue100) {
                    expectContinue = true
                } else if unsupportedExpectation == nil {
                    unsupportedExpectation = String(decoding: value, as: UTF8.self)
                }
            }
            headers.add(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self))
        }

        if isHTTP11 && hostCount == 0 {
            return .failure(HTTPParseError(.badRequest, "An HTTP/1.1 request needs a Host field."))
        }

        let framing: BodyFraming
        if sawTransferEncoding {
            if !isHTTP11 {
                return .failure(HTTPParseError(.badRequest, "Transfer-Encoding in an HTTP/1.0 request."))
            }
            if contentLengthCount > 0 {
                return .failure(HTTPParseError(.badRequest, "Both Content-Length and Transfer-Encoding."))
            }
            guard transferCodings.last == "chunked" else {
                return .failure(HTTPParseError(.badRequest, "Transfer-Encoding must end with chunked."))
            }
            if transferCodings.dropLast().contains("chunked") {
                return .failure(HTTPParseError(.badRequest, "chunked is applied more than once."))
            }
            if let other = transferCodings.first(where: { $0 != "chunked" }) {
                return .failure(HTTPParseError(.notImplemented, "Unsupported transfer coding '\(other)'."))
            }
            framing = .chunked
        } else if let contentLength {
            framing = .length(contentLength)
        } else {
            framing = .none
        }

        if let unsupportedExpectation {
            return .failure(HTTPParseError(.expectationFailed, "Unsupported expectation '\(unsupportedExpectation)'."))
        }

        return .success(RequestHead(
            method: requestLine.method, target: requestLine.target, path: requestLine.path,
            query: requestLine.query, version: requestLine.version, headers: headers, framing: framing,
            keepAlive: isHTTP11 ? !connectionClose : (connectionKeepAlive && !connectionClose),
            expectContinue: expectContinue))
    }

    // MARK: Request line

    private struct RequestLine {
        var method: HTTPMethod
        var target: String
        var path: String
        var query: String?
        var version: HTTPVersion
    }

    /// `method SP request-target SP HTTP-version`, single spaces, nothing else.
    private func parseRequestLine(_ line: UnsafeRawBufferPointer) -> Result<RequestLine, HTTPParseError> {
        guard let sp1 = line.firstIndex(of: SP) else {
            return .failure(HTTPParseError(.badRequest, "Malformed request line."))
        }
        let method = UnsafeRawBufferPointer(rebasing: line[0..<sp1])
        guard !method.isEmpty, method.allSatisfy(CharacterClass.isToken) else {
            return .failure(HTTPParseError(.badRequest, "Invalid method."))
        }
        let rest = UnsafeRawBufferPointer(rebasing: line[(sp1 + 1)...])
        guard let sp2 = rest.firstIndex(of: SP) else {
            return .failure(HTTPParseError(.badRequest, "Malformed request line."))
        }
        let target = UnsafeRawBufferPointer(rebasing: rest[0..<sp2])
        let versionBytes = UnsafeRawBufferPointer(rebasing: rest[(sp2 + 1)...])
        if target.count > limits.maxURILength {
            return .failure(HTTPParseError(.uriTooLong, "The request target is longer than \(limits.maxURILength) bytes."))
        }
        guard !target.isEmpty, target.allSatisfy(CharacterClass.isTarget) else {
            return .failure(HTTPParseError(.badRequest, "Invalid request target."))
        }
        // "HTTP/" DIGIT "." DIGIT, case-sensitive, nothing after.
        guard versionBytes.count == 8, versionBytes.starts(with: FieldName.httpSlash),
              versionBytes[6] == UInt8(ascii: "."),
              (0x30...0x39).contains(versionBytes[5]), (0x30...0x39).contains(versionBytes[7]) else {
            return .failure(HTTPParseError(.badRequest, "Invalid HTTP version."))
        }
        let major = Int(versionBytes[5] - 0x30)
        let minor = Int(versionBytes[7] - 0x30)
        guard major == 1 else {
            return .failure(HTTPParseError(.httpVersionNotSupported, "Only HTTP/1.0 and HTTP/1.1 are supported."))
        }
        let methodValue = HTTPMethod(rawValue: String(decoding: method, as: UTF8.self))
        let targetString = String(decoding: target, as: UTF8.self)
        guard let (path, query) = Self.splitTarget(target, method: methodValue) else {
            return .failure(HTTPParseError(.badRequest, "Invalid request target."))
        }
        return .success(RequestLine(method: methodValue, target: targetString, path: path, query: query,
                                    // 1.2+ is answered as 1.1, the highest minor spoken (RFC 9112 §2.3).
                                    version: HTTPVersion(major: 1, minor: min(minor, 1))))
    }

    /// origin-form (`/p?q`), absolute-form (`http://host/p?q`), `*` for OPTIONS, authority for CONNECT.
    /// The path's percent escapes must be well formed.
    private static func splitTarget(_ t: UnsafeRawBufferPointer, method: HTTPMethod) -> (String, String?)? {
        var pathStart = 0
        if t[0] == UInt8(ascii: "/") {
            pathStart = 0
        } else if t.count == 1 && t[0] == UInt8(ascii: "*") {
            return method == .options ? ("*", nil) : nil
        } else if method == .connect {
            return ("", nil)
        } else {
            let schemeLength: Int
            if t.count > 7, t[0..<7].equalsLowercase(FieldName.httpScheme) {
                schemeLength = 7
            } else if t.count > 8, t[0..<8].equalsLowercase(FieldName.httpsScheme) {
                schemeLength = 8
            } else {
                return nil
            }
            var i = schemeLength
            while i < t.count, t[i] != UInt8(ascii: "/"), t[i] != UInt8(ascii: "?") { i += 1 }
            guard i > schemeLength else { return nil }  // empty authority
            pathStart = i
        }
        let queryStart = t[pathStart...].firstIndex(of: UInt8(ascii: "?")) ?? t.count
        guard percentEscapesAreWhole(t[pathStart..<queryStart]) else { return nil }
        let path = pathStart == queryStart ? "/" : String(decoding: t[pathStart..<queryStart], as: UTF8.self)
        let query = queryStart < t.count ? String(decoding: t[(queryStart + 1)...], as: UTF8.self) : nil
        return (path, query)
    }

    // MARK: Fields

    struct RawField {
        var name: UnsafeRawBufferPointer
        var value: UnsafeRawBufferPointer
    }

    /// `token ":" OWS value OWS`; no whitespace before the colon; value bytes are HTAB, SP, VCHAR
    /// or obs-text (no NUL, CR, LF or other controls).
    static func parseRawField(_ line: UnsafeRawBufferPointer) -> Result<RawField, HTTPParseError> {
        var colon = 0
        while colon < line.count, line[colon] != UInt8(ascii: ":") {
            let b = line[colon]
            if b == SP || b == HTAB {
                return .failure(HTTPParseError(.badRequest, "Whitespace between a header field name and the colon."))
            }
            guard CharacterClass.isToken(b) else {
                return .failure(HTTPParseError(.badRequest, "Invalid header field name."))
            }
            colon += 1
        }
        guard colon < line.count, colon > 0 else {
            return .failure(HTTPParseError(.badRequest, "Malformed header field."))
        }
        var start = colon + 1
        var stop = line.count
        while start < stop, line[start] == SP || line[start] == HTAB { start += 1 }
        while stop > start, line[stop - 1] == SP || line[stop - 1] == HTAB { stop -= 1 }
        let value = UnsafeRawBufferPointer(rebasing: line[start..<stop])
        guard value.allSatisfy(CharacterClass.isFieldValue) else {
            return .failure(HTTPParseError(.badRequest, "Invalid byte in a header field value."))
        }
        return .success(RawField(name: UnsafeRawBufferPointer(rebasing: line[0..<colon]), value: value))
    }

    static func parseField(_ line: UnsafeRawBufferPointer) -> Result<HTTPHeaders.Field, HTTPParseError> {
        if line[0] == SP || line[0] == HTAB {
            return .failure(HTTPParseError(.badRequest, "A trailer line starts with whitespace (obs-fold)."))
        }
        return parseRawField(line).map {
            HTTPHeaders.Field(name: String(decoding: $0.name, as: UTF8.self), value: String(decoding: $0.value, as: UTF8.self))
        }
    }

    /// `1*DIGIT` into an Int, refusing signs, spaces, lists and overflow (Swift's `Int("+5")` would accept `+5`).
    static func parseContentLength(_ value: UnsafeRawBufferPointer) -> Int? {
        guard !value.isEmpty else { return nil }
        var n = 0
        for b in value {
            guard (0x30...0x39).contains(b) else { return nil }
            let (times10, o1) = n.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int(b - 0x30))
            if o1 || o2 { return nil }
            n = sum
        }
        return n
    }

    /// Host = uri-host [":" port] (RFC 9110 §7.2, RFC 3986 §3.2.2): a bracketed IP literal, or a
    /// reg-name / IPv4 address, then an optional ":" and digits. An empty Host is allowed.
    static func isValidHost(_ host: [UInt8]) -> Bool {
        let colon = UInt8(ascii: ":")
        let isPort = { (port: ArraySlice<UInt8>) in port.allSatisfy { (0x30...0x39).contains($0) } }
        if host.first == UInt8(ascii: "[") {
            guard let close = host.firstIndex(of: UInt8(ascii: "]")) else { return false }
            let literal = host[1..<close], after = host[(close + 1)...]
            guard !literal.isEmpty, literal.allSatisfy(CharacterClass.isIPLiteral) else { return false }
            return after.isEmpty || (after.first == colon && isPort(after.dropFirst()))
        }
        let colonIndex = host.firstIndex(of: colon) ?? host.endIndex
        let name = host[..<colonIndex]
        guard name.allSatisfy(CharacterClass.isRegName), percentEscapesAreWhole(name) else { return false }
        return colonIndex == host.endIndex || isPort(host[(colonIndex + 1)...])
    }

    /// Every "%" starts a pct-encoded byte: two hex digits follow (RFC 3986 §2.1).
    static func percentEscapesAreWhole<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> Bool where Bytes.Index == Int {
        for i in bytes.indices where bytes[i] == UInt8(ascii: "%") {
            guard i + 2 < bytes.endIndex, PercentDecoding.hexValue(bytes[i + 1]) != nil,
                  PercentDecoding.hexValue(bytes[i + 2]) != nil else { return false }
        }
        return true
    }

    /// Comma-separated list elements with surrounding whitespace removed; empty elements skipped.
    static func listElements(_ value: UnsafeRawBufferPointer) -> [UnsafeRawBufferPointer] {
        var elements: [UnsafeRawBufferPointer] = []
        var start = 0
        for i in 0...value.count where i == value.count || value[i] == UInt8(ascii: ",") {
            var a = start
            var b = i
            while a < b, value[a] == SP || value[a] == HTAB { a += 1 }
            while b > a, value[b - 1] == SP || value[b - 1] == HTAB { b -= 1 }
            if a < b { elements.append(UnsafeRawBufferPointer(rebasing: value[a..<b])) }
            start = i + 1
        }
        return elements
    }
}

/// Lowercase byte strings the parser compares field names and tokens against.
enum FieldName {
    static let contentLength = Array("content-length".utf8)
    static let transferEncoding = Array("transfer-encoding".utf8)
    static let host = Array("host".utf8)
    static let connection = Array("connection".utf8)
    static let expect = Array("expect".utf8)
    static let close = Array("close".utf8)
    static let keepAlive = Array("keep-alive".utf8)
    static let continue100 = Array("100-continue".utf8)
    static let httpSlash = Array("HTTP/".utf8)
    static let httpScheme = Array("http://".utf8)
    static let httpsScheme = Array("https://".utf8)
}

extension Collection where Element == UInt8 {
    /// ASCII case-insensitive comparison with an already lowercase byte string.
    func equalsLowercase(_ lower: [UInt8]) -> Bool {
        guard count == lower.count else { return false }
        return zip(self, lower).allSatisfy { $0.asciiLowercased == $1 }
    }
}

/// Byte classes from RFC 9110 §5.6.2 (token), §5.5 (field values) and RFC 3986 (targets).
enum CharacterClass {
    private static let tokenBit: UInt8 = 1
    private static let valueBit: UInt8 = 2
    private static let targetBit: UInt8 = 4
    private static let regNameBit: UInt8 = 8
    private static let ipLiteralBit: UInt8 = 16

    private static let table: [UInt8] = (0..<256).map { i in
        let b = UInt8(i)
        var flags: UInt8 = 0
        let isAlnum = (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b)
        if isAlnum || Array("!#$%&'*+-.^_`|~".utf8).contains(b) { flags |= tokenBit }
        if b == HTAB || b == SP || (0x21...0x7E).contains(b) || b >= 0x80 { flags |= valueBit }
        // Visible ASCII except '#' (a fragment is never sent); no spaces, controls or non-ASCII.
        if (0x21...0x7E).contains(b) && b != UInt8(ascii: "#") { flags |= targetBit }
        // reg-name and IPv4: unreserved, pct-encoded, sub-delims. Inside an IP literal's brackets
        // (IPv6, IPvFuture): unreserved, sub-delims and ":".
        if isAlnum || Array("-._~%!$&'()*+,;=".utf8).contains(b) { flags |= regNameBit }
        if isAlnum || Array("-._~!$&'()*+,;=:".utf8).contains(b) { flags |= ipLiteralBit }
        return flags
    }

    @inline(__always) static func isToken(_ b: UInt8) -> Bool { table[Int(b)] & tokenBit != 0 }
    @inline(__always) static func isFieldValue(_ b: UInt8) -> Bool { table[Int(b)] & valueBit != 0 }
    @inline(__always) static func isTarget(_ b: UInt8) -> Bool { table[Int(b)] & targetBit != 0 }
    @inline(__always) static func isRegName(_ b: UInt8) -> Bool { table[Int(b)] & regNameBit != 0 }
    @inline(__always) static func isIPLiteral(_ b: UInt8) -> Bool { table[Int(b)] & ipLiteralBit != 0 }
}
