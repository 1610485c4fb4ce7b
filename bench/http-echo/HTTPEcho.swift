// A trivial server for load-testing the HTTP module (see README.md). Not part of the service.
import Dispatch
import Foundation
import HTTP

@main
enum HTTPEcho {
    static func main() {
        var port = 8089
        var ioQueues = ProcessInfo.processInfo.activeProcessorCount
        var args = CommandLine.arguments.dropFirst().makeIterator()
        while let arg = args.next() {
            switch arg {
            case "--port": port = Int(args.next() ?? "") ?? port
            case "--io-queues": ioQueues = Int(args.next() ?? "") ?? ioQueues
            default:
                print("usage: http-echo [--port N] [--io-queues N]")
                exit(2)
            }
        }
        // Linux Dispatch delivers signal sources through signalfd: block the signals in every
        // thread (threads inherit the mask, so do it first) rather than ignoring them.
        var blocked = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, SIGINT)
        sigaddset(&blocked, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &blocked, nil)

        let server = HTTPServer(configuration: .init(host: "127.0.0.1", port: port, ioQueueCount: ioQueues),
                                router: routes())
        do { try server.start() } catch {
            print("http-echo: \(error)")
            exit(1)
        }
        print("http-echo listening on 127.0.0.1:\(server.port)")
        let signals = drainOnSignals(server)
        withExtendedLifetime(signals) { dispatchMain() }
    }

    /// SIGINT/SIGTERM drain the server, then exit. Nonisolated: a closure made in `main()` would be
    /// main-actor isolated and trap when Dispatch runs it on another thread.
    nonisolated static func drainOnSignals(_ server: HTTPServer) -> [any DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { signo in
            let source = DispatchSource.makeSignalSource(signal: signo, queue: .global())
            source.setEventHandler {
                server.beginDrain(timeout: .seconds(5)) { exit(0) }
            }
            source.activate()
            return source
        }
    }

    /// Nonisolated on purpose: handlers run on Dispatch queues, never on the main actor.
    nonisolated static func routes() -> Router {
        var router = Router()
        // On the handler queue (the default path every service handler takes).
        router.get("/hello") { _ in .text("hello\n") }
        // On the I/O queue: the cheapest possible route.
        router.get("/hello-inline", options: RouteOptions(runsOnIOQueue: true)) { _ in .text("hello\n") }
        router.post("/echo") { request in
            HTTPResponse(headers: ["Content-Type": request.headers["Content-Type"] ?? "application/octet-stream"],
                         body: request.body)
        }
        // Burns CPU for ?ms= milliseconds (default 100) to show that slow handlers don't stall I/O.
        router.get("/spin") { request in
            let ms = Double(request.queryValue("ms") ?? "") ?? 100
            let end = DispatchTime.now().uptimeNanoseconds + UInt64(ms * 1e6)
            var x = 0.0
            while DispatchTime.now().uptimeNanoseconds < end { x += 1 }
            return .text("spun \(Int(x) > 0 ? ms : 0) ms\n")
        }
        return router
    }
}
