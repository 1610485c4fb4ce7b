import Dispatch
import Foundation
import Glibc
import Synchronization

/// One client connection. Everything here runs on the connection's `IOLoop` queue except
/// `deliver` (any thread) and `isClosed`.
///
/// Requests are read and parsed one after another; each gets a *slot* in arrival order when its
/// head is parsed. Handlers may answer in any order: an answer fills its slot, and the writer only
/// ever sends from the front of the slot queue, so responses go out in request order (pipelining,
/// RFC 9112 §9.3.2). At most `maxPipelinedRequests` slots wait at once; then reading pauses.
///
/// A connection closes after a response marked close (`Connection: close`, HTTP/1.0 without
/// keep-alive, any protocol error, a timeout, a refused body), when the peer closes, on a write
/// error, or when idle. A close after a response is staged: shut down the write side, then read
/// and discard until the peer closes or `lingerTimeout` passes, so unread request bytes do not
/// make the kernel reset the connection and destroy the response.
final class Connection: @unchecked Sendable {
    private let fd: Int32
    let loop: IOLoop
    private let core: ServerCore
    private let remoteAddress: String?
    /// Over the connection limit: answer 503 and close without reading anything.
    private let refused: Bool

    private var readSource: DispatchSourceRead?
    private var writeSource: DispatchSourceWrite?
    private var readSuspended = false
    private var writeSuspended = true
    private var cancelledSources = 0

    private var parser: RequestParser
    private var input: ReadBuffer
    private var output = WriteBuffer()

    private struct Slot {
        let sequence: UInt64
        /// Nil when the request line could not be parsed.
        let method: HTTPMethod?
        var route: String?
        let started: UInt64
        var bytesIn = 0
        let requestID: String
        let isHead: Bool
        let version: HTTPVersion
        /// The client asked to keep the connection; false closes after this response.
        var keepAlive: Bool
        /// Write `100 Continue` when this slot reaches the front.
        var sendContinue = false
        var payload: [UInt8]?
        var status = 0
        /// The request was never completed (peer went away); no response will be written.
        var abandoned = false
    }

    /// A request whose head was parsed and whose body is still arriving.
    private struct Inbound {
        let head: RequestHead
        let sequence: UInt64
        var body = Data()
        /// Nil when the request was already answered at its head (404, 405, 411, ...).
        let handler: (HTTPHandler, RouteOptions, pattern: String, parameters: [String: String])?
    }

    private var slots: [Slot] = []
    private var firstSequence: UInt64 = 0
    private var nextSequence: UInt64 = 0
    private var current: Inbound?

    private enum ReadState { case reading, paused, stopped }
    private var readState = ReadState.reading
    /// No more requests will be read; close once the remaining slots are written.
    private var closeAfterFlush = false
    private var draining = false
    private var lingering = false
    private let closed = Atomic<Bool>(false)
    private var peerClosed = false

    // Deadlines, in monotonic nanoseconds.
    private let acceptedAt: UInt64
    private var receivedAny = false
    /// When the current request's first byte arrived (0: no request bytes pending).
    private var headStart: UInt64 = 0
    private var bodyStart: UInt64 = 0
    private var idleSince: UInt64 = 0
    private var lastWriteProgress: UInt64 = 0
    private var lingerDeadline: UInt64 = 0

    init(fd: Int32, loop: IOLoop, core: ServerCore, remoteAddress: String?, refused: Bool) {
        self.fd = fd
        self.loop = loop
        self.core = core
        self.remoteAddress = remoteAddress
        self.refused = refused
        parser = RequestParser(limits: core.limits)
        input = ReadBuffer(capacity: refused ? 512 : 16 * 1024)
        acceptedAt = MonotonicClock.now()
        // Empty lines before the first request leave the connection idle, and idle counts from the accept.
        idleSince = acceptedAt
    }

    var isClosed: Bool { closed.load(ordering: .acquiring) }

    // MARK: Lifecycle (on the loop queue)

    func start() {
        loop.add(self)
        let read = DispatchSource.makeReadSource(fileDescriptor: fd, queue: loop.queue)
        read.setEventHandler { [unowned self] in readable() }
        read.setCancelHandler { [self] in sourceCancelled() }
        let write = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: loop.queue)
        write.setEventHandler { [unowned self] in writable() }
        write.setCancelHandler { [self] in sourceCancelled() }
        readSource = read
        writeSource = write
        read.activate()

        if refused {
            let slot = newSlot(method: nil, version: .http1_1, keepAlive: false, requestID: loop.newRequestID())
            slots.append(slot)
            stopReading()
            complete(sequence: slot.sequence, response: .error(
                .serviceUnavailable, message: "The server is at its connection limit; retry later.",
                headers: ["Retry-After": "1"]))
        } else if core.isDraining {
            beginDrain()
        }
    }

    /// Stop taking new requests: close now if idle, else after the requests already started.
    func beginDrain() {
        guard !isClosed, !draining else { return }
        draining = true
        if lingering { return }
        if current == nil && parser.isIdle {
            if slots.isEmpty && output.pendingCount == 0 {
                close()
            } else {
                stopReading()
            }
        }
        // Otherwise the request being read finishes first (see `messageEnded`).
    }

    /// Closes without waiting (drain deadline passed, or the server stops).
    func forceClose() { close(reset: true) }

    /// `reset` drops unsent bytes and sends RST (SO_LINGER 0) instead of letting the kernel keep
    /// trickling buffered data to a peer we gave up on.
    private func close(reset: Bool = false) {
        guard closed.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return }
        if reset {
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        }
        // Suspended sources cannot be cancelled; the fd is closed once both cancel handlers ran.
        if readSuspended { readSource?.resume(); readSuspended = false }
        if writeSuspended { writeSource?.resume(); writeSuspended = false }
        readSource?.cancel()
        writeSource?.cancel()
        slots.removeAll()
        current = nil
        loop.remove(self)
        core.connectionClosed(refused: refused)
    }

    private func sourceCancelled() {
        cancelledSources += 1
        if cancelledSources == 2 {
            Glibc.close(fd)
            readSource = nil
            writeSource = nil
        }
    }

    // MARK: Reading

    private func readable() {
        guard !isClosed else { return }
        if lingering {
            discardUntilClosed()
            return
        }
        // Read until the socket has nothing more: libdispatch reports a hang-up (EPOLLHUP, a peer's
        // RST) once and then stops watching the descriptor, so bytes left unread then would never
        // be read, and the connection would hang until the body timeout. At most `receivesPerEvent`
        // reads per turn keep one fast client from starving the others; the rest comes next turn.
        for _ in 0..<Self.receivesPerEvent {
            guard readState == .reading, !isClosed else { return }
            switch input.receive(from: fd) {
            case .bytes:
                receivedAny = true
                if headStart == 0 && current == nil { headStart = MonotonicClock.now() }
                processInput()
            case .end:
                peerFinished()
                return
            case .wouldBlock:
                return
            case .failed:
                close()
                return
            }
        }
        loop.queue.async { [self] in readable() }
    }

    /// recv calls per read event before yielding the loop to other connections.
    static let receivesPerEvent = 64

    /// Parses as far as the buffered bytes allow.
    private func processInput() {
        while readState == .reading && !isClosed {
            if current == nil && slots.count >= core.limits.maxPipelinedRequests {
                pauseReading()
                return
            }
            let reading = current?.sequence
            let (event, consumed) = input.withUnread { bytes in
                let result = parser.parse(bytes)
                if case .body(let range) = result.event, !range.isEmpty, current?.handler != nil {
                    let base = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
                    current!.body.append(base + range.lowerBound, count: range.count)
                }
                return result
            }
            input.consume(consumed)
            if let reading, let i = slotIndex(reading) { slots[i].bytesIn += consumed }
            switch event {
            case .needMore:
                // Only empty lines between requests arrived: that starts no header clock.
                if current == nil && parser.isIdle && input.unreadCount == 0 { headStart = 0 }
                return
            case .head(let head):
                headArrived(head, consumed: consumed)
            case .body:
                continue
            case .end(let trailers):
                messageEnded(trailers: trailers)
            case .error(let error):
                protocolError(error)
                return
            }
        }
    }

    private func headArrived(_ head: RequestHead, consumed: Int) {
        let requestID = RequestID.sanitized(head.headers["X-Request-Id"]) ?? loop.newRequestID()
        var slot = newSlot(method: head.method, version: head.version, keepAlive: head.keepAlive, requestID: requestID)
        slot.bytesIn = consumed
        let hasBody = head.framing != .none && head.framing != .length(0)
        bodyStart = MonotonicClock.now()

        var rejection: HTTPResponse?
        var handler: Inbound? = nil
        switch core.router.match(head.method, path: head.path) {
        case .handler(let h, let options, let pattern, let parameters):
            slot.route = pattern
            let limit = options.maxBodyBytes ?? core.limits.maxBodyBytes
            parser.bodyLimit = limit
            let advice = options.tooLargeAdvice?(head.headers["Content-Type"])
            parser.bodyLimitAdvice = advice
            if options.requiresBody && head.framing == .none {
                rejection = .error(.lengthRequired, message: "This route needs a body with Content-Length or chunked encoding.")
            } else if case .length(let n) = head.framing, n > limit {
                rejection = RequestParser.tooLarge(limit, advice: advice).response
            } else {
                handler = Inbound(head: head, sequence: slot.sequence, handler: (h, options, pattern, parameters))
                if case .length(let n) = head.framing { handler!.body.reserveCapacity(n) }
                slot.sendContinue = head.expectContinue && hasBody
            }
        case .options(let allow, let pattern):
            slot.route = pattern
            rejection = HTTPResponse(status: .noContent, headers: ["Allow": Self.list(allow)])
        case .methodNotAllowed(let allow, let pattern):
            slot.route = pattern
            // Any method the path does not route, known or not, gets 405 with the methods it does
            // (RFC 9110 §15.5.6); 501 would read as a server fault to clients and schema checkers.
            rejection = .error(.methodNotAllowed, message: "Method \(head.method) is not allowed on \(pattern).",
                               headers: ["Allow": Self.list(allow)])
        case .notFound:
            let advice = core.router.notFoundAdvice?(head.path).map { " " + $0 } ?? ""
            rejection = .error(.notFound, message: "No route for \(head.path).\(advice)")
        }

        slots.append(slot)
        if let rejection {
            // A refused request's body is not read: the connection closes after the answer, and
            // with `Expect: 100-continue` no 100 is sent.
            if hasBody {
                slots[slots.count - 1].keepAlive = false
                stopReading()
            } else {
                current = Inbound(head: head, sequence: slot.sequence, handler: nil)
            }
            complete(sequence: slot.sequence, response: rejection)
        } else {
            current = handler
            if slot.sendContinue { flush() }
        }
    }

    private func messageEnded(trailers: HTTPHeaders) {
        guard let inbound = current else { return }
        current = nil
        headStart = input.unreadCount > 0 ? MonotonicClock.now() : 0
        guard let i = slotIndex(inbound.sequence) else { return }
        slots[i].sendContinue = false  // the body is here; no 100 needed any more
        let keepAlive = slots[i].keepAlive
        if !keepAlive || draining {
            slots[i].keepAlive = false
            stopReading()
        }
        if let (handler, options, pattern, parameters) = inbound.handler {
            let request = HTTPRequest(head: inbound.head, body: inbound.body, trailers: trailers,
                                      pathParameters: parameters, requestID: slots[i].requestID,
                                      route: pattern, remoteAddress: remoteAddress)
            let responder = Responder(connection: self, sequence: inbound.sequence, requestID: slots[i].requestID)
            if options.runsOnIOQueue {
                handler(request, responder)
            } else {
                core.handlerQueue.async { handler(request, responder) }
            }
        }
    }

    /// The parser refused the request: answer with its status and close.
    private func protocolError(_ error: HTTPParseError) {
        let sequence: UInt64
        if let inbound = current, let i = slotIndex(inbound.sequence) {
            // The head was fine, the body is not: the error replaces whatever the handler would say.
            sequence = inbound.sequence
            slots[i].keepAlive = false
            slots[i].sendContinue = false
            current = nil
        } else {
            let slot = newSlot(method: nil, version: .http1_1, keepAlive: false, requestID: loop.newRequestID())
            sequence = slot.sequence
            slots.append(slot)
        }
        stopReading()
        complete(sequence: sequence, response: HTTPResponse.error(error.status, message: error.message))
    }

    /// The peer closed its write side. A request cut short is dropped; complete ones are still answered.
    private func peerFinished() {
        peerClosed = true
        if let inbound = current, let i = slotIndex(inbound.sequence) {
            slots[i].abandoned = true
            current = nil
        }
        stopReading()
        flush()
    }

    private func discardUntilClosed() {
        var scratch = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n > 0 { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) { return }
            close()
            return
        }
    }

    private func pauseReading() {
        guard readState == .reading else { return }
        readState = .paused
        suspendRead()
    }

    private func resumeReading() {
        guard readState == .paused, !isClosed else { return }
        readState = .reading
        resumeRead()
        processInput()  // pipelined bytes may already be buffered
    }

    private func stopReading() {
        if readState == .reading { suspendRead() }
        readState = .stopped
        closeAfterFlush = true
    }

    private func suspendRead() {
        if !readSuspended { readSource?.suspend(); readSuspended = true }
    }

    private func resumeRead() {
        if readSuspended { readSource?.resume(); readSuspended = false }
    }

    // MARK: Responses

    /// Any thread: hands a handler's answer to the loop.
    func deliver(sequence: UInt64, response: HTTPResponse) {
        loop.queue.async { [self] in complete(sequence: sequence, response: response) }
    }

    private func complete(sequence: UInt64, response: HTTPResponse) {
        guard !isClosed, let i = slotIndex(sequence), slots[i].payload == nil, !slots[i].abandoned else { return }
        let slot = slots[i]
        let isLast = i == slots.count - 1
        let close = !slot.keepAlive || (isLast && (draining || closeAfterFlush) && current == nil)
        if close { slots[i].keepAlive = false }
        let payload = ResponseSerializer.serialize(response, .init(
            requestID: slot.requestID, isHead: slot.isHead, close: close,
            keepAlive10: !close && slot.version == .http1_0, date: loop.dateLine(), server: core.serverLine))
        slots[i].payload = payload
        slots[i].status = response.status.code
        if let observer = core.observer, !refused {
            observer(RequestObservation(
                method: slot.method, route: slot.route, status: slots[i].status,
                duration: .nanoseconds(Int64(MonotonicClock.now() - slot.started)),
                bytesIn: slot.bytesIn, bytesOut: payload.count, requestID: slot.requestID))
        }
        if i == 0 { flush() }
    }

    /// Moves ready responses from the front of the slot queue to the socket, in order.
    private func flush() {
        while let first = slots.first {
            if first.sendContinue {
                output.append(ResponseSerializer.continue100)
                slots[0].sendContinue = false
            }
            if !first.abandoned {
                guard let payload = first.payload else { break }
                output.append(payload)
            }
            slots.removeFirst()
            firstSequence += 1
            if !first.keepAlive && !first.abandoned {
                closeAfterFlush = true
                slots.removeAll()  // nothing after a closing response is answered
                break
            }
        }
        writeOutput()
    }

    private func writeOutput() {
        guard !isClosed, !lingering else { return }
        var progress = false
        let result = output.flush(to: fd, progress: &progress)
        if progress { lastWriteProgress = MonotonicClock.now() }
        switch result {
        case nil:
            if !writeSuspended { writeSource?.suspend(); writeSuspended = true }
        case EAGAIN:
            if !progress && writeSuspended { lastWriteProgress = MonotonicClock.now() }
            if writeSuspended { writeSource?.resume(); writeSuspended = false }
            return
        default:
            close()
            return
        }
        if slots.isEmpty {
            if closeAfterFlush {
                finish()
                return
            }
            idleSince = MonotonicClock.now()
        }
        if readState == .paused && slots.count < core.limits.maxPipelinedRequests {
            resumeReading()
        }
    }

    private func writable() {
        guard !isClosed else { return }
        writeOutput()
    }

    /// All responses are out and no more requests will be read.
    private func finish() {
        if peerClosed {
            close()
            return
        }
        shutdown(fd, Int32(SHUT_WR))
        lingering = true
        lingerDeadline = MonotonicClock.now() + core.limits.lingerTimeout.nanoseconds
        resumeRead()
        discardUntilClosed()
    }

    // MARK: Timeouts

    func checkTimeouts(now: UInt64) {
        guard !isClosed else { return }
        let limits = core.limits
        if lingering {
            if now >= lingerDeadline { close() }
            return
        }
        if output.pendingCount > 0 && !writeSuspended && now &- lastWriteProgress > limits.writeTimeout.nanoseconds {
            core.logger.debug("resetting a connection whose reader stalled", metadata: ["peer": "\(remoteAddress ?? "?")"])
            close(reset: true)
            return
        }
        guard readState == .reading else { return }
        if current != nil {
            if now &- bodyStart > limits.bodyReadTimeout.nanoseconds {
                timedOut("The request body did not arrive within \(limits.bodyReadTimeout).")
            }
        } else if headStart != 0 {
            if now &- headStart > limits.headerReadTimeout.nanoseconds {
                timedOut("The request head did not arrive within \(limits.headerReadTimeout).")
            }
        } else if !receivedAny {
            // A fresh connection must send its first request within the header timeout.
            if now &- acceptedAt > limits.headerReadTimeout.nanoseconds { close() }
        } else if slots.isEmpty && output.pendingCount == 0 {
            if now &- idleSince > limits.idleTimeout.nanoseconds { close() }
        }
    }

    /// 408 in the envelope (nothing of this request's response was sent yet), then close.
    private func timedOut(_ message: String) {
        protocolError(HTTPParseError(.requestTimeout, message))
    }

    // MARK: Helpers

    private func newSlot(method: HTTPMethod?, version: HTTPVersion, keepAlive: Bool, requestID: String) -> Slot {
        defer { nextSequence += 1 }
        return Slot(sequence: nextSequence, method: method, started: headStart != 0 ? headStart : MonotonicClock.now(),
                    requestID: requestID, isHead: method == .head, version: version, keepAlive: keepAlive)
    }

    private func slotIndex(_ sequence: UInt64) -> Int? {
        guard sequence >= firstSequence else { return nil }
        let i = Int(sequence - firstSequence)
        return i < slots.count ? i : nil
    }

    private static func list(_ methods: [HTTPMethod]) -> String {
        methods.map(\.rawValue).joined(separator: ", ")
    }
}
