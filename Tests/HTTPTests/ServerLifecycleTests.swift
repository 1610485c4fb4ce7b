import Dispatch
import Foundation
import Glibc
@testable import HTTP
import XCTest

/// Timeouts, many connections, the connection limit, slow handlers and draining.
final class ServerLifecycleTests: XCTestCase {
    private func limits(_ change: (inout HTTPLimits) -> Void) -> HTTPLimits {
        var limits = HTTPLimits.test
        change(&limits)
        return limits
    }

    // MARK: Timeouts

    func testSlowlorisHeadersGet408AndClose() throws {
        let server = try TestServer(limits: limits { $0.headerReadTimeout = .milliseconds(300) })
        defer { server.stop() }
        let c = try server.client()
        let started = Date()
        c.send("GET /hello HTTP/1.1\r\nHo")
        for byte in "st: x\r\nX-Slow: 1234567890".utf8 {  // one byte every 50 ms: never finishes in time
            usleep(50_000)
            if !c.send([byte]) || Date().timeIntervalSince(started) > 1 { break }
        }
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 408)
        XCTAssertEqual(r.header("Connection"), "close")
        XCTAssertEqual(r.error?["code"] as? String, "request_timeout")
        XCTAssertTrue(c.waitForClose())
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
    }

    func testSilentConnectionIsClosedWithout408() throws {
        let server = try TestServer(limits: limits { $0.headerReadTimeout = .milliseconds(200) })
        defer { server.stop() }
        let c = try server.client()
        XCTAssertTrue(c.waitForClose(seconds: 2))
        XCTAssertTrue(c.unread.isEmpty, "nothing was asked, nothing is answered")
    }

    func testEmptyLinesBetweenRequestsStartNoHeaderClock() throws {
        let server = try TestServer(limits: limits { $0.headerReadTimeout = .milliseconds(200) })
        defer { server.stop() }
        let c = try server.client()
        XCTAssertEqual(try c.request(req("POST /echo", ["Content-Length: 2"], body: "ok\r\n")).text, "ok")
        usleep(500_000)  // the stray CRLF after the body must not turn into a 408
        XCTAssertEqual(try c.request(req("GET /hello")).status, 200)
    }

    func testEmptyLineBeforeTheFirstRequestKeepsTheConnection() throws {
        let server = try TestServer(limits: limits { $0.headerReadTimeout = .milliseconds(2000) })
        defer { server.stop() }
        let c = try server.client()
        XCTAssertTrue(c.send("\r\n"))
        usleep(600_000)  // more than two timer sweeps: the connection must still be open
        XCTAssertEqual(try c.request(req("GET /hello")).status, 200)
    }

    func testSlowBodyGets408AndClose() throws {
        let server = try TestServer(limits: limits { $0.bodyReadTimeout = .milliseconds(300) })
        defer { server.stop() }
        let c = try server.client()
        c.send(req("POST /echo", ["Content-Length: 100"], body: "only part of it"))
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 408)
        XCTAssertTrue(c.waitForClose())
    }

    func testIdleKeepAliveConnectionIsClosed() throws {
        let server = try TestServer(limits: limits { $0.idleTimeout = .milliseconds(300) })
        defer { server.stop() }
        let c = try server.client()
        XCTAssertEqual(try c.request(req("GET /hello")).status, 200)
        usleep(100_000)
        XCTAssertEqual(try c.request(req("GET /hello")).status, 200, "activity resets the idle clock")
        let idleStart = Date()
        XCTAssertTrue(c.waitForClose(seconds: 2))
        XCTAssertGreaterThan(Date().timeIntervalSince(idleStart), 0.25)
        XCTAssertTrue(c.unread.isEmpty, "closed silently")
    }

    func testSlowReaderIsDisconnected() throws {
        let server = try TestServer(limits: limits { $0.writeTimeout = .milliseconds(300) })
        defer { server.stop() }
        let c = try server.client()
        c.shrinkReceiveBuffer(to: 4096)
        let size = 64 * 1024 * 1024
        c.send(req("GET /big?bytes=\(size)"))
        usleep(1_200_000)  // read nothing while the server's writes stall
        var received = 0
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress!, $0.count, 0) }
            if n <= 0 { break }
            received += n
        }
        XCTAssertLessThan(received, size, "the server gave up on the stalled reader")
        XCTAssertEqual(server.server.connectionStats.open, 0)
    }

    // MARK: Concurrency

    func testHundredKeepAliveConnectionsAllServed() throws {
        let server = try TestServer()
        defer { server.stop() }
        let clients = try (0..<100).map { _ in try server.client() }
        for round in 0..<5 {
            for (i, c) in clients.enumerated() { c.send(req("GET /inspect/\(i)-\(round)")) }
            for (i, c) in clients.enumerated() {
                let r = try c.readResponse()
                XCTAssertEqual(r.json?["id"] as? String, "\(i)-\(round)")
            }
        }
        XCTAssertEqual(server.server.connectionStats.open, 100)
    }

    func testSlowHandlerDoesNotStallOtherConnections() throws {
        let server = try TestServer()
        defer { server.stop() }
        let slow = try server.client()
        slow.send(req("GET /spin?ms=400"))
        usleep(50_000)  // the spin is running
        let fast = try server.client()
        let started = Date()
        for _ in 0..<10 { XCTAssertEqual(try fast.request(req("GET /hello")).status, 200) }
        XCTAssertLessThan(Date().timeIntervalSince(started), 0.3, "10 requests went by while a handler burned CPU")
        XCTAssertEqual(try slow.readResponse().text, "spun\n")
    }

    /// Handlers burning every handler thread must not stall reading, parsing and writing: a route
    /// that runs on the I/O queue still answers at once (I/O queues are overcommit serial queues).
    func testBusyHandlerQueueDoesNotStallIO() throws {
        let server = try TestServer()
        defer { server.stop() }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let spinners = try (0..<cores + 1).map { _ in try server.client() }
        for c in spinners { c.send(req("GET /spin?ms=500")) }
        usleep(50_000)
        let probe = try server.client()
        let started = Date()
        for _ in 0..<10 { XCTAssertEqual(try probe.request(req("GET /inline")).text, "inline\n") }
        // A stalled I/O queue would wait for the spinners (≥ 450 ms); 0.4 s leaves room for a busy machine.
        XCTAssertLessThan(Date().timeIntervalSince(started), 0.4)
        for c in spinners { XCTAssertEqual(try c.readResponse().status, 200) }
    }

    func testConnectionLimitAnswers503() throws {
        let server = try TestServer(limits: limits { $0.maxConnections = 3 })
        defer { server.stop() }
        let open = try (0..<3).map { _ in try server.client() }
        for c in open { XCTAssertEqual(try c.request(req("GET /hello")).status, 200) }

        let extra = try server.client()
        let refused = try extra.readResponse()  // answered without asking
        XCTAssertEqual(refused.status, 503)
        XCTAssertEqual(refused.header("Retry-After"), "1")
        XCTAssertEqual(refused.header("Connection"), "close")
        XCTAssertEqual(refused.error?["code"] as? String, "service_unavailable")
        XCTAssertTrue(extra.waitForClose())
        XCTAssertEqual(server.server.connectionStats.refused, 1)

        XCTAssertTrue({ open[0].shutdownWrite(); return open[0].waitForClose() }())
        usleep(50_000)
        let again = try server.client()
        XCTAssertEqual(try again.request(req("GET /hello")).status, 200, "a freed slot is usable")
    }

    func testPeerHalfCloseStillGetsAnswers() throws {
        let server = try TestServer()
        defer { server.stop() }
        let c = try server.client()
        c.send(req("GET /delay?ms=100&tag=x") + req("GET /hello"))
        c.shutdownWrite()
        XCTAssertEqual(try c.readResponse().text, "delayed x\n")
        XCTAssertEqual(try c.readResponse().text, "hello\n")
        XCTAssertTrue(c.waitForClose())
    }

    // MARK: Drain

    func testDrainFinishesInFlightClosesIdleAndRefusesNew() throws {
        let server = try TestServer()
        defer { server.stop() }
        let port = server.port
        let busy = try server.client()
        let idle = try server.client()
        XCTAssertEqual(try idle.request(req("GET /hello")).status, 200)
        busy.send(req("GET /delay?ms=400&tag=last"))
        usleep(50_000)

        XCTAssertTrue(server.server.isReady)
        let drained = expectation(description: "drained")
        server.server.beginDrain { drained.fulfill() }
        XCTAssertFalse(server.server.isReady, "readiness goes false at once")
        XCTAssertEqual(server.server.state, .draining)

        XCTAssertTrue(idle.waitForClose(seconds: 1), "idle keep-alive connections close")
        // The listener closes on the accept queue; under load that can take a moment.
        var refused = false
        let until = Date().addingTimeInterval(2)
        while !refused && Date() < until {
            if (try? RawClient(port: port)) == nil { refused = true } else { usleep(20_000) }
        }
        XCTAssertTrue(refused, "new connections are refused")
        let last = try busy.readResponse()
        XCTAssertEqual(last.text, "delayed last\n", "the in-flight request completes")
        XCTAssertEqual(last.header("Connection"), "close")
        wait(for: [drained], timeout: 3)
        XCTAssertEqual(server.server.state, .stopped)
        XCTAssertTrue(server.server.waitUntilDrained(deadline: .now() + 1))
    }

    func testDrainTimeoutForceClosesStragglers() throws {
        let server = try TestServer()
        defer { server.stop() }
        let stuck = try server.client()
        stuck.send(req("GET /delay?ms=5000&tag=never"))
        usleep(50_000)
        let started = Date()
        server.server.beginDrain(timeout: .milliseconds(200))
        XCTAssertTrue(server.server.waitUntilDrained(deadline: .now() + 3))
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
        XCTAssertTrue(stuck.waitForClose(seconds: 1))
    }
}
