#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why the server could not start.
public enum HTTPServerError: Error, CustomStringConvertible, Equatable {
    /// The host is not an IPv4 or IPv6 literal (or `localhost`).
    case invalidHost(String)
    case invalidPort(Int)
    /// A socket call failed: the call's name and errno.
    case socket(String, Int32)
    case alreadyStarted

    public var description: String {
        switch self {
        case .invalidHost(let host): "'\(host)' is not an IPv4 or IPv6 address literal"
        case .invalidPort(let port): "port \(port) is outside 0...65535"
        case .socket(let call, let code): "\(call) failed: \(String(cString: strerror(code)))"
        case .alreadyStarted: "the server was already started"
        }
    }
}

/// Thin wrappers over the POSIX calls the server needs.
enum Socket {
    struct Listener {
        var fd: Int32
        var port: Int
    }

    /// A non-blocking listening socket bound to `host:port` (port 0 picks a free one).
    static func listen(host: String, port: Int, backlog: Int32) throws(HTTPServerError) -> Listener {
        let fd = try bound(host: host, port: port)
        guard Glibc.listen(fd, backlog) == 0 else { let e = errno; close(fd); throw .socket("listen", e) }
        guard setNonBlocking(fd) else { let e = errno; close(fd); throw .socket("fcntl", e) }

        var actual = sockaddr_storage()
        var actualLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &actualLength) }
        }
        return Listener(fd: fd, port: Int(portOf(actual)))
    }

    /// Whether `host:port` can be bound now: binds a socket that never listens (so no connection
    /// is ever accepted on it) and closes it.
    static func checkBindable(host: String, port: Int) throws(HTTPServerError) {
        close(try bound(host: host, port: port))
    }

    /// A socket bound to `host:port` (SO_REUSEADDR), not yet listening.
    private static func bound(host: String, port: Int) throws(HTTPServerError) -> Int32 {
        guard (0...65535).contains(port) else { throw .invalidPort(port) }
        let literal = host == "localhost" ? "127.0.0.1" : host.hasPrefix("[") && host.hasSuffix("]")
            ? String(host.dropFirst().dropLast()) : host
        var storage = sockaddr_storage()
        let length: socklen_t
        let family: Int32
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, literal, &v4) == 1 {
            family = AF_INET
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutableBytes(of: &storage) { raw in
                let sin = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
                sin.pointee.sin_family = sa_family_t(AF_INET)
                sin.pointee.sin_port = UInt16(port).bigEndian  // htons does not import
                sin.pointee.sin_addr = v4
            }
        } else if inet_pton(AF_INET6, literal, &v6) == 1 {
            family = AF_INET6
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            withUnsafeMutableBytes(of: &storage) { raw in
                let sin6 = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
                sin6.pointee.sin6_family = sa_family_t(AF_INET6)
                sin6.pointee.sin6_port = UInt16(port).bigEndian
                sin6.pointee.sin6_addr = v6
            }
        } else {
            throw .invalidHost(host)
        }

        let fd = socket(family, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw .socket("socket", errno) }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else { let e = errno; close(fd); throw .socket("bind", e) }
        return fd
    }

    /// Non-blocking, no Nagle delay (responses are written whole), close-on-exec.
    static func configureAccepted(_ fd: Int32) {
        _ = setNonBlocking(fd)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        var on: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
    }

    static func setNonBlocking(_ fd: Int32) -> Bool {
        let flags = fcntl(fd, F_GETFL)
        return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0
    }

    static func portOf(_ address: sockaddr_storage) -> UInt16 {
        let family = Int32(address.ss_family)
        return withUnsafeBytes(of: address) { raw in
            switch family {
            case AF_INET: UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port)
            case AF_INET6: UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port)
            default: 0
            }
        }
    }

    /// `a.b.c.d:port` or `[v6]:port`.
    static func describe(_ address: sockaddr_storage) -> String? {
        let family = Int32(address.ss_family)
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let port = portOf(address)
        return withUnsafeBytes(of: address) { raw -> String? in
            switch family {
            case AF_INET:
                var a = raw.load(as: sockaddr_in.self).sin_addr
                guard inet_ntop(AF_INET, &a, &text, socklen_t(text.count)) != nil else { return nil }
                return "\(cString(text)):\(port)"
            case AF_INET6:
                var a = raw.load(as: sockaddr_in6.self).sin6_addr
                guard inet_ntop(AF_INET6, &a, &text, socklen_t(text.count)) != nil else { return nil }
                return "[\(cString(text))]:\(port)"
            default:
                return nil
            }
        }
    }

    private static func cString(_ chars: [CChar]) -> String {
        String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
