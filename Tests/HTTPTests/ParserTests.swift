@testable import HTTP
import XCTest

/// The request parser without sockets: bytes in, messages or a status out.
final class ParserTests: XCTestCase {
    private func parse(_ text: String, limits: HTTPLimits = ParserSelfCheck.limits) -> ParserSelfCheck.Outcome {
        let bytes = Array(text.utf8)
        let whole = ParserSelfCheck.feed([bytes], limits: limits)
        // Every case also checks incremental feeding.
        XCTAssertEqual(whole, ParserSelfCheck.feed(bytes.map { [$0] }, limits: limits), "byte-by-byte differs for \(text.debugDescription)")
        return whole
    }

    private func assertStatus(_ text: String, _ status: Int, limits: HTTPLimits = ParserSelfCheck.limits,
                              file: StaticString = #filePath, line: UInt = #line) {
        let outcome = parse(text, limits: limits)
        XCTAssertEqual(outcome.error?.status.code, status, "\(text.debugDescription): \(outcome)", file: file, line: line)
        XCTAssertTrue(outcome.messages.isEmpty, file: file, line: line)
    }

    private func single(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> ParserSelfCheck.Message? {
        let outcome = parse(text)
        XCTAssertNil(outcome.error, "\(outcome.error!)", file: file, line: line)
        XCTAssertEqual(outcome.messages.count, 1, file: file, line: line)
        XCTAssertNil(outcome.partial, file: file, line: line)
        return outcome.messages.first
    }

    // MARK: Accepted requests

    func testSimpleGet() throws {
        let m = try XCTUnwrap(single("GET /v1/models?limit=2&name=a%20b HTTP/1.1\r\nHost: x\r\nACCEPT:  text/plain \r\n\r\n"))
        XCTAssertEqual(m.head.method, .get)
        XCTAssertEqual(m.head.path, "/v1/models")
        XCTAssertEqual(m.head.query, "limit=2&name=a%20b")
        XCTAssertEqual(m.head.version, .http1_1)
        XCTAssertEqual(m.head.framing, .none)
        XCTAssertTrue(m.head.keepAlive)
        XCTAssertEqual(m.head.headers["accept"], "text/plain", "names are case-insensitive, OWS trimmed")
        let request = HTTPRequest(method: .get, target: m.head.target)
        XCTAssertEqual(request.queryItems, [QueryItem(name: "limit", value: "2"), QueryItem(name: "name", value: "a b")])
    }

    func testContentLengthBody() throws {
        let m = try XCTUnwrap(single("POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"))
        XCTAssertEqual(m.head.framing, .length(5))
        XCTAssertEqual(m.body, Array("hello".utf8))
    }

    func testChunkedBodyWithExtensionsAndTrailers() throws {
        let m = try XCTUnwrap(single(
            "POST /e HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n"
            + "5;a=b;c=\"d e\"\r\nhello\r\nA ; x\r\n0123456789\r\n0\r\nChecksum: 42\r\nX-More: y\r\n\r\n"))
        XCTAssertEqual(m.head.framing, .chunked)
        XCTAssertEqual(String(decoding: m.body, as: UTF8.self), "hello0123456789")
        XCTAssertEqual(m.trailers["checksum"], "42")
        XCTAssertEqual(m.trailers["X-More"], "y")
    }

    func testPipelinedMessagesDoNotOverRead() {
        let outcome = parse("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                            + "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
                            + "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n"
                            + "GET /partial HT")
        XCTAssertNil(outcome.error)
        XCTAssertEqual(outcome.messages.map(\.head.path), ["/a", "/b", "/c"])
        XCTAssertEqual(outcome.messages.map { String(decoding: $0.body, as: UTF8.self) }, ["abc", "", "z"])
        XCTAssertNil(outcome.partial)
        XCTAssertEqual(outcome.consumed, Array(("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            + "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
            + "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n").utf8).count,
            "the partial head stays unconsumed")
    }

    func testTargetsForms() throws {
        let absolute = try XCTUnwrap(single("GET HTTP://example.com:80/p/q?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"))
        XCTAssertEqual(absolute.head.path, "/p/q")
        XCTAssertEqual(absolute.head.query, "x=1")
        let bare = try XCTUnwrap(single("GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n"))
        XCTAssertEqual(bare.head.path, "/")
        let asterisk = try XCTUnwrap(single("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"))
        XCTAssertEqual(asterisk.head.path, "*")
        assertStatus("GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        assertStatus("GET example.com/x HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        assertStatus("GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        assertStatus("GET /a%4?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", 400)  // an escape cut short by the query
        assertStatus("GET /a% HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        XCTAssertNil(parse("GET /a%41?x=%zz HTTP/1.1\r\nHost: x\r\n\r\n").error, "only the path's escapes are checked here")
        assertStatus("GET /a#frag HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        assertStatus("GET /ä HTTP/1.1\r\nHost: x\r\n\r\n", 400)
    }

    func testVersionsAndPersistence() throws {
        let http10 = try XCTUnwrap(single("GET / HTTP/1.0\r\n\r\n"))
        XCTAssertFalse(http10.head.keepAlive, "HTTP/1.0 closes by default")
        let http10KeepAlive = try XCTUnwrap(single("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"))
        XCTAssertTrue(http10KeepAlive.head.keepAlive)
        let close = try XCTUnwrap(single("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n"))
        XCTAssertFalse(close.head.keepAlive)
        let future = try XCTUnwrap(single("GET / HTTP/1.7\r\nHost: x\r\n\r\n"))
        XCTAssertEqual(future.head.version, .http1_1, "a higher 1.x minor is answered as 1.1")
        assertStatus("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505)
        assertStatus("GET / HTTP/0.9\r\nHost: x\r\n\r\n", 505)
        assertStatus("GET / http/1.1\r\nHost: x\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.10\r\nHost: x\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400)
        assertStatus("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        assertStatus("GET /\r\nHost: x\r\n\r\n", 400)
        assertStatus("G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400)
    }

    func testExpectContinue() throws {
        let m = try XCTUnwrap(single("PUT /u HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nz"))
        XCTAssertTrue(m.head.expectContinue)
        let old = try XCTUnwrap(single("PUT /u HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz"))
        XCTAssertFalse(old.head.expectContinue, "ignored for HTTP/1.0")
        assertStatus("PUT /u HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\nz", 417)
    }

    func testLeadingEmptyLinesAreSkipped() throws {
        let m = try XCTUnwrap(single("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        XCTAssertEqual(m.head.path, "/")
    }

    // MARK: Smuggling defences

    func testContentLengthWithTransferEncoding() {
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400)
    }

    func testDuplicateOrConflictingContentLength() {
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400)
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400)
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello", 400)
    }

    func testInvalidContentLength() {
        for value in ["+5", "-5", "-0", "0x5", "5 5", "1_0", "5.0", "", "99999999999999999999", "١"] {
            assertStatus("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \(value)\r\n\r\nhello", 400)
        }
        XCTAssertNotNil(single("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 005\r\n\r\nhello"), "leading zeros are digits")
    }

    func testTransferEncodingRules() {
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501)
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501)
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400)
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", 400)
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400)
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\r\n", 400)
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", 400)
        assertStatus("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)
    }

    func testHostRules() {
        assertStatus("GET / HTTP/1.1\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\nHost: exa mple.com\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 400)
        // Right characters, wrong shape: not uri-host[:port].
        for host in ["a]:[b", ":::", "a:b", "a:80:81", "[::1", "[::1]x", "[::1]:8a", "[]", "a[b]", "[a/b]", "%", "a%4", "a%zz"] {
            assertStatus("GET / HTTP/1.1\r\nHost: \(host)\r\n\r\n", 400)
        }
        for host in ["", "example.com:8080", "[::1]:80", "[::1]", "[v1.fe]:8", "example.com:", "127.0.0.1", "xn--bcher-kva.example", "a%20b"] {
            XCTAssertNil(parse("GET / HTTP/1.1\r\nHost: \(host)\r\n\r\n").error, host)
        }
    }

    func testLineAndFieldSyntax() {
        assertStatus("GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n continued\r\n\r\n", 400)  // obs-fold
        assertStatus("GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\tcontinued\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400)  // whitespace before the first field
        assertStatus("GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400)  // whitespace before the colon
        assertStatus("GET / HTTP/1.1\r\nHost: x\r\nNo-Colon\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\nHost: x\r\n: empty-name\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\nHost: x\r\nX(A): 1\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\u{0}b\r\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\u{7F}b\r\n\r\n", 400)
    }

    /// Documented choice: lines end with CRLF only; bare LF and bare CR are 400.
    func testBareLineEndsAreRejected() {
        assertStatus("GET / HTTP/1.1\nHost: x\n\n", 400)
        assertStatus("GET / HTTP/1.1\r\nHost: x\n\r\n", 400)
        assertStatus("GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", 400)
        assertStatus("\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400)
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\nz\r\n0\r\n\r\n", 400)
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\n0\r\n\r\n", 400)
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: b\n\r\n", 400)
    }

    func testChunkSyntax() {
        let head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        assertStatus(head + "g\r\n", 400)
        assertStatus(head + "\r\n", 400)
        assertStatus(head + "+1\r\nz\r\n0\r\n\r\n", 400)
        assertStatus(head + "1 \r\nz\r\n0\r\n\r\n", 400)
        assertStatus(head + "1;a\u{1}\r\nz\r\n0\r\n\r\n", 400)
        assertStatus(head + "1\r\nzz\r\n0\r\n\r\n", 400)  // data longer than the size
        assertStatus(head + "ffffffffffffffffffff\r\n", 400)  // overflow
        assertStatus(head + String(repeating: "0", count: 5000) + "1\r\n", 400)  // line too long
        assertStatus(head + "0\r\n X: folded\r\n\r\n", 400)
    }

    // MARK: Limits

    func testLimits() {
        var limits = ParserSelfCheck.limits
        limits.maxURILength = 100
        limits.maxHeaderBytes = 200
        limits.maxHeaderCount = 4
        limits.maxBodyBytes = 10
        // 414: a target over the limit, and a request line too long to wait for.
        assertStatus("GET /\(String(repeating: "a", count: 100)) HTTP/1.1\r\nHost: x\r\n\r\n", 414, limits: limits)
        assertStatus("GET /\(String(repeating: "a", count: 1000))", 414, limits: limits)
        XCTAssertNil(parse("GET /\(String(repeating: "a", count: 99)) HTTP/1.1\r\nHost: x\r\n\r\n", limits: limits).error)
        // 431: too many bytes (even without the end of the head yet), too many fields.
        assertStatus("GET / HTTP/1.1\r\nHost: x\r\nX: \(String(repeating: "v", count: 300))", 431, limits: limits)
        assertStatus("GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 431, limits: limits)
        // 413 from Content-Length before any body byte, and for chunked as soon as the total passes.
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n", 413, limits: limits)
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n6\r\n", 413, limits: limits)
        assertStatus("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: \(String(repeating: "v", count: 300))", 431, limits: limits)
        XCTAssertEqual(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789", limits: limits).messages.count, 1)
    }

    func testBodyLimitCanBeChangedAfterHead() {
        var parser = RequestParser(limits: ParserSelfCheck.limits)
        let bytes = Array("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n".utf8)
        let (event, consumed) = bytes.withUnsafeBytes { parser.parse($0) }
        guard case .head = event else { return XCTFail("\(event)") }
        XCTAssertEqual(consumed, bytes.count)
        parser.bodyLimit = 19
        let (next, _) = [UInt8]().withUnsafeBytes { parser.parse($0) }
        XCTAssertEqual(next, .error(RequestParser.tooLarge(19)))
    }

    // MARK: Properties on many inputs

    func testCorpusKeepsParserProperties() throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Fixtures/http-corpus").standardized
        let files = try FileManager.default.contentsOfDirectory(at: corpus, includingPropertiesForKeys: nil)
        XCTAssertGreaterThan(files.count, 10)
        for file in files {
            XCTAssertNil(ParserSelfCheck.violation(in: Array(try Data(contentsOf: file))), file.lastPathComponent)
        }
    }

    /// Deterministic random mutations of the corpus (the fuzzer's properties, in every `swift test`).
    func testRandomMutationsKeepParserProperties() throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Fixtures/http-corpus").standardized
        let seeds = try FileManager.default.contentsOfDirectory(at: corpus, includingPropertiesForKeys: nil)
            .sorted { $0.path < $1.path }.map { Array(try Data(contentsOf: $0)) }
        let alphabet = Array("\r\n :;,0123456789abcdefABCDEF-/?%HTTP/1.1chunkedContent-LengthTransfer-Encoding\t\u{0}\u{7F}".utf8)
        var rng = SplitMix64(seed: 20261124)
        for iteration in 0..<3000 {
            var bytes = seeds[Int(rng.next() % UInt64(seeds.count))]
            for _ in 0..<Int(rng.next() % 4) + 1 {
                let at = bytes.isEmpty ? 0 : Int(rng.next() % UInt64(bytes.count + 1))
                switch rng.next() % 4 {
                case 0 where at < bytes.count: bytes[at] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                case 1: bytes.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: at)
                case 2 where at < bytes.count: bytes.remove(at: at)
                default: bytes.insert(contentsOf: seeds[Int(rng.next() % UInt64(seeds.count))].prefix(40), at: at)
                }
            }
            if let violation = ParserSelfCheck.violation(in: bytes, splitSeed: UInt64(iteration)) {
                return XCTFail("iteration \(iteration): \(violation)")
            }
        }
    }
}
