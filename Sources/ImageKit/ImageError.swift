/// Everything that can go wrong turning bytes into an `Image` or an `Image` into bytes.
public enum ImageError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Zero bytes were given.
    case empty
    /// The bytes are not PNG or JPEG; `detected` names what they look like instead.
    case unsupportedFormat(detected: String)
    /// The file ends before the image does.
    case truncated(String)
    /// The decoder rejected the data.
    case corrupt(String)
    /// A valid file in a colour layout this decoder does not handle.
    case unsupportedColorSpace(String)
    /// The header declares more pixels than allowed; nothing was decoded.
    case tooLarge(width: Int, height: Int, limit: Int)
    case outOfMemory(String)
    case encodingFailed(String)

    public var description: String {
        switch self {
        case .empty:
            return "The image is empty (0 bytes)."
        case .unsupportedFormat(let detected):
            return "Unsupported image format (\(detected)). Accepted formats: PNG, JPEG. "
                + "Convert the image to PNG or JPEG and try again."
        case .truncated(let detail):
            return "The image file is incomplete: \(detail). It was probably cut off during an upload "
                + "or download; use the complete file."
        case .corrupt(let detail):
            return "The image file is damaged and cannot be decoded: \(detail). Re-export or "
                + "re-download the image."
        case .unsupportedColorSpace(let detail):
            return "Unsupported image colour layout: \(detail). Convert the image to an RGB or "
                + "grayscale PNG or JPEG."
        case .tooLarge(let width, let height, let limit):
            return "The image is \(width)x\(height) (\(width * height) pixels), over the limit of "
                + "\(limit) pixels. Downscale it first."
        case .outOfMemory(let detail):
            return "Not enough memory to process the image: \(detail). Try a smaller image."
        case .encodingFailed(let detail):
            return "Could not encode the image: \(detail)."
        }
    }
}
