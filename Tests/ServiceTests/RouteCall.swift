import XCTest
import Foundation
@testable import Service

extension Service {
    /// Sends `request` through the route table, as the HTTP server would (a pattern's `{name}`
    /// segments become the handler's parameters), and waits for the response.
    func respond(to request: ServiceRequest, file: StaticString = #filePath, line: UInt = #line) throws -> ServiceResponse {
        var params: [String: String] = [:]
        let route = try XCTUnwrap(routes.first { r in
            guard r.method == request.method else { return false }
            let pattern = r.pattern.split(separator: "/"), path = request.path.split(separator: "/")
            guard pattern.count == path.count else { return false }
            params = [:]
            for (p, segment) in zip(pattern, path) {
                if p.hasPrefix("{") { params[String(p.dropFirst().dropLast())] = String(segment) } else if p != segment { return false }
            }
            return true
        }, "no route for \(request.method) \(request.path)", file: file, line: line)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: ServiceResponse?
        route.handler(request, params) { result = $0; done.signal() }
        XCTAssertEqual(done.wait(timeout: .now() + 30), .success, "no response within 30 s", file: file, line: line)
        return try XCTUnwrap(result, file: file, line: line)
    }
}
