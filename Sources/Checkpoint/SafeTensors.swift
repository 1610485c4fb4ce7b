import Foundation
import Tensor

/// The safetensors file format: an 8-byte little-endian header length, a JSON header mapping each
/// tensor name to {dtype, shape, data_offsets}, then the raw little-endian tensor bytes.
/// Floats (F32, F16, BF16) load as Float32; I64/I32 load as integer arrays.
///
/// Opening a file reads only its header; each tensor is read from the file when asked for, straight
/// into its destination, so loading a model never holds the file and the weights at once.
public struct SafeTensorsFile: Sendable {
    public enum DType: String, Sendable {
        case f32 = "F32", f16 = "F16", bf16 = "BF16", i64 = "I64", i32 = "I32", f64 = "F64"
        var size: Int {
            switch self {
            case .f32, .i32: return 4
            case .f16, .bf16: return 2
            case .i64, .f64: return 8
            }
        }
    }

    public struct Entry: Sendable {
        public var dtype: DType
        public var shape: [Int]
        /// Byte range within the data section (after the header).
        var range: Range<Int>
        public var count: Int { range.count / dtype.size }
    }

    public let entries: [String: Entry]
    public let metadata: [String: String]
    private let source: any ByteSource
    private let dataStart: Int

    public var names: [String] { entries.keys.sorted() }

    /// Opens `url` and reads its header; tensors are read on demand.
    public init(contentsOf url: URL) throws {
        try self.init(source: FileBytes(path: url.path))
    }

    public init(data: Data, source: String = "<memory>") throws {
        try self.init(source: MemoryBytes(data: data, origin: source))
    }

    private init(source: any ByteSource) throws {
        let headerLength = try Self.headerLength(source)
        let header = try source.bytes(8..<(8 + headerLength))
        let payload = source.count - 8 - headerLength
        (entries, metadata) = try Self.parseHeader(header, payload: payload, origin: source.origin)
        self.source = source
        self.dataStart = 8 + headerLength
    }

    /// The little-endian length of the JSON header, checked against the size of the file.
    private static func headerLength(_ source: any ByteSource) throws -> Int {
        guard source.count >= 8 else { throw CheckpointError.malformed(source.origin, "file shorter than its 8-byte header length") }
        let lengthBytes = try source.bytes(0..<8)
        let length = lengthBytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << UInt64(8 * $1.offset) }
        guard length <= UInt64(source.count - 8) else {
            throw CheckpointError.malformed(source.origin, "header length \(length) exceeds file size \(source.count) "
                                            + "(the file is truncated, e.g. a copy or download cut short, or not safetensors)")
        }
        return Int(length)
    }

    /// Tensor entries and metadata from the JSON header; every entry's bytes must lie within the
    /// `payload` bytes that follow the header and match its dtype and shape exactly.
    private static func parseHeader(_ header: [UInt8], payload: Int, origin: String) throws -> ([String: Entry], [String: String]) {
        guard let json = try? JSONSerialization.jsonObject(with: Data(header)) as? [String: Any] else {
            throw CheckpointError.malformed(origin, "header is not a JSON object")
        }
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in json {
            if name == "__metadata__" {
                metadata = (value as? [String: String]) ?? [:]
                continue
            }
            entries[name] = try entry(name, value, payload: payload, origin: origin)
        }
        return (entries, metadata)
    }

    private static func entry(_ name: String, _ value: Any, payload: Int, origin: String) throws -> Entry {
        guard let info = value as? [String: Any],
              let dt = info["dtype"] as? String,
              let shape = info["shape"] as? [Int],
              let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
            throw CheckpointError.malformed(origin, "tensor \(name): bad header entry")
        }
        guard let dtype = DType(rawValue: dt) else {
            throw CheckpointError.malformed(origin, "tensor \(name): unsupported dtype \(dt)")
        }
        if offsets[1] > payload, offsets[0] >= 0, offsets[0] <= offsets[1] {
            throw CheckpointError.malformed(origin, "the file is truncated: tensor \(name) ends at byte \(offsets[1]) of the data, "
                                            + "which holds only \(payload) bytes (a copy or download cut short?)")
        }
        guard let expected = byteCount(shape: shape, elementSize: dtype.size),
              offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= payload, offsets[1] - offsets[0] == expected else {
            throw CheckpointError.malformed(origin, "tensor \(name): offsets \(offsets) do not hold \(shape) \(dt)")
        }
        return Entry(dtype: dtype, shape: shape, range: offsets[0]..<offsets[1])
    }

    /// Bytes of a tensor of `shape`; nil for negative dimensions or a size that overflows.
    private static func byteCount(shape: [Int], elementSize: Int) -> Int? {
        var total = elementSize
        for dim in shape {
            guard dim >= 0 else { return nil }
            let (product, overflow) = total.multipliedReportingOverflow(by: dim)
            if overflow { return nil }
            total = product
        }
        return total
    }

    // MARK: Reading tensors

    /// The named floating-point tensor as Float32.
    public func tensor(_ name: String) throws -> Tensor {
        let e = try entry(name)
        let values = try [Float](unsafeUninitializedCapacity: e.count) { buffer, initialized in
            try read(name, into: buffer)
            initialized = e.count
        }
        return Tensor(shape: e.shape, data: values)
    }

    /// Reads the named tensor as Float32 into `destination`, which must hold exactly its elements:
    /// a model's parameters are filled in place, with no second copy of the weights.
    public func read(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws {
        let e = try entry(name)
        precondition(destination.count == e.count, "read \(name): \(e.count) elements into a buffer of \(destination.count)")
        guard let base = destination.baseAddress else { return }
        let start = dataStart + e.range.lowerBound
        if e.dtype == .f32 {
            try source.read(start..<(start + e.range.count), into: UnsafeMutableRawBufferPointer(destination))
            return
        }
        // Other dtypes pass through a small buffer, converted a chunk at a time.
        let chunk = max(1, Self.conversionChunkBytes / e.dtype.size)
        let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk * e.dtype.size, alignment: 8)
        defer { raw.deallocate() }
        for first in stride(from: 0, to: e.count, by: chunk) {
            let n = min(chunk, e.count - first)
            let bytes = UnsafeMutableRawBufferPointer(rebasing: raw[0..<(n * e.dtype.size)])
            let offset = start + first * e.dtype.size
            try source.read(offset..<(offset + bytes.count), into: bytes)
            Self.convert(UnsafeRawBufferPointer(bytes), from: e.dtype, into: base + first, count: n)
        }
    }

    /// Bytes converted per step for dtypes other than F32 (the scratch buffer stays in cache).
    static let conversionChunkBytes = 1 << 18

    /// Little-endian elements of `dtype` → Float32.
    static func convert(_ src: UnsafeRawBufferPointer, from dtype: DType, into dst: UnsafeMutablePointer<Float>, count n: Int) {
        switch dtype {
        case .f32:
            for i in 0..<n { dst[i] = src.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) }
        case .f16:
            for i in 0..<n { dst[i] = Float(Float16(bitPattern: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .bf16:
            for i in 0..<n { dst[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16) }
        case .f64:
            for i in 0..<n { dst[i] = Float(src.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
        case .i64:
            for i in 0..<n { dst[i] = Float(src.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)) }
        case .i32:
            for i in 0..<n { dst[i] = Float(src.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)) }
        }
    }

    /// The named integer tensor (I64 or I32) as Int.
    public func integers(_ name: String) throws -> (shape: [Int], values: [Int]) {
        let e = try entry(name)
        guard e.dtype == .i64 || e.dtype == .i32 else {
            throw CheckpointError.malformed("tensor \(name)", "expected an integer dtype, found \(e.dtype.rawValue)")
        }
        let start = dataStart + e.range.lowerBound
        let raw = try source.bytes(start..<(start + e.range.count))
        let values: [Int] = raw.withUnsafeBytes { src in
            (0..<e.count).map { i in
                e.dtype == .i64 ? Int(src.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))
                                : Int(src.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))
            }
        }
        return (e.shape, values)
    }

    private func entry(_ name: String) throws -> Entry {
        guard let e = entries[name] else { throw CheckpointError.missingTensor(name, expected: nil) }
        return e
    }
}

/// Writes safetensors files: tensors in name order, F32 (or F16 for smaller served models).
public enum SafeTensorsWriter {
    public static func encode(_ tensors: [(String, Tensor)], metadata: [String: String] = [:],
                              dtype: SafeTensorsFile.DType = .f32) -> Data {
        precondition(dtype == .f32 || dtype == .f16, "writer supports F32 and F16")
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let sorted = tensors.sorted { $0.0 < $1.0 }
        for (name, t) in sorted {
            let size = t.count * dtype.size
            header[name] = ["dtype": dtype.rawValue, "shape": t.shape, "data_offsets": [offset, offset + size]] as [String: Any]
            offset += size
        }
        var headerBytes = try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad with spaces so the tensor data starts 8-byte aligned (allowed by the format).
        while (headerBytes.count + 8) % 8 != 0 { headerBytes.append(0x20) }
        var out = Data(capacity: 8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(headerBytes)
        for (_, t) in sorted {
            switch dtype {
            case .f16:
                let halves = t.data.map { Float16($0).bitPattern }
                halves.withUnsafeBytes { out.append(contentsOf: $0) }
            default:
                t.data.withUnsafeBytes { out.append(contentsOf: $0) }
            }
        }
        return out
    }

    /// Writes atomically: a temporary file in the same folder, then rename over the target.
    public static func write(_ tensors: [(String, Tensor)], to url: URL, metadata: [String: String] = [:],
                             dtype: SafeTensorsFile.DType = .f32) throws {
        try AtomicFile.write(encode(tensors, metadata: metadata, dtype: dtype), to: url)
    }
}

/// Temp-file-then-rename writes, so a crash never leaves a half-written file under the real name:
/// the bytes go to a hidden temporary file in the same folder (`.<name>.tmp-<pid>-<random>`), which
/// is flushed to the disk (fsync) before it is renamed over the target, and the folder after, so a
/// power cut leaves the old file or the new one. A failed write (a full disk, say) removes the
/// temporary file and leaves the target as it was.
public enum AtomicFile {
    /// The prefix of this process's temporary files for `name` (other processes' end in their pid).
    public static func temporaryPrefix(for name: String) -> String { ".\(name).tmp-" }

    public static func write(_ data: Data, to url: URL) throws {
        let dir = url.deletingLastPathComponent()
        let tmp = dir.appendingPathComponent(temporaryPrefix(for: url.lastPathComponent) + "\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        func failure(_ what: String) -> CheckpointError {
            let reason = String(cString: strerror(errno))
            unlink(tmp.path)
            let kept = FileManager.default.fileExists(atPath: url.path) ? "; the previous \(url.lastPathComponent) is intact" : ""
            return CheckpointError.unwritable(url.path, "\(what): \(reason)\(kept)")
        }
        let fd = open(tmp.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("cannot create a temporary file in \(dir.path)") }
        let written: Bool = data.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = posixWrite(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return false }
                done += n
            }
            return true
        }
        guard written, fsync(fd) == 0 else {
            let error = failure("writing \(data.count) bytes failed")
            close(fd)
            throw error
        }
        guard close(fd) == 0 else { throw failure("writing \(data.count) bytes failed") }
        guard rename(tmp.path, url.path) == 0 else { throw failure("cannot rename the temporary file into place") }
        // The rename itself reaches the disk with the folder's entry (best effort: some file systems refuse).
        let dirFD = open(dir.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 { _ = fsync(dirFD); close(dirFD) }
    }

    /// Removes the temporary files that processes killed mid-write left in `folder` (names starting
    /// with `.<name>.tmp-`). Only for a folder no other process writes in (a locked run folder).
    public static func removeLeftovers(in folder: URL) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return }
        for name in names where name.hasPrefix(".") && name.contains(".tmp-") {
            try? FileManager.default.removeItem(at: folder.appendingPathComponent(name))
        }
    }
}

/// POSIX write(2), named apart from `AtomicFile.write`.
private func posixWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int { write(fd, bytes, count) }
