import Foundation

/// Properties the request parser must keep for *any* input; the fuzzer (`http-parser-fuzz`) and
/// the randomized XCTest run them on arbitrary bytes:
/// 1. Feeding the bytes at once, one at a time, or in uneven pieces gives the same messages, the
///    same error and the same consumed count.
/// 2. Every accepted message has consistent framing: `length(n)` ⇔ one Content-Length of n and no
///    Transfer-Encoding, with exactly n body bytes; `chunked` ⇔ HTTP/1.1, Transfer-Encoding ending in
///    chunked and no Content-Length; `none` ⇔ neither. HTTP/1.1 has exactly one Host; names are
///    tokens; values hold no CR, LF or NUL; bodies respect the limit.
/// 3. An accepted message written out again canonically parses to the same message.
public enum ParserSelfCheck {
    /// Small limits, so random inputs reach them.
    public static let limits: HTTPLimits = {
        var limits = HTTPLimits()
        limits.maxURILength = 256
        limits.maxHeaderBytes = 1024
        limits.maxHeaderCount = 16
        limits.maxBodyBytes = 4096
        return limits
    }()

    public struct Message: Equatable, Sendable {
        public var head: RequestHead
        public var body: [UInt8]
        public var trailers: HTTPHeaders
    }

    /// What feeding some bytes produced.
    public struct Outcome: Equatable, Sendable {
        public var messages: [Message] = []
        /// A message whose head was parsed but whose body had not ended.
        public var partial: Message?
        public var error: HTTPParseError?
        public var consumed = 0
    }

    /// Feeds `chunks` in order, draining events after each, as a connection does.
    public static func feed<C: Collection>(_ chunks: C, limits: HTTPLimits = limits) -> Outcome where C.Element == [UInt8] {
        var parser = RequestParser(limits: limits)
        var outcome = Outcome()
        var pending: [UInt8] = []
        for chunk in chunks {
            pending.append(contentsOf: chunk)
            while true {
                let (event, consumed) = pending.withUnsafeBytes { parser.parse($0) }
                switch event {
                case .needMore:
                    break
                case .head(let head):
                    outcome.partial = Message(head: head, body: [], trailers: [:])
                case .body(let range):
                    outcome.partial?.body.append(contentsOf: pending[range])
                case .end(let trailers):
                    if var message = outcome.partial {
                        message.trailers = trailers
                        outcome.messages.append(message)
                    }
                    outcome.partial = nil
                case .error(let error):
                    outcome.error = error
                }
                pending.removeFirst(consumed)
                outcome.consumed += consumed
                if case .needMore = event { break }
                if case .error = event { return outcome }
            }
        }
        return outcome
    }

    /// Nil when every property holds, else what broke.
    public static func violation(in bytes: [UInt8], splitSeed: UInt64 = 0) -> String? {
        let whole = feed([bytes])
        let single = feed(bytes.map { [$0] })
        if whole != single { return "byte-by-byte differs from all-at-once:\n\(whole)\nvs\n\(single)" }
        var rng = SplitMix64(seed: splitSeed ^ UInt64(bytes.count))
        var pieces: [[UInt8]] = []
        var i = 0
        while i < bytes.count {
            let n = Int(rng.next() % 17) + 1
            pieces.append(Array(bytes[i..<min(bytes.count, i + n)]))
            i += n
        }
        let split = feed(pieces)
        if whole != split { return "uneven pieces differ from all-at-once:\n\(whole)\nvs\n\(split)" }
        if whole.consumed > bytes.count { return "consumed \(whole.consumed) of \(bytes.count) bytes" }

        for message in whole.messages {
            if let problem = framingProblem(message) { return "\(problem) in \(message.head)" }
            // Roomier limits: re-encoding can lengthen fields (obs-text becomes U+FFFD) and adds a Content-Length.
            var roomy = limits
            roomy.maxHeaderBytes *= 4
            roomy.maxHeaderCount += 1
            let again = feed([canonicalBytes(message)], limits: roomy)
            guard again.error == nil, again.messages.count == 1, let back = again.messages.first,
                  back.body == message.body, back.head.method == message.head.method,
                  back.head.path == message.head.path, back.head.query == message.head.query,
                  back.head.version == message.head.version, back.head.keepAlive == message.head.keepAlive
            else { return "re-serialized message does not parse back: \(message.head) -> \(again)" }
        }
        return nil
    }

    static func framingProblem(_ m: Message) -> String? {
        let h = m.head.headers
        let lengths = h.values(for: "Content-Length")
        let encodings = h.values(for: "Transfer-Encoding")
        switch m.head.framing {
        case .none:
            if !lengths.isEmpty || !encodings.isEmpty { return "framing none with CL/TE" }
            if !m.body.isEmpty { return "body without framing" }
        case .length(let n):
            if lengths.count != 1 || !lengths[0].utf8.allSatisfy({ (0x30...0x39).contains($0) }) || Int(lengths[0]) != n {
                return "length \(n) but Content-Length \(lengths)"
            }
            if !encodings.isEmpty { return "length framing with Transfer-Encoding" }
            if m.body.count != n { return "body of \(m.body.count) bytes for Content-Length \(n)" }
        case .chunked:
            if !lengths.isEmpty { return "chunked with Content-Length" }
            if m.head.version != .http1_1 { return "chunked in HTTP/1.0" }
            let last = encodings.joined(separator: ",").split(separator: ",").last?
                .trimmingCharacters(in: [" ", "\t"]).lowercased()
            if last != "chunked" { return "chunked framing but Transfer-Encoding \(encodings)" }
        }
        if m.body.count > limits.maxBodyBytes { return "body over the limit" }
        if m.head.version == .http1_1 && h.values(for: "Host").count != 1 { return "HTTP/1.1 without exactly one Host" }
        for field in h.fields + m.trailers.fields {
            if field.name.isEmpty || !field.name.utf8.allSatisfy(CharacterClass.isToken) { return "bad field name" }
            if field.value.utf8.contains(where: { $0 == CR || $0 == LF || $0 == 0 }) { return "CR/LF/NUL in a value" }
        }
        return nil
    }

    /// The message as a well-behaved client would send it (Content-Length framing).
    static func canonicalBytes(_ m: Message) -> [UInt8] {
        var text = "\(m.head.method.rawValue) \(m.head.target) HTTP/1.\(m.head.version.minor)\r\n"
        for field in m.head.headers.fields {
            let name = field.name.lowercased()
            if name == "content-length" || name == "transfer-encoding" { continue }
            text += "\(field.name): \(field.value)\r\n"
        }
        if !m.body.isEmpty || m.head.framing != .none { text += "Content-Length: \(m.body.count)\r\n" }
        text += "\r\n"
        return Array(text.utf8) + m.body
    }
}
