import Foundation

/// What every fuzz harness shares (scripts/fuzz-*.sh). Built with `-sanitize=fuzzer` and the
/// harness's define, a harness hands control to libFuzzer's driver; in a normal build it replays
/// files or folders of inputs (a crash reproducer, a seed corpus) through the same check.
public enum FuzzHarness {
    /// Every file named on the command line, and every file of a folder named there, through
    /// `check`, in name order; a missing path exits 2.
    public static func replay(usage: String, _ check: ([UInt8]) -> Void) {
        let paths = CommandLine.arguments.dropFirst()
        guard !paths.isEmpty else {
            print("usage: \(usage)")
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

#if HTTP_FUZZ || IMAGE_FUZZ || REQUEST_FUZZ
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

extension FuzzHarness {
    /// libFuzzer's driver with `callback` as the target. SwiftPM links executables with
    /// `--defsym main=<module>_main`, which hides libFuzzer's own `main`, so each harness's
    /// `<module>_main` calls this instead.
    public static func runDriver(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                                 _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt {
        var argc = argc
        var argv = argv
        return LLVMFuzzerRunDriver(&argc, &argv, callback)
    }
}
#endif
