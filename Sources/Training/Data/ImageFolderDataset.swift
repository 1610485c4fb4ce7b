import Foundation
import ImageKit

/// Images in files, in torchvision's `ImageFolder` layout `root/<class>/<image>` (classes sorted by
/// name, each class folder walked recursively, files sorted), or a flat folder of images without
/// labels (for pretraining). Files are PNG or JPEG (`.png`, `.jpg`, `.jpeg`, any case), decoded
/// lazily with ImageKit.
///
/// Splits: when the root has a `train/` folder, the train split is `root/train` and the test split
/// `root/test` (or `root/val`). The test split's class folders are labelled by name with the train
/// split's classes, so a test split may hold fewer classes than the train split; one the train split
/// lacks is an error. Without `train/`, a labelled root holds out `testShare` of each class as its
/// test split (`HeldOutSplit`: by file path, 10% by default) and the train split is the rest; with a
/// share of 0, or in a flat folder (no labels), the whole root is the train split and there is no test split.
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
    /// How the split was held out of a labelled folder without test/ or val/; nil for a split of its own folder.
    public let heldOut: HeldOutSplit?

    public var count: Int { files.count }

    /// The `split` of the dataset at `root` (see the type's documentation for the layouts).
    public init(root: String, split: DatasetSplit, testShare: Double = HeldOutSplit.defaultShare,
                maxPixels: Int = ImageDecoder.defaultMaxPixels) throws(DatasetError) {
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
        case (_, false):
            let all = try ImageFolderDataset(directory: root, maxPixels: maxPixels)
            let held = HeldOutSplit.heldOut(files: all.files, labels: all.labels, root: root, share: testShare)
            guard !held.isEmpty else {
                if split == .train { self = all; return }
                let why = all.classes.isEmpty ? "its images have no classes (no subfolders)"
                    : testShare == 0 ? "--test-share 0 holds none of its class folders' images out"
                    : "each of its classes has a single image, none to hold out"
                throw .splitNotFound(path: root, split: .test, expected: "train/ and test/ (or val/) subfolders; \(why), so all of it is the train split")
            }
            let keep = all.files.indices.filter { held.contains($0) == (split == .test) }
            self.init(root: all.root, files: keep.map { all.files[$0] }, labels: keep.map { all.labels[$0] }, classes: all.classes,
                      maxPixels: maxPixels, ignoredFiles: all.ignoredFiles,
                      heldOut: HeldOutSplit(root: root, share: testShare, held: held.count, total: all.count))
            return
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
        }
        try self.init(directory: folder, maxPixels: maxPixels)
    }

    private init(root: String, files: [String], labels: [Int], classes: [String], maxPixels: Int, ignoredFiles: [String],
                 heldOut: HeldOutSplit?) {
        self.root = root; self.files = files; self.labels = labels; self.classes = classes
        self.maxPixels = maxPixels; self.ignoredFiles = ignoredFiles; self.heldOut = heldOut
    }

    /// What holding out `share` of each class would hold out of this unsplit folder; nil when that is
    /// nothing (no labels, a share of 0). Pretraining, which reads every image, says it with this.
    public func heldOutSplit(share: Double) -> HeldOutSplit? {
        let held = HeldOutSplit.heldOut(files: files, labels: labels, root: root, share: share)
        guard heldOut == nil, !held.isEmpty else { return nil }
        return HeldOutSplit(root: root, share: share, held: held.count, total: count)
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
        self.heldOut = nil
    }

    /// The subfolders among a folder's sorted `entries`: the class names of an ImageFolder split.
    static func folders(among entries: [String], in directory: String) -> [String] {
        entries.filter { FileSystem.kind(FileSystem.join(directory, $0)) == .directory }
    }

    public func label(at index: Int) -> Int? { labels.isEmpty ? nil : labels[index] }

    public func image(at index: Int) throws(DatasetError) -> Image {
        try image(at: index, minimumSide: 0)
    }

    /// JPEGs decode at 1/2, 1/4 or 1/8 of their size when the shorter side keeps `minimumSide` pixels.
    public func image(at index: Int, minimumSide: Int) throws(DatasetError) -> Image {
        precondition(index >= 0 && index < count, "ImageFolderDataset: index \(index) out of range 0..<\(count)")
        let path = files[index]
        let bytes: [UInt8]
        do {
            bytes = try FileSystem.readFile(path)
        } catch {
            throw .unreadableImage(name: path, reason: error.description)
        }
        do {
            return try ImageDecoder.decode(bytes, maxPixels: maxPixels, minimumSide: minimumSide)
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
