import CImageCodecs

/// The formats `ImageDecoder` reads.
public enum ImageFormat: String, Sendable, CaseIterable {
    case png = "PNG"
    case jpeg = "JPEG"

    /// Identifies PNG or JPEG by the file's first bytes; nil for anything else.
    public static func sniff(_ bytes: UnsafeRawBufferPointer) -> ImageFormat? {
        switch ic_sniff(bytes.baseAddress, bytes.count) {
        case IC_FORMAT_PNG: .png
        case IC_FORMAT_JPEG: .jpeg
        default: nil
        }
    }

    /// A short name for bytes that are not PNG or JPEG, for error messages: a known format's name,
    /// "text", or the first bytes in hex.
    static func describeUnsupported(_ bytes: UnsafeRawBufferPointer) -> String {
        func starts(with prefix: String, at offset: Int = 0) -> Bool {
            let magic = Array(prefix.utf8)
            return bytes.count >= offset + magic.count && zip(bytes[offset...], magic).allSatisfy { $0 == $1 }
        }
        if starts(with: "GIF8") { return "GIF" }
        if starts(with: "RIFF") && starts(with: "WEBP", at: 8) { return "WebP" }
        if starts(with: "BM") { return "BMP" }
        if starts(with: "II*\0") || starts(with: "MM\0*") { return "TIFF" }
        if starts(with: "ftypavif", at: 4) { return "AVIF" }
        if starts(with: "ftyphei", at: 4) || starts(with: "ftypmif1", at: 4) { return "HEIF/HEIC" }
        let head = bytes.prefix(64)
        if head.allSatisfy({ (0x20...0x7E).contains($0) || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) {
            return "text, not image data"
        }
        let hex = bytes.prefix(8).map { byte in
            let digits = String(byte, radix: 16, uppercase: true)
            return digits.count == 1 ? "0" + digits : digits
        }
        return "unknown, starts with bytes " + hex.joined(separator: " ")
    }
}
