import Synchronization

/// Completes one request. Call `send` (or `fail`) exactly once, from any thread, at any time;
/// later calls are ignored. If the responder is released without an answer the client gets a 500,
/// so a handler bug cannot hang a connection.
public final class Responder: Sendable {
    private let connection: Connection
    private let sequence: UInt64
    private let answered = Atomic<Bool>(false)
    /// The request's id (also on the request), for logs.
    public let requestID: String

    init(connection: Connection, sequence: UInt64, requestID: String) {
        self.connection = connection
        self.sequence = sequence
        self.requestID = requestID
    }

    public func send(_ response: HTTPResponse) {
        guard answered.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return }
        connection.deliver(sequence: sequence, response: response)
    }

    /// `HTTPError`s become their own response; anything else a 500 that does not reveal the error text.
    public func fail(_ error: any Error) {
        send(Self.response(for: error))
    }

    /// True once the client is gone: work for this request may be skipped (the answer is dropped).
    public var isCancelled: Bool { connection.isClosed }

    static func response(for error: any Error) -> HTTPResponse {
        if let error = error as? HTTPError { return error.response }
        return .error(.internalServerError, message: "The server failed to handle the request.")
    }

    deinit {
        if !answered.load(ordering: .acquiring) {
            connection.deliver(sequence: sequence,
                               response: .error(.internalServerError, message: "The handler did not respond."))
        }
    }
}
