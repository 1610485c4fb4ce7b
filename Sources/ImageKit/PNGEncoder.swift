import CImageCodecs

/// Writes images as 8-bit gray or RGB PNG files.
public enum PNGEncoder {
    public static func encode(_ image: Image) throws(ImageError) -> [UInt8] {
        var buffer = ic_buffer()
        defer { ic_free(buffer.data) }
        let status = image.pixels.withUnsafeBytes { pixels in
            ic_png_encode(pixels.baseAddress, UInt32(image.width), UInt32(image.height),
                          UInt32(image.channels), &buffer)
        }
        switch status {
        case IC_OK: return Array(UnsafeBufferPointer(start: buffer.data, count: buffer.size))
        case IC_NO_MEMORY: throw .outOfMemory(messageString(buffer.message))
        default: throw .encodingFailed(messageString(buffer.message))
        }
    }
}
