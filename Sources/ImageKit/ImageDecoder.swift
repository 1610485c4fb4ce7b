#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import CImageCodecs

/// Decodes PNG and JPEG files into 8-bit gray or RGB images.
///
/// Gray files give 1-channel images, everything else RGB; alpha is dropped and 16-bit samples keep
/// their high byte (what PIL's `Image.open(f).convert('RGB')` yields). The EXIF orientation is
/// applied, as `ImageOps.exif_transpose` does.
public enum ImageDecoder {
    /// 40 megapixels: a 6000x6000 photo decodes, a decompression bomb's header does not.
    public static let defaultMaxPixels = 40_000_000

    public static func decode(_ bytes: [UInt8], maxPixels: Int = defaultMaxPixels,
                              applyOrientation: Bool = true, minimumSide: Int = 0) throws(ImageError) -> Image {
        try bytes.withUnsafeBytes { raw in
            Result { () throws(ImageError) in
                try decode(raw, maxPixels: maxPixels, applyOrientation: applyOrientation, minimumSide: minimumSide)
            }
        }.get()
    }

    public static func decode(_ data: Data, maxPixels: Int = defaultMaxPixels,
                              applyOrientation: Bool = true) throws(ImageError) -> Image {
        try data.withUnsafeBytes { raw in
            Result { () throws(ImageError) in try decode(raw, maxPixels: maxPixels, applyOrientation: applyOrientation) }
        }.get()
    }

    /// `minimumSide` > 0: a JPEG is decoded at 1/2, 1/4 or 1/8 of its size (libjpeg's DCT scaling)
    /// when its shorter side keeps at least that many pixels, for callers that shrink it anyway (a
    /// training crop); PNGs, and JPEGs too small to scale, decode whole. `maxPixels` is the file's own limit.
    public static func decode(_ bytes: UnsafeRawBufferPointer, maxPixels: Int = defaultMaxPixels,
                              applyOrientation: Bool = true, minimumSide: Int = 0) throws(ImageError) -> Image {
        precondition(maxPixels >= 0, "maxPixels must not be negative")
        guard bytes.count > 0 else { throw .empty }
        guard let format = ImageFormat.sniff(bytes) else {
            throw .unsupportedFormat(detected: ImageFormat.describeUnsupported(bytes))
        }

        var result = ic_image()
        defer { ic_free(result.pixels) }
        let status = switch format {
        case .png: ic_png_decode(bytes.baseAddress, bytes.count, UInt64(maxPixels), &result)
        case .jpeg: ic_jpeg_decode_scaled(bytes.baseAddress, bytes.count, UInt64(maxPixels), UInt32(clamping: max(0, minimumSide)), &result)
        }
        let message = messageString(result.message)
        switch status {
        case IC_OK: break
        case IC_TRUNCATED: throw .truncated(message)
        case IC_CORRUPT: throw .corrupt(message)
        case IC_TOO_LARGE: throw .tooLarge(width: Int(result.width), height: Int(result.height), limit: maxPixels)
        case IC_UNSUPPORTED: throw .unsupportedColorSpace(message)
        case IC_NO_MEMORY: throw .outOfMemory(message)
        default: throw .corrupt("\(format.rawValue) decoder failed (status \(status.rawValue)): \(message)")
        }

        let width = Int(result.width), height = Int(result.height), channels = Int(result.channels)
        let source = UnsafeBufferPointer(start: result.pixels, count: width * height * channels)
        let image = Image(width: width, height: height, channels: channels, pixels: Array(source))
        return applyOrientation ? image.applyingEXIFOrientation(Int(result.orientation)) : image
    }
}

/// Reads a NUL-terminated C message buffer (imported as a tuple of CChar).
func messageString<Buffer>(_ buffer: Buffer) -> String {
    withUnsafeBytes(of: buffer) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }
}
