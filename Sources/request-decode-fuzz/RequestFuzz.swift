// Fuzzes the service's request decoding (scripts/fuzz-requests.sh): JSON bodies of the three
// endpoints (base64 / data-URI inputs, every option read by RequestFields, query fallbacks) and
// multipart/form-data bodies, as `Service.decode` runs them. Built with `-DREQUEST_FUZZ` and
// `-sanitize=fuzzer,address` it is a libFuzzer target; in a normal build it replays files or
// directories of inputs (a crash reproducer, Tests/Fixtures/request-corpus) through the same checks.
//
// An input is: one mode byte (JSON embeddings / classifications / reconstructions, multipart), a
// first line (the query string "k=v&k=v", or for multipart the boundary), then the body.
import Foundation
import FuzzSupport
@testable import Service

/// Any option of a request body, read the way a handler reads it.
protocol ReadableOption { func read() throws }
extension Field: ReadableOption { func read() throws { _ = try get() } }

/// Every error must be an API error with a 4xx status: the client's fault, answered in the envelope.
func expectClientError(_ error: Error, _ what: String) {
    guard let api = error as? APIError, (400..<500).contains(api.status), !api.message.isEmpty else {
        fatalError("\(what) threw \(type(of: error)) \(error), not a 4xx APIError")
    }
}

/// A JSON body of `Body`, then its inputs decoded and every option read.
func checkJSON<Body: ImageRequest>(_ type: Body.Type, _ request: ServiceRequest) {
    do {
        let body = try ImageInputs.json(Body.self, request)
        for child in Mirror(reflecting: body).children {
            guard let option = child.value as? ReadableOption else { continue }
            do { try option.read() } catch { expectClientError(error, "option \(child.label ?? "?")") }
        }
        switch try body.input.get() {
        case .one(let item): _ = try ImageInputs.decode(item, index: nil)
        case .list(let items): for (i, item) in items.enumerated() { _ = try ImageInputs.decode(item, index: i) }
        case nil: break
        }
    } catch {
        expectClientError(error, "JSON decoding")
    }
}

func checkMultipart(_ request: ServiceRequest) {
    do {
        let (files, fields) = try ImageInputs.multipart(request)
        guard files.reduce(0, { $0 + $1.count }) + fields.values.reduce(0, { $0 + $1.utf8.count }) <= request.body.count * 3 else {
            fatalError("multipart parts add up to more than the body")
        }
        _ = try EmbeddingRequest(fields: RequestFields(strings: fields.merging(request.query) { form, _ in form }))
    } catch {
        expectClientError(error, "multipart decoding")
    }
}

func check(_ bytes: [UInt8]) {
    guard let mode = bytes.first else { return }
    let rest = bytes.dropFirst()
    let newline = rest.firstIndex(of: 10) ?? rest.endIndex
    let line = String(decoding: rest[rest.startIndex..<newline], as: UTF8.self)
    let body = Array(rest[min(newline + 1, rest.endIndex)...])
    switch mode % 4 {
    case 3:
        let request = ServiceRequest(method: "POST", path: "/v1/embeddings",
                                     headers: ["Content-Type": "multipart/form-data; boundary=\(line)"], body: body)
        checkMultipart(request)
    default:
        var query: [String: String] = [:]
        for pair in line.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            query[String(kv[0])] = kv.count > 1 ? String(kv[1]) : ""
        }
        let request = ServiceRequest(method: "POST", path: "/v1/x", query: query, headers: ["Content-Type": "application/json"], body: body)
        switch mode % 4 {
        case 0: checkJSON(EmbeddingRequest.self, request)
        case 1: checkJSON(ClassificationRequest.self, request)
        default: checkJSON(ReconstructionRequest.self, request)
        }
    }
}

#if REQUEST_FUZZ
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    check(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

@_cdecl("request_decode_fuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    FuzzHarness.runDriver(argc, argv, fuzzOneInput)
}
#else
@main
enum Replay {
    static func main() { FuzzHarness.replay(usage: "request-decode-fuzz FILE|DIR...   (replays inputs through the request-decoding checks)", check) }
}
#endif
