import Dispatch
import Glibc

/// One serial Dispatch queue and the connections confined to it. Every connection's socket
/// events, parsing, response ordering and writes run on its loop's queue, so connection state
/// needs no locks. A repeating timer sweeps the loop's connections for expired deadlines (cheaper
/// than re-arming a timer per connection per request).
///
/// Serial queues are "overcommit" in libdispatch: they get a thread even while handler work keeps
/// every core busy, so a slow handler on the (width-limited, concurrent) handler queue does not
/// stall other connections' I/O.
final class IOLoop: @unchecked Sendable {
    let queue: DispatchQueue
    private let tick: Duration
    private var timer: DispatchSourceTimer?
    private var connections: [ObjectIdentifier: Connection] = [:]
    private var dates = DateCache()
    private var rng: SplitMix64

    init(index: Int, tick: Duration) {
        queue = DispatchQueue(label: "http.io.\(index)", qos: .userInitiated)
        self.tick = tick
        rng = SplitMix64(seed: UInt64.random(in: .min ... .max))
    }

    func start() {
        let timer = DispatchSource.makeTimerSource(queue: queue)
        let interval = DispatchTimeInterval.nanoseconds(Int(tick.nanoseconds))
        timer.schedule(deadline: .now() + interval, repeating: interval, leeway: .nanoseconds(Int(tick.nanoseconds / 4)))
        timer.setEventHandler { [unowned self] in sweep() }
        timer.activate()
        self.timer = timer
    }

    /// Stops the sweep; call on `queue`. Connections must be closed already.
    func stop() {
        timer?.cancel()
        timer = nil
    }

    // Everything below runs on `queue`.

    func add(_ connection: Connection) { connections[ObjectIdentifier(connection)] = connection }
    func remove(_ connection: Connection) { connections[ObjectIdentifier(connection)] = nil }
    var all: [Connection] { Array(connections.values) }

    func dateLine() -> [UInt8] { dates.fieldLine() }
    func newRequestID() -> String { RequestID.generate(&rng) }

    private func sweep() {
        let now = MonotonicClock.now()
        for connection in connections.values { connection.checkTimeouts(now: now) }
    }
}

enum MonotonicClock {
    /// Nanoseconds on CLOCK_MONOTONIC.
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}

/// Bytes received but not yet parsed. `recv` writes straight into it and the parser reads it in
/// place; consumed bytes are dropped by moving two indices, and the storage is reused.
struct ReadBuffer {
    private var bytes: [UInt8]
    private var readIndex = 0
    private var writeIndex = 0
    private let initialCapacity: Int

    init(capacity: Int) {
        bytes = [UInt8](repeating: 0, count: capacity)
        initialCapacity = capacity
    }

    var unreadCount: Int { writeIndex - readIndex }

    enum ReceiveResult { case bytes, end, wouldBlock, failed }

    /// One `recv` into the free space.
    mutating func receive(from fd: Int32) -> ReceiveResult {
        if readIndex == writeIndex {
            readIndex = 0
            writeIndex = 0
        } else if bytes.count - writeIndex < 4096 && readIndex > 0 {
            let unread = unreadCount
            bytes.withUnsafeMutableBytes { raw in
                raw.baseAddress!.copyMemory(from: raw.baseAddress! + readIndex, byteCount: unread)
            }
            readIndex = 0
            writeIndex = unread
        }
        if writeIndex == bytes.count {
            // Only an incomplete head can fill the buffer; the parser's limits bound it.
            bytes.append(contentsOf: repeatElement(0, count: bytes.count))
        }
        let start = writeIndex
        let n = bytes.withUnsafeMutableBytes { raw in
            recv(fd, raw.baseAddress! + start, raw.count - start, 0)
        }
        if n > 0 {
            writeIndex += n
            return .bytes
        }
        if n == 0 { return .end }
        let e = errno
        return e == EAGAIN || e == EWOULDBLOCK || e == EINTR ? .wouldBlock : .failed
    }

    func withUnread<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        bytes.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[readIndex..<writeIndex])) }
    }

    mutating func consume(_ count: Int) {
        readIndex += count
        if readIndex == writeIndex {
            readIndex = 0
            writeIndex = 0
            if bytes.count > initialCapacity * 4 { bytes = [UInt8](repeating: 0, count: initialCapacity) }
        }
    }
}

/// Serialized responses waiting for the socket. Reused between responses; shrunk after a large one.
struct WriteBuffer {
    private var bytes: [UInt8] = []
    private var sent = 0

    var pendingCount: Int { bytes.count - sent }

    mutating func append(_ data: [UInt8]) {
        if bytes.isEmpty { bytes = data } else { bytes.append(contentsOf: data) }
    }

    /// Writes what the socket takes. Nil when everything went out, EAGAIN when the socket is full,
    /// another errno when the peer is gone.
    mutating func flush(to fd: Int32, progress: inout Bool) -> Int32? {
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n > 0 {
                sent += n
                progress = true
                continue
            }
            let e = errno
            if n < 0 && e == EINTR { continue }
            if n < 0 && (e == EAGAIN || e == EWOULDBLOCK) { return EAGAIN }
            return n < 0 ? e : EPIPE
        }
        if bytes.capacity > 1 << 20 { bytes = [] } else { bytes.removeAll(keepingCapacity: true) }
        sent = 0
        return nil
    }
}
