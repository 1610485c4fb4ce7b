import Foundation
import Tensor

/// The safetensors file format: an 8-byte little-endian header length, a JSON header mapping each
/// tensor name to {dtype, shape, data_offsets}, then the raw little-endian tensor bytes.
/// Floats (F32, F16, BF16) load as Float32; I64/I32 load as integer arrays.
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
        var range: Range<Int>
    }

    public let entries: [String: Entry]
    public let metadata: [String: String]
    private let bytes: Data
    private let dataStart: Int

    public var names: [String] { entries.keys.sorted() }

    public init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw CheckpointError.unreadable(url.path, error.localizedDescription)
        }
        try self.init(data: data, source: url.path)
    }

    public init(data: Data, source: String = "<memory>") throws {
        guard data.count >= 8 else { throw CheckpointError.malformed(source, "file shorter than its 8-byte header length") }
        var headerLength: UInt64 = 0
        for (i, byte) in data.prefix(8).enumerated() { headerLength |= UInt64(byte) << UInt64(8 * i) }
        guard headerLength <= UInt64(data.count - 8) else {
            throw CheckpointError.malformed(source, "header length \(headerLength) exceeds file size \(data.count)")
        }
        let start = data.startIndex
        let headerData = data[(start + 8)..<(start + 8 + Int(headerLength))]
        guard let json = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any] else {
            throw CheckpointError.malformed(source, "header is not a JSON object")
        }
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        let payload = data.count - 8 - Int(headerLength)
        for (name, value) in json {
            if name == "__metadata__" {
                metadata = (value as? [String: String]) ?? [:]
                continue
            }
            guard let info = value as? [String: Any],
                  let dt = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int],
                  let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
                throw CheckpointError.malformed(source, "tensor \(name): bad header entry")
            }
            guard let dtype = DType(rawValue: dt) else {
                throw CheckpointError.malformed(source, "tensor \(name): unsupported dtype \(dt)")
            }
            let expected = shape.reduce(1, *) * dtype.size
            guard offsets[0] >= 0, offsets[1] <= payload, offsets[1] - offsets[0] == expected else {
                throw CheckpointError.malformed(source, "tensor \(name): offsets \(offsets) do not hold \(shape) \(dt)")
            }
            entries[name] = Entry(dtype: dtype, shape: shape, range: offsets[0]..<offsets[1])
        }
        self.entries = entries
        self.metadata = metadata
        self.bytes = data
        self.dataStart = 8 + Int(headerLength)
    }

    /// The named floating-point tensor as Float32.
    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entries[name] else { throw CheckpointError.missingTensor(name, expected: nil) }
        let n = e.shape.reduce(1, *)
        let base = bytes.startIndex + dataStart
        let raw = bytes[(base + e.range.lowerBound)..<(base + e.range.upperBound)]
        var values = [Float](repeating: 0, count: n)
        raw.withUnsafeBytes { src in
            values.withUnsafeMutableBufferPointer { dst in
                switch e.dtype {
                case .f32:
                    _ = memcpy(dst.baseAddress!, src.baseAddress!, n * 4)
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
        }
        return Tensor(shape: e.shape, data: values)
    }

    /// The named integer tensor (I64 or I32) as Int.
    public func integers(_ name: String) throws -> (shape: [Int], values: [Int]) {
        guard let e = entries[name] else { throw CheckpointError.missingTensor(name, expected: nil) }
        let n = e.shape.reduce(1, *)
        let base = bytes.startIndex + dataStart
        let raw = bytes[(base + e.range.lowerBound)..<(base + e.range.upperBound)]
        let values: [Int] = raw.withUnsafeBytes { src in
            switch e.dtype {
            case .i64: return (0..<n).map { Int(src.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) }
            case .i32: return (0..<n).map { Int(src.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) }
            default: return []
            }
        }
        guard e.dtype == .i64 || e.dtype == .i32 else {
            throw CheckpointError.malformed("tensor \(name)", "expected an integer dtype, found \(e.dtype.rawValue)")
        }
        return (e.shape, values)
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

/// Temp-file-then-rename writes, so a crash never leaves a half-written file under the real name.
public enum AtomicFile {
    public static func write(_ data: Data, to url: URL) throws {
        let dir = url.deletingLastPathComponent()
        let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        do {
            try data.write(to: tmp)
            if rename(tmp.path, url.path) != 0 {
                let reason = String(cString: strerror(errno))
                try? FileManager.default.removeItem(at: tmp)
                throw CheckpointError.unwritable(url.path, reason)
            }
        } catch let e as CheckpointError {
            throw e
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            throw CheckpointError.unwritable(url.path, error.localizedDescription)
        }
    }
}
