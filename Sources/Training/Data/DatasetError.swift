/// Everything that can go wrong opening a dataset or loading its samples. Every message says what
/// was expected, so the CLI can print it as is.
public enum DatasetError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The path does not exist.
    case notFound(path: String)
    /// The path exists but is not a folder.
    case notAFolder(path: String)
    /// A file or folder could not be read (permissions, I/O error).
    case unreadable(path: String, reason: String)
    /// The folder holds neither IDX files nor images.
    case noImages(path: String)
    /// An ImageFolder class folder holds no image files.
    case emptyClassFolders(path: String, classes: [String])
    /// A test split's class folder that the train split does not have.
    case unknownClasses(path: String, unknown: [String], known: [String])
    /// The dataset has no folder (or files) for the requested split.
    case splitNotFound(path: String, split: DatasetSplit, expected: String)
    /// An IDX file does not start with the expected magic number.
    case idxBadMagic(path: String, found: UInt32, expected: UInt32)
    /// An IDX header declares impossible dimensions.
    case idxBadDimensions(path: String, detail: String)
    /// An IDX file is shorter than its header says.
    case idxTruncated(path: String, expectedBytes: Int, actualBytes: Int)
    /// An IDX file is longer than its header says.
    case idxTrailingBytes(path: String, expectedBytes: Int, actualBytes: Int)
    /// The images and labels files disagree on the number of samples.
    case idxCountMismatch(images: String, imageCount: Int, labels: String, labelCount: Int)
    /// A label is not an index into the class names.
    case labelOutOfRange(path: String, label: Int, classCount: Int)
    /// A gzip stream is damaged or cut off.
    case gzip(path: String, detail: String)
    /// A classes.txt file does not match the labels.
    case badClassList(path: String, detail: String)
    /// One sample's image could not be read or decoded.
    case unreadableImage(name: String, reason: String)
    /// More samples failed to load than the loader tolerates.
    case tooManyUnreadable(skipped: Int, allowed: Int, total: Int, example: String, reason: String)

    public var description: String {
        switch self {
        case .notFound(let path):
            return "Dataset path \(path) does not exist. Give a folder holding MNIST-style IDX files "
                + "(*-images-idx3-ubyte[.gz]) or images (class subfolders or a flat folder of PNG/JPEG)."
        case .notAFolder(let path):
            return "Dataset path \(path) is a file; give the folder that contains it."
        case .unreadable(let path, let reason):
            return "Cannot read \(path): \(reason)."
        case .noImages(let path):
            return "No dataset found in \(path): expected MNIST-style IDX files (*-images-idx3-ubyte[.gz] with "
                + "*-labels-idx1-ubyte[.gz]), class subfolders of PNG/JPEG images (root/<class>/<image>), "
                + "a flat folder of PNG/JPEG images, or train/ and test/ (or val/) folders of those."
        case .emptyClassFolders(let path, let classes):
            return "\(path): the class folder(s) \(abbreviated(classes)) contain no PNG/JPEG images. "
                + "Add images or remove the empty folders."
        case .unknownClasses(let path, let unknown, let known):
            return "\(path): the class folder(s) \(abbreviated(unknown)) are not classes of the train split (\(abbreviated(known))). "
                + "Rename them to match, or remove them."
        case .splitNotFound(let path, let split, let expected):
            return "\(path) has no \(split) split: expected \(expected)."
        case .idxBadMagic(let path, let found, let expected):
            return "\(path) is not an IDX file of the expected kind: magic number 0x\(hex(found)), expected "
                + "0x\(hex(expected)) (\(expected == IDXDataset.imagesMagic ? "unsigned-byte images, 3 dimensions" : "unsigned-byte labels, 1 dimension")). "
                + "The file may be damaged or not an MNIST-style file."
        case .idxBadDimensions(let path, let detail):
            return "\(path): invalid IDX header: \(detail)."
        case .idxTruncated(let path, let expected, let actual):
            return "\(path) is truncated: its header declares \(expected) bytes, the file has \(actual). "
                + "Download it again."
        case .idxTrailingBytes(let path, let expected, let actual):
            return "\(path) has \(actual - expected) bytes after the \(expected) its header declares; "
                + "the file is damaged or not an IDX file."
        case .idxCountMismatch(let images, let imageCount, let labels, let labelCount):
            return "\(images) holds \(imageCount) images but \(labels) holds \(labelCount) labels; "
                + "the two files must come from the same split."
        case .labelOutOfRange(let path, let label, let classCount):
            return "\(path): label \(label) is out of range for \(classCount) classes."
        case .gzip(let path, let detail):
            return "\(path): cannot gunzip: \(detail). The file is damaged or incomplete; download it again."
        case .badClassList(let path, let detail):
            return "\(path): \(detail). classes.txt lists one class name per line, in label order."
        case .unreadableImage(let name, let reason):
            return "Cannot load \(name): \(reason)"
        case .tooManyUnreadable(let skipped, let allowed, let total, let example, let reason):
            let sentence = reason.hasSuffix(".") ? reason : reason + "."
            return "\(skipped) of the \(total) samples could not be loaded, more than the \(allowed) the loader skips "
                + "(1% of the samples, and at least \(BatchLoader.minimumSkips) when there are \(2 * BatchLoader.minimumSkips + 1) or more). "
                + "For example \(example): \(sentence) Fix or remove the unreadable files."
        }
    }
}

/// At most `limit` names, then an ellipsis (for messages).
func abbreviated(_ names: [String], limit: Int = 5) -> String {
    names.prefix(limit).joined(separator: ", ") + (names.count > limit ? ", …" : "")
}

private func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}
