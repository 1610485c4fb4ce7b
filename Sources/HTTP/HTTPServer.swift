import Dispatch
import Foundation
import Glibc
import Logging
import Synchronization

/// An HTTP/1.1 server on POSIX sockets and Dispatch.
///
/// Threading: one accept queue; `ioQueueCount` serial I/O queues, each owning its connections'
/// read/write sources, parsing and ordered writes; handlers run on `handlerQueue` (concurrent,
/// off the I/O path) unless a route asks to run on the I/O queue. A handler answers through a
/// `Responder` from any thread; each connection still writes responses in request order.
///
/// Lifecycle: `start()` binds and listens (throws on failure; `port` is then the bound port);
/// `beginDrain` stops accepting, answers in-flight requests, closes idle connections and calls
/// its completion when the last connection closed (or after its timeout, force-closing the rest).
public final class HTTPServer: @unchecked Sendable {
    public struct Configuration: Sendable {
        /// IPv4 or IPv6 literal (`127.0.0.1`, `0.0.0.0`, `::1`, `::`), or `localhost`.
        public var host: String
        /// 0 picks a free port; read it from `HTTPServer.port` after `start()`.
        public var port: Int
        public var limits: HTTPLimits
        /// Serial I/O queues connections are spread over (default: one per core).
        public var ioQueueCount: Int
        /// Where handlers run; nil creates a concurrent queue (width: the core count).
        public var handlerQueue: DispatchQueue?
        /// The `Server` field of every response.
        public var serverName: String
        public var backlog: Int32
        /// Called once per response, on an I/O queue: must be cheap and must not block.
        public var observer: (@Sendable (RequestObservation) -> Void)?
        public var logger: Logger

        public init(host: String = "127.0.0.1", port: Int = 8080, limits: HTTPLimits = HTTPLimits(),
                    ioQueueCount: Int = max(1, ProcessInfo.processInfo.activeProcessorCount),
                    handlerQueue: DispatchQueue? = nil, serverName: String = "bootmae-serve", backlog: Int32 = 1024,
                    observer: (@Sendable (RequestObservation) -> Void)? = nil,
                    logger: Logger = Logger(label: "bootmae.http")) {
            self.host = host
            self.port = port
            self.limits = limits
            self.ioQueueCount = ioQueueCount
            self.handlerQueue = handlerQueue
            self.serverName = serverName
            self.backlog = backlog
            self.observer = observer
            self.logger = logger
        }
    }

    public enum State: Sendable, Equatable {
        case idle, running, draining, stopped
    }

    public let configuration: Configuration

    private struct Mutable {
        var state = State.idle
        var router: Router
        var port = 0
        var acceptor: Acceptor?
        var loops: [IOLoop] = []
        var core: ServerCore?
        var drainCompletions: [@Sendable () -> Void] = []
    }

    private let mutable: Mutex<Mutable>

    public init(configuration: Configuration, router: Router = Router()) {
        self.configuration = configuration
        mutable = Mutex(Mutable(router: router))
    }

    /// Routes; set them before `start()` (later changes are not seen by a running server).
    public var router: Router {
        get { mutable.withLock { $0.router } }
        set {
            mutable.withLock {
                precondition($0.state == .idle, "routes are fixed once the server started")
                $0.router = newValue
            }
        }
    }

    /// The bound port once started (the chosen one when configured with 0).
    public var port: Int { mutable.withLock { $0.port } }

    public var state: State { mutable.withLock { $0.state } }

    /// Readiness: true while running and not draining (what a /readyz handler reports).
    public var isReady: Bool { state == .running }

    public var connectionStats: ConnectionStats {
        guard let core = mutable.withLock({ $0.core }) else { return ConnectionStats(open: 0, accepted: 0, refused: 0) }
        return ConnectionStats(open: core.open.load(ordering: .relaxed),
                               accepted: core.accepted.load(ordering: .relaxed),
                               refused: core.refusedTotal.load(ordering: .relaxed))
    }

    /// Throws the error `start()` would for a host or port that cannot be bound now (in use,
    /// privileged, not a local address), without accepting any connection: a program with a slow
    /// start-up checks before it, then `start()`s when ready. (The port may still be taken in between.)
    public static func checkBindable(host: String, port: Int) throws(HTTPServerError) {
        try Socket.checkBindable(host: host, port: port)
    }

    /// Binds, listens and starts serving. Ignores SIGPIPE for the process (writes to a closed
    /// socket must fail with EPIPE, not kill the server).
    public func start() throws(HTTPServerError) {
        try mutable.withLock { (m: inout Mutable) throws(HTTPServerError) in
            guard m.state == .idle else { throw .alreadyStarted }
            signal(SIGPIPE, SIG_IGN)
            let limits = configuration.limits
            let listener = try Socket.listen(host: configuration.host, port: configuration.port,
                                             backlog: configuration.backlog)
            let shortest = [limits.headerReadTimeout, limits.bodyReadTimeout, limits.idleTimeout,
                            limits.writeTimeout, limits.lingerTimeout].min()!
            let tick = min(max(shortest / 4, .milliseconds(5)), .milliseconds(250))
            let loops = (0..<max(1, configuration.ioQueueCount)).map { IOLoop(index: $0, tick: tick) }
            let core = ServerCore(configuration: configuration, router: m.router) { [weak self] in
                self?.drainFinished()
            }
            let acceptor = Acceptor(listener: listener.fd, loops: loops, core: core)
            for loop in loops { loop.queue.async { loop.start() } }
            acceptor.start()
            m.port = listener.port
            m.loops = loops
            m.core = core
            m.acceptor = acceptor
            m.state = .running
        }
        configuration.logger.info("listening", metadata: ["host": "\(configuration.host)", "port": "\(port)"])
    }

    /// Stops accepting (the listening socket closes), lets requests already received finish,
    /// closes idle keep-alive connections at once and the others after their last response, then
    /// calls `completion` (on a global queue). With a `timeout`, connections still open then are
    /// closed abruptly. Safe to call more than once; every completion is called.
    public func beginDrain(timeout: Duration? = nil, completion: (@Sendable () -> Void)? = nil) {
        enum Action { case none, finished, drain(Acceptor, [IOLoop], ServerCore) }
        let action: Action = mutable.withLock { m in
            if let completion { m.drainCompletions.append(completion) }
            switch m.state {
            case .idle:
                m.state = .stopped
                return .finished
            case .stopped:
                return .finished
            case .draining:
                return .none
            case .running:
                m.state = .draining
                return .drain(m.acceptor!, m.loops, m.core!)
            }
        }
        switch action {
        case .none:
            break
        case .finished:
            drainFinished()
        case .drain(let acceptor, let loops, let core):
            configuration.logger.info("draining", metadata: ["open": "\(core.open.load(ordering: .relaxed))"])
            core.draining.store(true, ordering: .sequentiallyConsistent)
            acceptor.stop()
            for loop in loops {
                loop.queue.async { for connection in loop.all { connection.beginDrain() } }
            }
            if let timeout {
                DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(timeout.nanoseconds))) {
                    for loop in loops {
                        loop.queue.async { for connection in loop.all { connection.forceClose() } }
                    }
                }
            }
            core.checkDrained()
        }
    }

    /// Drains with no grace period: every connection closes now.
    public func stop() { beginDrain(timeout: .zero) }

    /// Blocks until drained (after `beginDrain`) or until `deadline`; true when drained.
    /// Never call it on an I/O queue or the handler queue.
    public func waitUntilDrained(deadline: DispatchTime) -> Bool {
        let done = DispatchSemaphore(value: 0)
        let alreadyStopped = mutable.withLock { m in
            if m.state == .stopped { return true }
            m.drainCompletions.append { done.signal() }
            return false
        }
        return alreadyStopped || done.wait(timeout: deadline) == .success
    }

    /// Suspends until drained (after `beginDrain`).
    public func waitUntilDrained() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let alreadyStopped = mutable.withLock { m in
                if m.state == .stopped { return true }
                m.drainCompletions.append { continuation.resume() }
                return false
            }
            if alreadyStopped { continuation.resume() }
        }
    }

    private func drainFinished() {
        let (completions, loops): ([@Sendable () -> Void], [IOLoop]) = mutable.withLock { m in
            guard m.state == .draining || m.state == .stopped else { return ([], []) }
            m.state = .stopped
            let completions = m.drainCompletions
            m.drainCompletions = []
            let loops = m.loops
            m.loops = []
            return (completions, loops)
        }
        for loop in loops { loop.queue.async { loop.stop() } }
        if !completions.isEmpty {
            configuration.logger.info("drained")
            DispatchQueue.global().async { for completion in completions { completion() } }
        }
    }
}

/// What every connection shares: limits, the frozen router, counters and the drain flag.
final class ServerCore: Sendable {
    let limits: HTTPLimits
    let router: Router
    let handlerQueue: DispatchQueue
    let serverLine: [UInt8]
    let observer: (@Sendable (RequestObservation) -> Void)?
    let logger: Logger
    let open = Atomic<Int>(0)
    let refusing = Atomic<Int>(0)
    let accepted = Atomic<Int>(0)
    let refusedTotal = Atomic<Int>(0)
    let draining = Atomic<Bool>(false)
    private let onDrained: @Sendable () -> Void

    init(configuration: HTTPServer.Configuration, router: Router, onDrained: @escaping @Sendable () -> Void) {
        limits = configuration.limits
        self.router = router
        handlerQueue = configuration.handlerQueue
            ?? DispatchQueue(label: "http.handlers", qos: .default, attributes: .concurrent)
        let name = configuration.serverName.utf8.allSatisfy(CharacterClass.isFieldValue) ? configuration.serverName : "server"
        serverLine = Array("Server: \(name)\r\n".utf8)
        observer = configuration.observer
        logger = configuration.logger
        self.onDrained = onDrained
    }

    var isDraining: Bool { draining.load(ordering: .relaxed) }

    func connectionClosed(refused: Bool) {
        if refused {
            refusing.subtract(1, ordering: .relaxed)
        } else {
            open.subtract(1, ordering: .relaxed)
        }
        checkDrained()
    }

    func checkDrained() {
        if isDraining && open.load(ordering: .relaxed) == 0 && refusing.load(ordering: .relaxed) == 0 {
            onDrained()
        }
    }
}
