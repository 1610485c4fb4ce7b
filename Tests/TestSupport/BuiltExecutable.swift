import Foundation

/// One of the package's executables, as built beside the test bundle by `swift build --build-tests`.
/// A missing executable is a failure, not a skip.
public struct BuiltExecutable {
    public let url: URL

    public struct Missing: Error, CustomStringConvertible { public let description: String }

    public init(_ name: String) throws {
        url = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name)
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw Missing(description: "\(url.path) is not built; run `swift build --build-tests`")
        }
    }

    /// Runs it to completion and returns its exit status and both output streams.
    public func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = url
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }
}
