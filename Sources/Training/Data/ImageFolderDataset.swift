import Foundation
import ImageKit

/// Images in files, in torchvision's `ImageFolder` layout `root/<class>/<image>` (classes sorted by
/// name, each class folder walked recursively, files sorted), or a flat folder of images without
/// labels (for pretraining). Files are PNG or JPEG (`.png`, `.jpg`, `.jpeg`, any case), decoded
/// lazily with ImageKit.
///
/// Splits: when the root has a `train/` folder, the train split is `root/train` and the test split
/// `root/test` (or `root/val`). Otherwise the whole root is the train split and there is no test split.
/// The test split's class folders are labelled by name with the train split's classes, so a test
/// split may hold fewer classes than the train split; one the train split lacks is an error.
///
/// Images are used as RGB (3 channels), whatever each file holds, as torchvision's `ImageFolder`
/// loader converts them: the channel count of a model never depends on which file sorts first.
/// Grayscale training asks for it (`pretrain --channels 1`).
public struct ImageFolderDataset: ImageDataset {
    public static let imageExtensions: Set<String> = ["png", "jpg", "jpeg"]

    /// The folder the samples were listed from (the split folder).
    public let root: String
    /// Full paths of the image files, in sample order.
    public let files: [String]
    /// Label of each file (indices into `classes`); empty when unlabeled.
    public let labels: [Int]
    public let classes: [String]
    /// Always 3: images are converted to RGB (see the type's documentation).
    public let channels = 3
    /// Images with more pixels are rejected before decoding.
    public let maxPixels: Int
    /// Files in the split's folders that are not PNG/JPEG images (by extension: `.gif`, `.txt`, ...),
    /// so not used; hidden files (`.DS_Store`) are not counted.
    public let ignoredFiles: [String]

    public var count: Int { files.count }

    /// The `split` of the dataset at `root` (see the type's documentation for the layouts).
    public init(root: String, split: DatasetSplit, maxPixels: Int = ImageDecoder.defaultMaxPixels) throws(DatasetError) {
        switch FileSystem.kind(root) {
        case .missing: throw .notFound(path: root)
        case .file: throw .notAFolder(path: root)
        case .directory: break
        }
        let train = FileSystem.join(root, "train")
        let hasSplits = FileSystem.kind(train) == .directory
        let folder: String
        switch (split, hasSplits) {
        case (.train, true):
            folder = train
        case (.train, false):
            folder = root
        case (.test, true):
            let candidates = ["test", "val"].map { FileSystem.join(root, $0) }
            guard let found = candidates.first(where: { FileSystem.kind($0) == .directory }) else {
                throw .splitNotFound(path: root, split: .test,
                                     expected: "a test/ or val/ folder next to \(train)")
            }
            folder = found
            let trainClasses = ImageFolderDataset.folders(among: try FileSystem.entries(train).sorted(by: pythonOrder), in: train)
            try self.init(directory: folder, classes: trainClasses.isEmpty ? nil : trainClasses, maxPixels: maxPixels)
            return
        case (.test, false):
            throw .splitNotFound(path: root, split: .test,
                                 expected: "train/ and test/ (or val/) subfolders; this folder has none, so all of it is the train split")
        }
        try self.init(directory: folder, maxPixels: maxPixels)
    }

    /// All of `directory` as one dataset: labeled when it has subfolders (ImageFolder; image files
    /// directly in `directory` are then ignored, as torchvision does), unlabeled when it only holds
    /// image files. With `classes` (another split's class list), each subfolder is labelled with
    /// its name's index in that list, and a subfolder named otherwise is an error.
    public init(directory: String, classes knownClasses: [String]? = nil,
                maxPixels: Int = ImageDecoder.defaultMaxPixels) throws(DatasetError) {
        switch FileSystem.kind(directory) {
        case .missing: throw .notFound(path: directory)
        case .file: throw .notAFolder(path: directory)
        case .directory: break
        }
        let entries = try FileSystem.entries(directory).sorted(by: pythonOrder)
        let subfolders = ImageFolderDataset.folders(among: entries, in: directory)
        if let knownClasses {
            let unknown = subfolders.filter { !knownClasses.contains($0) }
            if !unknown.isEmpty { throw .unknownClasses(path: directory, unknown: unknown, known: knownClasses) }
        }
        var files: [String] = []
        var labels: [Int] = []
        var ignored: [String] = []
        let plainFiles = entries.filter { FileSystem.kind(FileSystem.join(directory, $0)) == .file }
        let flatFiles = plainFiles.filter(ImageFolderDataset.isImageFile).map { FileSystem.join(directory, $0) }
        let flatIgnored = plainFiles.filter { !ImageFolderDataset.isImageFile($0) }.map { FileSystem.join(directory, $0) }
        if subfolders.isEmpty {
            files = flatFiles
        } else {
            var empty: [String] = []
            for (position, name) in subfolders.enumerated() {
                let label = knownClasses?.firstIndex(of: name) ?? position
                let found = try ImageFolderDataset.imageFiles(under: FileSystem.join(directory, name), ignored: &ignored)
                if found.isEmpty { empty.append(name) }
                files += found
                labels += [Int](repeating: label, count: found.count)
            }
            if !empty.isEmpty && empty.count < subfolders.count {
                throw .emptyClassFolders(path: directory, classes: empty)
            }
        }
        // Subfolders without any images next to image files: a flat folder with stray subfolders.
        let labeled = !files.isEmpty
        if !labeled { files = flatFiles; labels = []; ignored = [] }
        // Loose files beside class folders are ignored as torchvision does; only stray non-images
        // among the samples' own files are worth a word.
        if subfolders.isEmpty || !labeled { ignored += flatIgnored }
        guard !files.isEmpty else { throw .noImages(path: directory) }
        self.root = directory
        self.files = files
        self.ignoredFiles = ignored
        self.labels = labels
        self.classes = labeled ? (knownClasses ?? subfolders) : []
        self.maxPixels = maxPixels
    }

    /// The subfolders among a folder's sorted `entries`: the class names of an ImageFolder split.
    static func folders(among entries: [String], in directory: String) -> [String] {
        entries.filter { FileSystem.kind(FileSystem.join(directory, $0)) == .directory }
    }

    public func label(at index: Int) -> Int? { labels.isEmpty ? nil : labels[index] }

    public func image(at index: Int) throws(DatasetError) -> Image {
        precondition(index >= 0 && index < count, "ImageFolderDataset: index \(index) out of range 0..<\(count)")
        let path = files[index]
        let bytes: [UInt8]
        do {
            bytes = try FileSystem.readFile(path)
        } catch {
            throw .unreadableImage(name: path, reason: error.description)
        }
        do {
            return try ImageDecoder.decode(bytes, maxPixels: maxPixels)
        } catch {
            throw .unreadableImage(name: path, reason: error.description)
        }
    }

    public func sampleName(at index: Int) -> String { files[index] }

    static func isImageFile(_ name: String) -> Bool {
        guard let dot = name.lastIndex(of: "."), !name.hasPrefix(".") else { return false }
        return imageExtensions.contains(name[name.index(after: dot)...].lowercased())
    }

    /// Image files under `folder`, recursively, in torchvision's order: folders sorted by path
    /// (as `sorted(os.walk(folder))`), the files of each sorted by name.
    static func imageFiles(under folder: String) throws(DatasetError) -> [String] {
        var ignored: [String] = []
        return try imageFiles(under: folder, ignored: &ignored)
    }

    /// The same, adding the other files found (not PNG/JPEG by name) to `ignored`.
    static func imageFiles(under folder: String, ignored: inout [String]) throws(DatasetError) -> [String] {
        var groups: [(folder: String, files: [String])] = []
        var pending = [folder]
        while let current = pending.popLast() {
            let entries = try FileSystem.entries(current)
            var files: [String] = []
            for name in entries {
                let path = FileSystem.join(current, name)
                switch FileSystem.kind(path) {
                case .directory: pending.append(path)
                case .file where isImageFile(name): files.append(name)
                case .file: ignored.append(path)
                default: break
                }
            }
            groups.append((current, files.sorted(by: pythonOrder).map { FileSystem.join(current, $0) }))
        }
        return groups.sorted { pythonOrder($0.folder, $1.folder) }.flatMap(\.files)
    }
}
