import Foundation
import ImageKit

/// Which part of a dataset to read.
public enum DatasetSplit: String, Sendable, Hashable, CaseIterable {
    case train, test
}

/// A random-access collection of images, optionally labeled.
///
/// Implementations are immutable values (safe to share across the loader's threads). Images are
/// returned in their native size and channels; the loader's transforms resize and convert them.
public protocol ImageDataset: Sendable {
    /// Number of samples.
    var count: Int { get }
    /// Class names in label order; empty when the dataset is unlabeled.
    var classes: [String] { get }
    /// The channels a model trained on it takes by default: 1 for Fashion-MNIST's gray IDX
    /// files, 3 for image folders (converted to RGB).
    var channels: Int { get }
    /// The label of sample `index` (an index into `classes`), or nil when unlabeled.
    func label(at index: Int) -> Int?
    /// The image of sample `index`; throws when it cannot be read or decoded.
    func image(at index: Int) throws -> Image
    /// The same for a caller that shrinks it anyway: it may come smaller, down to a shorter side of
    /// `minimumSide` pixels (an ImageFolder's JPEGs, scaled while decoding); by default as `image(at:)`.
    func image(at index: Int, minimumSide: Int) throws -> Image
    /// Where sample `index` comes from (a file path), for error messages.
    func sampleName(at index: Int) -> String
}

extension ImageDataset {
    public func sampleName(at index: Int) -> String { "sample #\(index)" }

    public func image(at index: Int, minimumSide: Int) throws -> Image { try image(at: index) }

    /// Files the dataset found but does not use (not images); see `ImageFolderDataset.ignoredFiles`.
    public var ignoredFiles: [String] { (self as? ImageFolderDataset)?.ignoredFiles ?? (self as? SubsetDataset)?.base.ignoredFiles ?? [] }

    /// How this split was held out of a labelled folder without test/ or val/ (see `HeldOutSplit`); nil otherwise.
    public var heldOut: HeldOutSplit? { (self as? ImageFolderDataset)?.heldOut ?? ((self as? SubsetDataset)?.base as? ImageFolderDataset)?.heldOut }

    /// One line for the log when the dataset left files out, naming a few; nil when it used every file.
    public var ignoredFilesWarning: String? {
        let ignored = ignoredFiles
        guard !ignored.isEmpty else { return nil }
        let names = ignored.prefix(3).map { ($0 as NSString).lastPathComponent }
        var extensions: [String: Int] = [:]
        for file in ignored { extensions[(file as NSString).pathExtension.lowercased(), default: 0] += 1 }
        let kinds = extensions.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(4)
            .map { "\($0.value) \($0.key.isEmpty ? "without extension" : "." + $0.key)" }.joined(separator: ", ")
        return "warning: \(ignored.count) file\(ignored.count == 1 ? " is" : "s are") not PNG/JPEG and not used (\(kinds); e.g. "
            + names.joined(separator: ", ") + (ignored.count > 3 ? ", …" : "") + "); convert them to PNG or JPEG to train on them"
    }

    /// The typical size of the images (median width and height of a few spread over the dataset),
    /// nil when none of them decodes. IDX datasets answer from their header without decoding.
    public func typicalImageSize(probes: Int = 5) -> (width: Int, height: Int)? {
        guard count > 0 else { return nil }
        let picks = Set((0..<min(probes, count)).map { $0 * (count - 1) / max(min(probes, count) - 1, 1) }).sorted()
        let sizes = picks.compactMap { try? image(at: $0) }.map { ($0.width, $0.height) }
        guard !sizes.isEmpty else { return nil }
        return (sizes.map(\.0).sorted()[sizes.count / 2], sizes.map(\.1).sorted()[sizes.count / 2])
    }

    /// The image of sample `index`, or a `DatasetError.unreadableImage` naming the sample.
    /// The batch loader uses this to skip unreadable samples and count them.
    /// `minimumSide` > 0: as `image(at:minimumSide:)`.
    public func loadImage(at index: Int, minimumSide: Int = 0) -> Result<Image, DatasetError> {
        do {
            return .success(try minimumSide > 0 ? image(at: index, minimumSide: minimumSide) : image(at: index))
        } catch let error as DatasetError {
            if case .unreadableImage = error { return .failure(error) }
            return .failure(.unreadableImage(name: sampleName(at: index), reason: error.description))
        } catch {
            return .failure(.unreadableImage(name: sampleName(at: index), reason: "\(error)"))
        }
    }
}

/// Opens datasets by path, recognising the layout.
public enum Datasets {
    /// Opens the `split` of the dataset at `path`:
    /// - a folder holding MNIST-style IDX files (`train-images-idx3-ubyte[.gz]`, `t10k-…` or `test-…`
    ///   for the test split, with the matching `*-labels-idx1-ubyte[.gz]`) → `IDXDataset`;
    /// - otherwise an ImageFolder (class subfolders or a flat folder of PNG/JPEG images, optionally
    ///   under `train/` and `test/` or `val/`; a labelled folder without them holds out `testShare` of each
    ///   class as its test split, `HeldOutSplit`) → `ImageFolderDataset`.
    public static func open(_ path: String, split: DatasetSplit, testShare: Double = HeldOutSplit.defaultShare,
                            maxPixels: Int = ImageDecoder.defaultMaxPixels) throws(DatasetError) -> any ImageDataset {
        let kind = FileSystem.kind(path)
        guard kind != .missing else { throw .notFound(path: path) }
        guard kind == .directory else { throw .notAFolder(path: path) }
        if IDXDataset.holdsIDXFiles(path) {
            return try IDXDataset(directory: path, split: split)
        }
        return try ImageFolderDataset(root: path, split: split, testShare: testShare, maxPixels: maxPixels)
    }
}

/// Small POSIX file helpers that report errno text (Foundation's `contents(atPath:)` only says nil).
enum FileSystem {
    enum Kind { case missing, file, directory }

    static func kind(_ path: String) -> Kind {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return .missing }
        return isDirectory.boolValue ? .directory : .file
    }

    /// Names in a folder (hidden entries excluded), unsorted.
    static func entries(_ path: String) throws(DatasetError) -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: path).filter { !$0.hasPrefix(".") }
        } catch {
            throw .unreadable(path: path, reason: "cannot list the folder")
        }
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    /// The whole file.
    static func readFile(_ path: String) throws(DatasetError) -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .unreadable(path: path, reason: errnoText()) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .unreadable(path: path, reason: errnoText()) }
        if (info.st_mode & S_IFMT) == S_IFDIR { throw .unreadable(path: path, reason: "it is a folder") }
        var bytes = [UInt8]()
        var capacity = max(Int(info.st_size), 0) + 1  // +1: notice growth without an extra read
        var filled = 0
        while true {
            if filled == capacity { capacity *= 2 }
            if bytes.count < capacity { bytes += [UInt8](repeating: 0, count: capacity - bytes.count) }
            let n = bytes.withUnsafeMutableBytes { raw in
                read(fd, raw.baseAddress! + filled, capacity - filled)
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw .unreadable(path: path, reason: errnoText())
            }
            if n == 0 { break }
            filled += n
        }
        bytes.removeLast(bytes.count - filled)
        return bytes
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}

/// Python's sort order for names (code points, i.e. UTF-8 bytes), which torchvision uses.
func pythonOrder(_ a: String, _ b: String) -> Bool {
    a.utf8.lexicographicallyPrecedes(b.utf8)
}
