import CZlib

/// gunzip in memory with zlib's inflate.
enum Gzip {
    /// True when `bytes` start with the gzip magic number (1F 8B).
    static func isGzip(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B
    }

    /// The decompressed contents of a gzip file (all members, as gunzip does). `path` only names
    /// the file in errors.
    static func decompress(_ input: [UInt8], path: String) throws(DatasetError) -> [UInt8] {
        // ISIZE (the last 4 bytes, little-endian) is the uncompressed size modulo 2^32: a good first
        // guess for the buffer, never trusted.
        var capacity = 4 * input.count + 64
        if input.count >= 18 {
            let n = input.count
            let size = Int(input[n - 4]) | Int(input[n - 3]) << 8 | Int(input[n - 2]) << 16 | Int(input[n - 1]) << 24
            // deflate expands at most ~1032:1, so a larger ISIZE is damage (e.g. a cut-off file).
            if size > 0 && size <= 1032 * input.count { capacity = size + 1 }
        }
        var output = [UInt8](repeating: 0, count: capacity)
        var produced = 0
        var stream = z_stream()
        // 16 + MAX_WBITS: expect a gzip header and trailer.
        guard inflateInit2_(&stream, 16 + 15, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw .gzip(path: path, detail: "zlib could not start (out of memory?)")
        }
        defer { inflateEnd(&stream) }

        var consumed = 0
        var failure: String? = nil
        input.withUnsafeBufferPointer { source in
            while failure == nil {
                if produced == output.count {
                    output += [UInt8](repeating: 0, count: output.count)
                }
                let remainingIn = source.count - consumed, remainingOut = output.count - produced
                // zlib counts in UInt32: feed at most 1 GiB at a time.
                let feedIn = min(remainingIn, 1 << 30), feedOut = min(remainingOut, 1 << 30)
                let status: Int32 = output.withUnsafeMutableBufferPointer { destination in
                    stream.next_in = UnsafeMutablePointer(mutating: source.baseAddress! + consumed)
                    stream.avail_in = UInt32(feedIn)
                    stream.next_out = destination.baseAddress! + produced
                    stream.avail_out = UInt32(feedOut)
                    return inflate(&stream, Z_NO_FLUSH)
                }
                consumed += feedIn - Int(stream.avail_in)
                produced += feedOut - Int(stream.avail_out)
                switch status {
                case Z_OK:
                    continue
                case Z_STREAM_END:
                    // Another gzip member may follow; anything else after the trailer is ignored by
                    // gunzip only if it is zero padding, so treat other bytes as damage.
                    let rest = source[consumed...]
                    if rest.isEmpty || rest.allSatisfy({ $0 == 0 }) { return }
                    if rest.count >= 2 && rest[consumed] == 0x1F && rest[consumed + 1] == 0x8B {
                        _ = inflateReset(&stream)
                        continue
                    }
                    failure = "\(rest.count) bytes of garbage after the compressed data"
                case Z_BUF_ERROR:
                    // No progress possible: out of input before the end of the stream (output space
                    // is always available here).
                    if consumed == source.count {
                        failure = "unexpected end of file (the download was probably cut off)"
                    } else if produced < output.count {
                        failure = "no progress (status Z_BUF_ERROR)"
                    }
                case Z_DATA_ERROR:
                    failure = "corrupt data" + (stream.msg.map { " (\(String(cString: $0)))" } ?? "")
                case Z_MEM_ERROR:
                    failure = "out of memory"
                default:
                    failure = "zlib error \(status)"
                }
            }
        }
        if let failure { throw .gzip(path: path, detail: failure) }
        output.removeLast(output.count - produced)
        return output
    }
}
