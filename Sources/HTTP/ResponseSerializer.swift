import Foundation

/// Writes a response onto the wire. The server owns the framing fields: handler-set
/// Content-Length, Transfer-Encoding, Connection, Keep-Alive, Date, Server and X-Request-Id are
/// replaced, and fields whose name is not a token or whose value holds CR, LF or NUL are dropped
/// (no response splitting).
enum ResponseSerializer {
    struct Context {
        var requestID: String
        var isHead: Bool
        /// `Connection: close` (the connection closes after this response).
        var close: Bool
        /// `Connection: keep-alive` for an HTTP/1.0 client that asked for it.
        var keepAlive10: Bool
        var date: [UInt8]
        var server: [UInt8]
    }

    static let reserved: [[UInt8]] = ["content-length", "transfer-encoding", "connection", "keep-alive", "date",
                                      "server", "x-request-id"].map { Array($0.utf8) }

    static func serialize(_ response: HTTPResponse, _ c: Context) -> [UInt8] {
        var status = response.status
        var body = response.body
        var headers = response.headers
        if (100...199).contains(status.code) {
            // Interim responses are the server's business; a handler returning one is a bug.
            status = .internalServerError
            let error = HTTPError(.internalServerError, message: "The handler returned an interim status.")
            body = error.response.body
            headers = error.response.headers
        }
        let sendsBody = status.allowsBody && !c.isHead
        var out: [UInt8] = []
        out.reserveCapacity(192 + headers.count * 32 + (sendsBody ? body.count : 0))
        out.append(contentsOf: "HTTP/1.1 \(status.code) \(status.reason)\r\n".utf8)
        out.append(contentsOf: c.server)
        out.append(contentsOf: c.date)
        append("X-Request-Id", c.requestID, to: &out)
        for field in headers where isWritable(field) {
            append(field.name, field.value, to: &out)
        }
        if status.allowsBody {
            append("Content-Length", String(body.count), to: &out)
        }
        if c.close {
            out.append(contentsOf: "Connection: close\r\n".utf8)
        } else if c.keepAlive10 {
            out.append(contentsOf: "Connection: keep-alive\r\n".utf8)
        }
        out.append(CR)
        out.append(LF)
        if sendsBody && !body.isEmpty {
            body.withUnsafeBytes { out.append(contentsOf: $0.bindMemory(to: UInt8.self)) }
        }
        return out
    }

    /// `100 Continue`, written before reading a body the client holds back.
    static let continue100 = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    private static func append(_ name: String, _ value: String, to out: inout [UInt8]) {
        out.append(contentsOf: name.utf8)
        out.append(UInt8(ascii: ":"))
        out.append(SP)
        out.append(contentsOf: value.utf8)
        out.append(CR)
        out.append(LF)
    }

    private static func isWritable(_ field: HTTPHeaders.Field) -> Bool {
        let name = field.name.utf8
        guard !name.isEmpty, name.allSatisfy(CharacterClass.isToken),
              field.value.utf8.allSatisfy(CharacterClass.isFieldValue) else { return false }
        return !reserved.contains { name.equalsLowercase($0) }
    }
}

/// The `Date` field line, formatted once per second (IMF-fixdate, RFC 9110 §5.6.7).
struct DateCache {
    private var second = -1
    private var line: [UInt8] = []

    mutating func fieldLine() -> [UInt8] {
        let now = time(nil)
        if now != second {
            second = now
            line = Array("Date: \(Self.imfFixdate(now))\r\n".utf8)
        }
        return line
    }

    static func imfFixdate(_ t: time_t) -> String {
        var t = t
        var tm = tm()
        gmtime_r(&t, &tm)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(days[Int(tm.tm_wday)]), \(two(tm.tm_mday)) \(months[Int(tm.tm_mon)]) \(tm.tm_year + 1900) "
            + "\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)) GMT"
    }
}
