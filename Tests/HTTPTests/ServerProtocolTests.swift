import Foundation
@testable import HTTP
import XCTest

/// Real TCP against a real server on 127.0.0.1: request handling and protocol errors.
final class ServerProtocolTests: XCTestCase {
    var server: TestServer!

    override func setUpWithError() throws {
        server = try TestServer()
    }

    override func tearDown() {
        server.stop()
        server = nil
    }

    func testKeepAliveServesSeveralRequestsOnOneConnection() throws {
        let c = try server.client()
        for i in 0..<5 {
            let r = try c.request(req("GET /inspect/\(i)?n=\(i)"))
            XCTAssertEqual(r.status, 200)
            XCTAssertEqual(r.json?["id"] as? String, "\(i)")
            XCTAssertNil(r.header("Connection"))
            XCTAssertNotNil(r.header("Date"))
            XCTAssertEqual(r.header("Server"), "bootmae-serve")
        }
        XCTAssertEqual(server.server.connectionStats.open, 1)
    }

    func testPipelinedResponsesKeepRequestOrderWhenHandlersFinishOutOfOrder() throws {
        let c = try server.client()
        c.send(req("GET /delay?ms=300&tag=a", ["X-Request-Id: r1"])
               + req("GET /delay?ms=10&tag=b", ["X-Request-Id: r2"])
               + req("GET /delay?ms=120&tag=c", ["X-Request-Id: r3"]))
        let responses = try (0..<3).map { _ in try c.readResponse() }
        XCTAssertEqual(responses.map { $0.header("X-Request-Id") }, ["r1", "r2", "r3"])
        XCTAssertEqual(responses.map(\.text), ["delayed a\n", "delayed b\n", "delayed c\n"])
        XCTAssertEqual(server.completionOrder.snapshot, ["b", "c", "a"], "handlers did finish out of order")
    }

    func testPipelinedMixOfRoutesAndErrors() throws {
        let c = try server.client()
        c.send(req("GET /hello") + req("GET /missing") + req("POST /echo", ["Content-Length: 2"], body: "hi")
               + req("HEAD /hello") + req("GET /inline"))
        XCTAssertEqual(try c.readResponse().text, "hello\n")
        XCTAssertEqual(try c.readResponse().status, 404)
        XCTAssertEqual(try c.readResponse().text, "hi")
        let head = try c.readResponse(head: true)
        XCTAssertEqual(head.header("Content-Length"), "6")
        XCTAssertEqual(try c.readResponse().text, "inline\n")
    }

    func testContentLengthAndChunkedBodies() throws {
        let c = try server.client()
        let plain = try c.request(req("POST /echo", ["Content-Type: text/x-test", "Content-Length: 11"], body: "hello world"))
        XCTAssertEqual(plain.text, "hello world")
        XCTAssertEqual(plain.header("Content-Type"), "text/x-test")
        let chunked = try c.request(req("POST /echo", ["Transfer-Encoding: chunked"],
                                        body: "5;ext=1\r\nhello\r\n1;a=\"b c\"\r\n \r\n5\r\nworld\r\n0\r\nChecksum: abc\r\n\r\n"))
        XCTAssertEqual(chunked.status, 200)
        XCTAssertEqual(chunked.text, "hello world")
        XCTAssertEqual(chunked.header("X-Trailer-Checksum"), "abc")
        // A body sent in small pieces.
        c.send(req("POST /echo", ["Content-Length: 6"], body: "ab"))
        usleep(20_000)
        c.send("cd")
        usleep(20_000)
        c.send("ef")
        XCTAssertEqual(try c.readResponse().text, "abcdef")
    }

    func testExpectContinueAccepted() throws {
        let c = try server.client()
        c.send(req("PUT /upload", ["Expect: 100-continue", "Content-Length: 4"]))
        let interim = try c.readResponse()
        XCTAssertEqual(interim.status, 100)
        c.send("data")
        let final = try c.readResponse()
        XCTAssertEqual(final.status, 200)
        XCTAssertEqual(final.text, "stored 4\n")
        XCTAssertEqual(try c.request(req("GET /hello")).status, 200, "the connection stays usable")
    }

    func testExpectContinueRefusedWithoutHundred() throws {
        let c = try server.client()
        c.send(req("PUT /upload", ["Expect: 100-continue", "Content-Length: 5000"]))  // route limit 1024
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 413, "a final status, not 100")
        XCTAssertEqual(r.header("Connection"), "close")
        XCTAssertEqual(r.error?["code"] as? String, "content_too_large")
        XCTAssertTrue(c.waitForClose())
        XCTAssertTrue(c.unread.isEmpty, "nothing after the 413")
    }

    func testTooLargeIsDecidedBeforeTheBodyIsSent() throws {
        let c = try server.client()
        c.send(req("POST /echo", ["Content-Length: 100000000"]))  // no body follows
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 413)
        XCTAssertEqual(r.header("Connection"), "close")
        XCTAssertTrue(c.waitForClose())
    }

    func testChunkedBodyOverTheLimitIs413() throws {
        let c = try server.client()
        c.send(req("PUT /upload", ["Transfer-Encoding: chunked"], body: "200\r\n" + String(repeating: "a", count: 512) + "\r\n"))
        c.send("201\r\n")  // 512 + 513 > 1024: refused from the chunk size, before its data
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 413)
        XCTAssertTrue(c.waitForClose())
    }

    func testHeadHasGetHeadersWithoutBody() throws {
        let c = try server.client()
        let get = try c.request(req("GET /big?bytes=1000"))
        let head = try c.request(req("HEAD /big?bytes=1000"), head: true)
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.header("Content-Length"), "1000")
        XCTAssertEqual(get.header("Content-Length"), "1000")
        XCTAssertEqual(try c.request(req("GET /hello")).text, "hello\n", "no body bytes were sent after HEAD's headers")
    }

    func testNotFoundMethodNotAllowedAndOptions() throws {
        let c = try server.client()
        let missing = try c.request(req("GET /nope"))
        XCTAssertEqual(missing.status, 404)
        let wrong = try c.request(req("DELETE /hello"))
        XCTAssertEqual(wrong.status, 405)
        XCTAssertEqual(wrong.header("Allow"), "GET, HEAD, OPTIONS")
        XCTAssertEqual(wrong.error?["code"] as? String, "method_not_allowed")
        let options = try c.request(req("OPTIONS /echo"))
        XCTAssertEqual(options.status, 204)
        XCTAssertEqual(options.header("Allow"), "POST, OPTIONS")
        XCTAssertNil(options.header("Content-Length"), "no Content-Length on 204")
        let unknown = try c.request(req("BREW /hello"))
        XCTAssertEqual(unknown.status, 405, "an unknown method on a known path is not allowed there")
        XCTAssertEqual(unknown.header("Allow"), "GET, HEAD, OPTIONS")
        XCTAssertEqual(try c.request(req("GET /hello")).status, 200, "none of these closed the connection")
    }

    func testLengthRequired() throws {
        let c = try server.client()
        let r = try c.request(req("POST /echo"))
        XCTAssertEqual(r.status, 411)
        XCTAssertEqual(try c.request(req("POST /echo", ["Content-Length: 0"])).status, 200, "an empty body is a body")
    }

    func testUnsupportedMediaTypeHelper() throws {
        let c = try server.client()
        let r = try c.request(req("POST /json-only", ["Content-Type: text/plain", "Content-Length: 1"], body: "x"))
        XCTAssertEqual(r.status, 415)
        XCTAssertEqual(r.error?["param"] as? String, "Content-Type")
        XCTAssertEqual(try c.request(req("POST /json-only", ["Content-Type: application/json", "Content-Length: 2"], body: "{}")).status, 200)
    }

    func testHandlerFailuresBecome500() throws {
        let c = try server.client()
        let forgot = try c.request(req("GET /forgets"))
        XCTAssertEqual(forgot.status, 500)
        XCTAssertEqual(forgot.error?["message"] as? String, "The handler did not respond.")
        let threw = try c.request(req("GET /throws"))
        XCTAssertEqual(threw.status, 500)
        XCTAssertEqual(threw.error?["type"] as? String, "server_error")
        XCTAssertFalse(threw.text.contains("fileNoSuchFile"), "error details are not leaked")
    }

    // MARK: Protocol errors: status, envelope, close

    private func assertRejected(_ raw: String, status: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let c = try server.client()
        c.send(raw)
        let r = try c.readResponse()
        XCTAssertEqual(r.status, status, raw.debugDescription, file: file, line: line)
        XCTAssertEqual(r.header("Connection"), "close", file: file, line: line)
        XCTAssertEqual(r.header("Content-Type"), "application/json", file: file, line: line)
        XCTAssertNotNil(r.error?["message"] as? String, file: file, line: line)
        XCTAssertNotNil(r.header("X-Request-Id"), file: file, line: line)
        XCTAssertTrue(c.waitForClose(), "closed after \(status)", file: file, line: line)
    }

    func testProtocolErrors() throws {
        try assertRejected("GET /hello HTTP/2.0\r\nHost: x\r\n\r\n", status: 505)
        try assertRejected(req("POST /echo", ["Transfer-Encoding: gzip, chunked"], body: "0\r\n\r\n"), status: 501)
        try assertRejected(req("GET /\(String(repeating: "a", count: 9000))"), status: 414)
        try assertRejected(req("GET /hello", ["X-Big: \(String(repeating: "b", count: 20000))"]), status: 431)
        try assertRejected(req("GET /hello", (0..<101).map { "X-\($0): 1" }), status: 431)
        try assertRejected(req("GET /hello", ["X-A: 1", " folded"]), status: 400)
        try assertRejected("GET /hello HTTP/1.1\nHost: x\n\n", status: 400)  // bare LF: rejected, documented
        try assertRejected("GET /hello HTTP/1.1\r\n\r\n", status: 400)  // no Host
        try assertRejected(req("PUT /upload", ["Expect: coffee", "Content-Length: 1"], body: "x"), status: 417)
    }

    func testSmugglingDefences() throws {
        try assertRejected(req("POST /echo", ["Content-Length: 5", "Transfer-Encoding: chunked"], body: "0\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), status: 400)
        try assertRejected(req("POST /echo", ["Content-Length: 5", "Content-Length: 5"], body: "hello"), status: 400)
        try assertRejected(req("POST /echo", ["Content-Length: 5", "Content-Length: 6"], body: "hello!"), status: 400)
        try assertRejected(req("POST /echo", ["Content-Length: +5"], body: "hello"), status: 400)
        try assertRejected(req("POST /echo", ["Content-Length: -1"]), status: 400)
        try assertRejected(req("POST /echo", ["Content-Length: 18446744073709551616"]), status: 400)
        try assertRejected(req("POST /echo", ["Transfer-Encoding: chunked, identity"], body: "0\r\n\r\n"), status: 400)
        try assertRejected(req("POST /echo", ["Transfer-Encoding: chunked"], body: "zz\r\n"), status: 400)
    }

    func testRequestAfterBadBodyIsNeverServed() throws {
        let c = try server.client()
        c.send(req("POST /echo", ["Transfer-Encoding: chunked"], body: "2\r\nabXX") + req("GET /hello"))
        XCTAssertEqual(try c.readResponse().status, 400)
        XCTAssertTrue(c.waitForClose())
        XCTAssertTrue(c.unread.isEmpty, "the smuggled GET got no answer")
    }

    // MARK: Connection semantics

    func testConnectionCloseAndHTTP10() throws {
        let close = try server.client()
        let r = try close.request(req("GET /hello", ["Connection: close"]))
        XCTAssertEqual(r.header("Connection"), "close")
        XCTAssertTrue(close.waitForClose())

        let old = try server.client()
        let r10 = try old.request("GET /hello HTTP/1.0\r\n\r\n")
        XCTAssertEqual(r10.status, 200)
        XCTAssertEqual(r10.header("Connection"), "close", "HTTP/1.0 closes by default")
        XCTAssertTrue(old.waitForClose())

        let keep = try server.client()
        let first = try keep.request("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        XCTAssertEqual(first.header("Connection"), "keep-alive")
        XCTAssertEqual(try keep.request("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").status, 200)
    }

    func testAbsoluteFormAndQueryDecoding() throws {
        let c = try server.client()
        let r = try c.request(req("GET http://localhost:1234/inspect/a%20b?x=1&y=two+words&z=%E2%9C%93"))
        let json = try XCTUnwrap(r.json)
        XCTAssertEqual(json["path"] as? String, "/inspect/a%20b")
        XCTAssertEqual(json["id"] as? String, "a b")
        XCTAssertEqual(json["route"] as? String, "/inspect/{id}")
        XCTAssertEqual(json["items"] as? [[String]], [["x", "1"], ["y", "two words"], ["z", "✓"]])
    }

    func testRequestIDEchoedOrGenerated() throws {
        let c = try server.client()
        let echoed = try c.request(req("GET /inspect/1", ["X-Request-Id: client-42.a:b_c"]))
        XCTAssertEqual(echoed.header("X-Request-Id"), "client-42.a:b_c")
        XCTAssertEqual(echoed.json?["requestID"] as? String, "client-42.a:b_c", "handlers see it")
        for bad in ["has space", String(repeating: "x", count: 129), "semi;colon", "ümlaut"] {
            let r = try c.request(req("GET /inspect/1", ["X-Request-Id: \(bad)"]))
            let id = try XCTUnwrap(r.header("X-Request-Id"))
            XCTAssertNotEqual(id, bad)
            XCTAssertEqual(id.count, 32)
            XCTAssertTrue(id.allSatisfy(\.isHexDigit))
        }
        let missing = try c.request(req("GET /nope", ["X-Request-Id: lost-1"]))
        XCTAssertEqual(missing.header("X-Request-Id"), "lost-1", "errors carry it too")
        let a = try c.request(req("GET /hello")).header("X-Request-Id")
        let b = try c.request(req("GET /hello")).header("X-Request-Id")
        XCTAssertNotEqual(a, b)
    }

    func testErrorEnvelopeShape() throws {
        let r = try server.client().request(req("GET /nope"))
        XCTAssertEqual(r.header("Content-Type"), "application/json")
        let json = try XCTUnwrap(r.json)
        XCTAssertEqual(Set(json.keys), ["error"])
        let error = try XCTUnwrap(r.error)
        XCTAssertEqual(Set(error.keys), ["message", "type", "code", "param"])
        XCTAssertEqual(error["type"] as? String, "invalid_request_error")
        XCTAssertEqual(error["code"] as? String, "not_found")
        XCTAssertTrue(error["param"] is NSNull)
        XCTAssertEqual(Data(r.body), ErrorEnvelope.json(message: "No route for /nope.", type: "invalid_request_error", code: "not_found"),
                       "the body is exactly what ErrorEnvelope.json writes")
    }

    /// The router's notFoundAdvice is asked with the path and its answer follows the 404's sentence.
    func testNotFoundCarriesTheRoutersAdvice() throws {
        let advising = try TestServer { router in
            router.notFoundAdvice = { path in path == "/helo" ? "Did you mean GET /hello?" : nil }
        }
        let suggested = try advising.client().request(req("GET /helo"))
        XCTAssertEqual(suggested.status, 404)
        XCTAssertEqual(suggested.error?["message"] as? String, "No route for /helo. Did you mean GET /hello?")
        let plain = try advising.client().request(req("GET /elsewhere"))
        XCTAssertEqual(plain.error?["message"] as? String, "No route for /elsewhere.", "an answer of nil adds nothing")
    }

    func testObserverSeesEveryResponse() throws {
        let c = try server.client()
        _ = try c.request(req("GET /inspect/7"))
        _ = try c.request(req("POST /echo", ["Content-Length: 3"], body: "abc"))
        _ = try c.request(req("GET /nowhere"))
        c.send("BAD\r\n\r\n")
        _ = try c.readResponse()
        let deadline = Date().addingTimeInterval(2)
        while server.observations.snapshot.count < 4 && Date() < deadline { usleep(5000) }
        let seen = server.observations.snapshot
        XCTAssertEqual(seen.map(\.route), ["/inspect/{id}", "/echo", nil, nil])
        XCTAssertEqual(seen.map(\.status), [200, 200, 404, 400])
        XCTAssertEqual(seen.map(\.method), [.get, .post, .get, nil])
        XCTAssertEqual(seen[1].bytesIn, req("POST /echo", ["Content-Length: 3"], body: "abc").utf8.count)
        XCTAssertTrue(seen.allSatisfy { $0.bytesOut > 0 && $0.duration > .zero })
    }

    func testIPv6AndPortZero() throws {
        let v6: TestServer
        do { v6 = try TestServer(host: "::1") } catch let error as HTTPServerError {
            throw XCTSkip("no IPv6 loopback here: \(error)")
        }
        XCTAssertGreaterThan(v6.port, 0)
        XCTAssertNotEqual(v6.port, server.port)
        let c = try RawClient(port: v6.port, host: "::1")
        XCTAssertEqual(try c.request(req("GET /hello")).text, "hello\n")
        v6.stop()
        XCTAssertThrowsError(try HTTPServer(configuration: .init(host: "not-an-ip", port: 0)).start()) { error in
            XCTAssertEqual(error as? HTTPServerError, .invalidHost("not-an-ip"))
        }
    }
}
