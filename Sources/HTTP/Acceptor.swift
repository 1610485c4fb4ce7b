import Dispatch
import Glibc
import Logging

/// Accepts connections on its own serial queue and deals them round-robin to the I/O loops.
///
/// Connection limit: a connection beyond `maxConnections` is still accepted, answered
/// `503 Service Unavailable` (error envelope, `Retry-After: 1`, `Connection: close`) and closed,
/// so clients get a clear, retryable answer instead of hanging in the kernel's backlog. Such
/// refusals are themselves capped (`maxRefusing` at once); past that, extra connections are closed
/// straight after accept.
final class Acceptor: @unchecked Sendable {
    static let maxRefusing = 64

    private let queue = DispatchQueue(label: "http.accept", qos: .userInitiated)
    private let source: DispatchSourceRead
    private let fd: Int32
    private let loops: [IOLoop]
    private let core: ServerCore
    private var next = 0
    private var suspended = false

    init(listener fd: Int32, loops: [IOLoop], core: ServerCore) {
        self.fd = fd
        self.loops = loops
        self.core = core
        source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        source.setCancelHandler { Glibc.close(fd) }
        source.setEventHandler { [unowned self] in acceptPending() }
    }

    func start() { source.activate() }

    /// Stops accepting and closes the listening socket: new connections are refused by the kernel.
    func stop() {
        queue.async { [self] in
            if suspended { source.resume(); suspended = false }
            source.cancel()
        }
    }

    private func acceptPending() {
        for _ in 0..<64 {
            var address = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let client = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(fd, $0, &length) }
            }
            if client < 0 {
                switch errno {
                case EAGAIN, EWOULDBLOCK: return
                case EINTR, ECONNABORTED, EPROTO: continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    // Out of descriptors: back off instead of spinning on a listener that stays readable.
                    core.logger.warning("accept failed: \(String(cString: strerror(errno))); pausing 100 ms")
                    pause()
                    return
                default:
                    core.logger.warning("accept failed: \(String(cString: strerror(errno)))")
                    return
                }
            }
            core.accepted.add(1, ordering: .relaxed)
            if core.isDraining {
                Glibc.close(client)
                continue
            }
            Socket.configureAccepted(client)
            let refuse = core.open.load(ordering: .relaxed) >= core.limits.maxConnections
            if refuse {
                core.refusedTotal.add(1, ordering: .relaxed)
                if core.refusing.load(ordering: .relaxed) >= Self.maxRefusing {
                    Glibc.close(client)
                    continue
                }
                core.refusing.add(1, ordering: .relaxed)
            } else {
                core.open.add(1, ordering: .relaxed)
            }
            let loop = loops[next % loops.count]
            next &+= 1
            let connection = Connection(fd: client, loop: loop, core: core, remoteAddress: Socket.describe(address),
                                        refused: refuse)
            loop.queue.async { connection.start() }
        }
    }

    private func pause() {
        guard !suspended else { return }
        source.suspend()
        suspended = true
        queue.asyncAfter(deadline: .now() + .milliseconds(100)) { [self] in
            if suspended {
                suspended = false
                source.resume()
            }
        }
    }
}
