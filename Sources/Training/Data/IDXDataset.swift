import Foundation
import ImageKit

/// An MNIST-style dataset: an IDX images file (magic 0x00000803: unsigned bytes, 3 dimensions
/// count × rows × columns) and an IDX labels file (0x00000801: unsigned bytes, 1 dimension), plain or
/// gzipped. All pixels are decoded once into one byte buffer; `image(at:)` copies one image out.
public struct IDXDataset: ImageDataset {
    public static let imagesMagic: UInt32 = 0x0000_0803
    public static let labelsMagic: UInt32 = 0x0000_0801
    /// Fashion-MNIST's class names, in label order.
    public static let fashionMNISTClasses = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

    public let count: Int
    public let width: Int
    public let height: Int
    public let classes: [String]
    public var channels: Int { 1 }
    /// count × height × width bytes, image after image, row-major.
    public let pixels: [UInt8]
    public let labels: [UInt8]
    public let imagesPath: String
    public let labelsPath: String

    /// Reads an images file and its labels file. Class names come from `classes`, else a
    /// `classes.txt` next to the images file (one name per line, in label order), else the
    /// Fashion-MNIST names when the path contains "fashion", else "0", "1", ….
    public init(images imagesPath: String, labels labelsPath: String, classes: [String]? = nil) throws(DatasetError) {
        let (pixels, count, height, width) = try IDXDataset.parseImages(try IDXDataset.load(imagesPath), path: imagesPath)
        let labels = try IDXDataset.parseLabels(try IDXDataset.load(labelsPath), path: labelsPath)
        guard labels.count == count else {
            throw .idxCountMismatch(images: imagesPath, imageCount: count, labels: labelsPath, labelCount: labels.count)
        }
        let maxLabel = Int(labels.max() ?? 0)
        let names: [String]
        if let classes {
            names = classes
        } else {
            let directory = String(imagesPath[..<(imagesPath.lastIndex(of: "/") ?? imagesPath.startIndex)])
            let listPath = FileSystem.join(directory.isEmpty ? "." : directory, "classes.txt")
            if FileSystem.kind(listPath) == .file {
                names = try IDXDataset.readClassList(listPath)
            } else if imagesPath.lowercased().contains("fashion") {
                names = IDXDataset.fashionMNISTClasses
            } else {
                names = (0...max(maxLabel, 9)).map(String.init)
            }
        }
        guard maxLabel < names.count else {
            throw .labelOutOfRange(path: labelsPath, label: maxLabel, classCount: names.count)
        }
        self.count = count
        self.height = height
        self.width = width
        self.pixels = pixels
        self.labels = labels
        self.classes = names
        self.imagesPath = imagesPath
        self.labelsPath = labelsPath
    }

    /// The `split` of an IDX folder: `train-images-idx3-ubyte[.gz]` for train, `t10k-…` or `test-…`
    /// for test (the `.idx3-ubyte` spelling is accepted too), with the matching labels file.
    public init(directory: String, split: DatasetSplit, classes: [String]? = nil) throws(DatasetError) {
        let names = try FileSystem.entries(directory)
        let prefixes = split == .train ? ["train"] : ["t10k", "test"]
        func find(_ kind: String, _ idx: String) -> String? {
            for prefix in prefixes {
                for separator in ["-", "."] {
                    let base = "\(prefix)-\(kind)\(separator)\(idx)-ubyte"
                    for name in [base, base + ".gz"] where names.contains(name) {
                        return FileSystem.join(directory, name)
                    }
                }
            }
            return nil
        }
        let expected = "\(prefixes[0])-images-idx3-ubyte[.gz] and \(prefixes[0])-labels-idx1-ubyte[.gz] in \(directory)"
        guard let images = find("images", "idx3") else { throw .splitNotFound(path: directory, split: split, expected: expected) }
        guard let labels = find("labels", "idx1") else { throw .splitNotFound(path: directory, split: split, expected: expected) }
        try self.init(images: images, labels: labels, classes: classes)
    }

    /// True when `directory` holds an IDX images file (any split).
    static func holdsIDXFiles(_ directory: String) -> Bool {
        guard let names = try? FileSystem.entries(directory) else { return false }
        return names.contains { name in
            let plain = name.hasSuffix(".gz") ? String(name.dropLast(3)) : name
            return plain.hasSuffix("-images-idx3-ubyte") || plain.hasSuffix("-images.idx3-ubyte")
        }
    }

    public func label(at index: Int) -> Int? { Int(labels[index]) }

    public func image(at index: Int) throws(DatasetError) -> Image {
        precondition(index >= 0 && index < count, "IDXDataset: index \(index) out of range 0..<\(count)")
        let size = width * height, start = index * size
        return pixels.withUnsafeBufferPointer { source in
            Image(width: width, height: height, channels: 1) { output in
                _ = output.update(fromContentsOf: source[start..<(start + size)])
            }
        }
    }

    public func sampleName(at index: Int) -> String { "\(imagesPath) image #\(index)" }

    // MARK: - Parsing

    /// The file's bytes, gunzipped when they start with the gzip magic number.
    static func load(_ path: String) throws(DatasetError) -> [UInt8] {
        let raw = try FileSystem.readFile(path)
        return Gzip.isGzip(raw) ? try Gzip.decompress(raw, path: path) : raw
    }

    /// Pixels, count, rows, columns of an idx3-ubyte file's contents.
    static func parseImages(_ bytes: [UInt8], path: String) throws(DatasetError)
        -> (pixels: [UInt8], count: Int, height: Int, width: Int)
    {
        let dims = try header(bytes, magic: imagesMagic, dimensions: 3, path: path)
        let (count, height, width) = (dims[0], dims[1], dims[2])
        guard height > 0 && width > 0 && height <= 1 << 14 && width <= 1 << 14 else {
            throw .idxBadDimensions(path: path, detail: "image size \(width)x\(height) (rows x columns must be 1…16384)")
        }
        let (size, overflow) = count.multipliedReportingOverflow(by: height * width)
        guard !overflow else { throw .idxBadDimensions(path: path, detail: "\(count) images of \(width)x\(height) is too many bytes") }
        let data = try payload(bytes, headerBytes: 16, expected: size, path: path)
        return (data, count, height, width)
    }

    /// The labels of an idx1-ubyte file's contents.
    static func parseLabels(_ bytes: [UInt8], path: String) throws(DatasetError) -> [UInt8] {
        let dims = try header(bytes, magic: labelsMagic, dimensions: 1, path: path)
        return try payload(bytes, headerBytes: 8, expected: dims[0], path: path)
    }

    /// Checks the magic number and returns the big-endian dimension sizes.
    private static func header(_ bytes: [UInt8], magic: UInt32, dimensions: Int, path: String) throws(DatasetError) -> [Int] {
        func word(_ offset: Int) -> UInt32 {
            UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
        }
        let headerBytes = 4 + 4 * dimensions
        guard bytes.count >= 4 else {
            throw .idxTruncated(path: path, expectedBytes: headerBytes, actualBytes: bytes.count)
        }
        guard word(0) == magic else { throw .idxBadMagic(path: path, found: word(0), expected: magic) }
        guard bytes.count >= headerBytes else {
            throw .idxTruncated(path: path, expectedBytes: headerBytes, actualBytes: bytes.count)
        }
        return (0..<dimensions).map { Int(word(4 + 4 * $0)) }
    }

    private static func payload(_ bytes: [UInt8], headerBytes: Int, expected: Int, path: String) throws(DatasetError) -> [UInt8] {
        let total = headerBytes + expected
        guard bytes.count >= total else { throw .idxTruncated(path: path, expectedBytes: total, actualBytes: bytes.count) }
        guard bytes.count == total else { throw .idxTrailingBytes(path: path, expectedBytes: total, actualBytes: bytes.count) }
        return Array(bytes[headerBytes...])
    }

    static func readClassList(_ path: String) throws(DatasetError) -> [String] {
        let text = String(decoding: try FileSystem.readFile(path), as: UTF8.self)
        let names = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !names.isEmpty else { throw .badClassList(path: path, detail: "the file lists no class names") }
        guard Set(names).count == names.count else { throw .badClassList(path: path, detail: "a class name is listed twice") }
        return names
    }
}
