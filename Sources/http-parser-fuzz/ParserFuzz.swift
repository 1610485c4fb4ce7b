// Fuzzes the HTTP request parser (scripts/fuzz-http.sh). Built with `-DHTTP_FUZZ` and
// `-sanitize=fuzzer,address` it is a libFuzzer target; in a normal build it replays files or
// directories of inputs (e.g. a crash reproducer or Tests/Fixtures/http-corpus) through the same check.
import Foundation
import FuzzSupport
import HTTP

/// Traps on any broken property, so the fuzzer records the input.
func check(_ bytes: [UInt8]) {
    if let violation = ParserSelfCheck.violation(in: bytes, splitSeed: 0x5EED) {
        fatalError("parser property violated: \(violation)\ninput: \(bytes.map { String(format: "%02x", $0) }.joined())")
    }
}

#if HTTP_FUZZ
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    check(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

@_cdecl("http_parser_fuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    FuzzHarness.runDriver(argc, argv, fuzzOneInput)
}
#else
@main
enum Replay {
    static func main() { FuzzHarness.replay(usage: "http-parser-fuzz FILE|DIR...   (replays inputs through the parser check)", check) }
}
#endif
