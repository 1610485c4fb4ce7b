import Foundation
import Glibc
import XCTest

/// A blocking raw-socket HTTP/1.1 client for tests: writes exactly the bytes given and parses
/// responses itself, so tests see what the server really put on the wire.
final class RawClient {
    struct Response {
        var status: Int
        var reason: String
        var headers: [(name: String, value: String)]
        var body: [UInt8]

        func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }

        func headers(_ name: String) -> [String] {
            headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
        }

        var text: String { String(decoding: body, as: UTF8.self) }

        var json: [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
        }

        /// The envelope's inner object, when the body is one.
        var error: [String: Any]? { json?["error"] as? [String: Any] }
    }

    enum Failure: Error { case connect(Int32), closed, timeout, malformed(String) }

    let fd: Int32
    private var buffer: [UInt8] = []

    init(port: Int, host: String = "127.0.0.1", timeout: Double = 5) throws {
        let v6 = host.contains(":")
        fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var on: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        let result: Int32
        if v6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = UInt16(port).bigEndian
            inet_pton(AF_INET6, host, &address.sin6_addr)
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            inet_pton(AF_INET, host, &address.sin_addr)
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        if result != 0 {
            let e = errno
            Glibc.close(fd)
            throw Failure.connect(e)
        }
    }

    deinit { Glibc.close(fd) }

    /// Makes the kernel keep only a small receive window (for slow-reader tests).
    func shrinkReceiveBuffer(to bytes: Int32) {
        var size = bytes
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }

    @discardableResult
    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }

    /// Half-closes: the server sees end of stream.
    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
        if n > 0 {
            buffer.append(contentsOf: chunk[0..<n])
        } else if n == 0 || errno == ECONNRESET {
            throw Failure.closed
        } else {
            throw errno == EAGAIN || errno == EWOULDBLOCK ? Failure.timeout : Failure.closed
        }
    }

    private func readLine() throws -> String {
        while true {
            if let lf = buffer.firstIndex(of: 0x0A) {
                guard lf > 0, buffer[lf - 1] == 0x0D else { throw Failure.malformed("line without CRLF") }
                let line = String(decoding: buffer[0..<lf - 1], as: UTF8.self)
                buffer.removeFirst(lf + 1)
                return line
            }
            try fill()
        }
    }

    /// Reads one response (an interim 1xx too). `head` for responses to HEAD (no body).
    func readResponse(head: Bool = false) throws -> Response {
        let statusLine = try readLine()
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0] == "HTTP/1.1", let status = Int(parts[1]) else {
            throw Failure.malformed("status line '\(statusLine)'")
        }
        var headers: [(String, String)] = []
        while true {
            let line = try readLine()
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: ":") else { throw Failure.malformed("field '\(line)'") }
            headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var response = Response(status: status, reason: parts.count > 2 ? String(parts[2]) : "", headers: headers, body: [])
        if (100...199).contains(status) || head || status == 204 || status == 304 { return response }
        guard let length = response.header("Content-Length").flatMap(Int.init) else {
            throw Failure.malformed("response without Content-Length")
        }
        while buffer.count < length { try fill() }
        response.body = Array(buffer[0..<length])
        buffer.removeFirst(length)
        return response
    }

    /// One request, one response.
    func request(_ text: String, head: Bool = false) throws -> Response {
        send(text)
        return try readResponse(head: head)
    }

    /// True when the server closes the connection (end of stream or reset) within `seconds`.
    func waitForClose(seconds: Double = 3) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 50) > 0 else { continue }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n == 0 || (n < 0 && errno == ECONNRESET) { return true }
            if n > 0 { buffer.append(contentsOf: chunk[0..<n]) }
        }
        return false
    }

    /// Bytes received so far and not parsed (e.g. after `waitForClose`).
    var unread: [UInt8] { buffer }
}

/// Builds a request with CRLF line ends: `HTTP/1.1` is appended to a request line without a
/// version, and `Host` is added unless present.
func req(_ requestLine: String, _ fields: [String] = [], body: String = "") -> String {
    let hasVersion = requestLine.range(of: #" HTTP/\d\.\d$"#, options: .regularExpression) != nil
    var lines = [hasVersion ? requestLine : requestLine + " HTTP/1.1"]
    if !fields.contains(where: { $0.lowercased().hasPrefix("host:") }) { lines.append("Host: test") }
    lines += fields
    return lines.joined(separator: "\r\n") + "\r\n\r\n" + body
}
