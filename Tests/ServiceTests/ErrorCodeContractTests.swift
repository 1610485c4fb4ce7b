import XCTest
import Foundation
@testable import Service

/// openapi.yaml's `ErrorCode` enum is the set of codes the server can put in an error body: every
/// code written in Sources/Service and Sources/bootmae-serve, the capability codes of `ModelNeed`,
/// and the per-status code of every error status the HTTP module answers with; and each
/// operation's `x-error-codes` holds only codes of that set.
final class ErrorCodeContractTests: XCTestCase {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized

    func sources(_ folder: String) throws -> [(name: String, text: String)] {
        let dir = root.appendingPathComponent("Sources/\(folder)")
        let files = try XCTUnwrap(FileManager.default.enumerator(at: dir, includingPropertiesForKeys: nil)?.allObjects as? [URL])
        return try files.filter { $0.pathExtension == "swift" }.map { ($0.lastPathComponent, try String(contentsOf: $0, encoding: .utf8)) }
    }

    func matches(_ pattern: String, in text: String) throws -> [[String]] {
        let regex = try NSRegularExpression(pattern: pattern)
        return regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).map { match in
            (1..<match.numberOfRanges).map { String(text[Range(match.range(at: $0), in: text)!]) }
        }
    }

    /// The codes the Service module writes (`code: "x"`, and `code: String = "x"` defaults).
    func serviceCodes() throws -> Set<String> {
        var out = Set([ModelNeed.reconstruct, .tokenize, .classify].map(\.code))
        for folder in ["Service", "bootmae-serve"] {
            for file in try sources(folder) {
                for m in try matches(#"code: (?:String = )?"([a-z0-9_]+)""#, in: file.text) { out.insert(m[0]) }
            }
        }
        return out
    }

    /// The codes of the error statuses the HTTP module names (`.badRequest`, …), through its own
    /// table (ErrorEnvelope.defaultCode).
    func httpCodes() throws -> Set<String> {
        let files = try sources("HTTP")
        let statusFile = try XCTUnwrap(files.first { $0.name == "HTTPStatus.swift" }).text
        let envelope = try XCTUnwrap(files.first { $0.name == "ErrorEnvelope.swift" }).text
        var statusOf: [String: Int] = [:]
        for m in try matches(#"static let `?(\w+)`? = HTTPStatus\((\d+)\)"#, in: statusFile) { statusOf[m[0]] = Int(m[1]) }
        var codeOf: [Int: String] = [:]
        for m in try matches(#"case (\d+): "([a-z_]+)""#, in: envelope) { codeOf[Int(m[0])!] = m[1] }
        XCTAssertGreaterThan(statusOf.count, 20)
        XCTAssertGreaterThan(codeOf.count, 15)
        var out = Set<String>()
        for file in files where !["HTTPStatus.swift", "ErrorEnvelope.swift"].contains(file.name) {
            for m in try matches(#"\.(\w+)\b"#, in: file.text) {
                guard let status = statusOf[m[0]], status >= 400 else { continue }
                out.insert(try XCTUnwrap(codeOf[status], "status \(status) (\(m[0]), \(file.name)) has no code of its own"))
            }
        }
        return out
    }

    func testErrorCodesAreTheContractsEnum() throws {
        let spec = try OpenAPISchemas(root.appendingPathComponent("openapi.yaml"))
        let contract = spec.blockEnumeration("ErrorCode")
        XCTAssertEqual(contract.count, Set(contract).count, "no code listed twice")
        let service = try serviceCodes(), http = try httpCodes()
        XCTAssertTrue(service.contains("invalid_request") && service.contains("model_cannot_tokenize") && service.contains("queue_full"))
        XCTAssertTrue(http.contains("method_not_allowed") && http.contains("bad_request"))
        XCTAssertEqual(Set(contract), service.union(http), "missing: \(service.union(http).subtracting(contract).sorted()); "
                       + "never written: \(Set(contract).subtracting(service.union(http)).sorted())")

        // Each operation lists only codes of the enum; with the HTTP layer's, they cover it.
        var listed = Set<String>()
        for path in ["/v1/embeddings", "/v1/classifications", "/v1/reconstructions", "/v1/tokens", "/v1/models", "/v1/models/{id}",
                     "/v1/models/{id}/load", "/v1/models/{id}/unload", "/openapi.yaml"] {
            let codes = spec.errorCodes(path).values.flatMap { $0 }
            XCTAssertFalse(codes.isEmpty, path)
            XCTAssertTrue(Set(codes).isSubset(of: contract), "\(path): \(Set(codes).subtracting(contract).sorted())")
            listed.formUnion(codes)
        }
        XCTAssertEqual(listed.union(http), Set(contract), "\(Set(contract).subtracting(listed.union(http)).sorted())")
        XCTAssertEqual(Set(spec.errorCodes("/v1/reconstructions")["post"] ?? []).intersection(["model_cannot_reconstruct", "tokenizer_not_loaded"]).count, 2)
    }
}
