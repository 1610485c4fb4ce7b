// Fuzzes the HTTP request parser (scripts/fuzz-http.sh). Built with `-DHTTP_FUZZ` and
// `-sanitize=fuzzer,address` it is a libFuzzer target; in a normal build it replays files or
// directories of inputs (e.g. a crash reproducer or Tests/Fixtures/http-corpus) through the same check.
import Foundation
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

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

// SwiftPM links executables with `--defsym main=<module>_main`, which hides libFuzzer's own
// `main`; hand control to libFuzzer's driver from here instead.
@_cdecl("http_parser_fuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzOneInput)
}
#else
@main
enum Replay {
    static func main() {
        let paths = CommandLine.arguments.dropFirst()
        guard !paths.isEmpty else {
            print("usage: http-parser-fuzz FILE|DIR...   (replays inputs through the parser check)")
            exit(2)
        }
        var count = 0
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                print("no such file: \(path)")
                exit(2)
            }
            let files = isDirectory.boolValue
                ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { "\(path)/\($0)" }
                : [path]
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else { continue }
                check(Array(data))
                count += 1
            }
        }
        print("\(count) inputs replayed, all properties hold")
    }
}
#endif
