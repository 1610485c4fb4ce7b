import Foundation

/// Random access to the bytes of a safetensors file, so tensors can be read one at a time
/// straight into their destination: loading a model then holds its weights once, not the file
/// and the weights side by side.
protocol ByteSource: Sendable {
    /// Total size in bytes.
    var count: Int { get }
    /// Where the bytes come from, for error messages.
    var origin: String { get }
    /// Copies `range` (which must lie within 0..<count) into `destination`, which holds exactly
    /// `range.count` bytes. Throws when the bytes cannot be read (e.g. the file shrank since it
    /// was opened).
    func read(_ range: Range<Int>, into destination: UnsafeMutableRawBufferPointer) throws
}

extension ByteSource {
    /// `range` as a new byte array (for headers and other small reads).
    func bytes(_ range: Range<Int>) throws -> [UInt8] {
        try [UInt8](unsafeUninitializedCapacity: range.count) { buffer, initialized in
            try read(range, into: UnsafeMutableRawBufferPointer(buffer))
            initialized = range.count
        }
    }
}

/// Bytes already in memory (files built by tests, or received whole).
struct MemoryBytes: ByteSource {
    let data: Data
    let origin: String

    var count: Int { data.count }

    func read(_ range: Range<Int>, into destination: UnsafeMutableRawBufferPointer) throws {
        precondition(range.count == destination.count, "read: \(range.count) bytes into a \(destination.count)-byte buffer")
        let start = data.startIndex
        data.copyBytes(to: destination, from: (start + range.lowerBound)..<(start + range.upperBound))
    }
}

/// An open file read with `pread`: nothing is resident but what the caller asked for, and a file
/// truncated under us is a read error rather than the SIGBUS a memory map would give.
final class FileBytes: ByteSource {
    let origin: String
    let count: Int
    private let descriptor: Int32

    init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CheckpointError.unreadable(path, String(cString: strerror(errno))) }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw CheckpointError.unreadable(path, reason)
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw CheckpointError.unreadable(path, "not a regular file")
        }
        origin = path
        count = Int(status.st_size)
        descriptor = fd
    }

    deinit { close(descriptor) }

    func read(_ range: Range<Int>, into destination: UnsafeMutableRawBufferPointer) throws {
        precondition(range.count == destination.count, "read: \(range.count) bytes into a \(destination.count)-byte buffer")
        var done = 0
        while done < range.count {
            let n = pread(descriptor, destination.baseAddress! + done, range.count - done, off_t(range.lowerBound + done))
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw CheckpointError.unreadable(origin, String(cString: strerror(errno))) }
            if n == 0 {
                throw CheckpointError.malformed(origin, "file ends at byte \(range.lowerBound + done), inside tensor data "
                                                + "that runs to byte \(range.upperBound) (truncated while in use?)")
            }
            done += n
        }
    }
}
