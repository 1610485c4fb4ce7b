/// The test split of a labelled ImageFolder that has no test/ or val/ folder: a share of each class
/// held out. Which images is decided by a hash of each file's path inside the folder, so the choice
/// depends neither on the order files are listed in nor on where the folder lives, and a smaller
/// share holds out a subset of what a larger one does (the files of lowest hash in each class).
public struct HeldOutSplit: Sendable, Hashable {
    /// The share of each class held out when no other is asked for.
    public static let defaultShare = 0.1

    /// The folder the images were listed from.
    public let root: String
    public let share: Double
    /// Images held out as the test split, of all the folder's labelled images.
    public let held: Int
    public let total: Int

    /// Images held out of a class of `n`: share × n rounded, at least 1 of a class of 2 or more
    /// (every class is tested), and never all of them (every class is trained on).
    public static func heldCount(of n: Int, share: Double) -> Int {
        guard n >= 2, share > 0 else { return 0 }
        return min(n - 1, max(1, Int((share * Double(n)).rounded())))
    }

    /// The positions in `files` (full paths under `root`, labelled `labels`) of the held-out images.
    static func heldOut(files: [String], labels: [Int], root: String, share: Double) -> Set<Int> {
        var byClass: [Int: [Int]] = [:]
        for (index, label) in labels.enumerated() { byClass[label, default: []].append(index) }
        var held = Set<Int>()
        for members in byClass.values {
            let keyed = members.map { (key: fnv1a(relativePath(files[$0], in: root)), path: files[$0], index: $0) }
            let ranked = keyed.sorted { ($0.key, $0.path) < ($1.key, $1.path) }
            held.formUnion(ranked.prefix(heldCount(of: members.count, share: share)).map(\.index))
        }
        return held
    }

    /// `path` without the leading `root/`.
    static func relativePath(_ path: String, in root: String) -> String {
        let prefix = root.hasSuffix("/") ? root : root + "/"
        return path.hasPrefix(prefix) ? String(path.dropFirst(prefix.count)) : path
    }

    /// 64-bit FNV-1a of the UTF-8 bytes: a fixed, well-spread hash (Swift's `Hasher` is seeded per process).
    static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return hash
    }

    /// "10%" or "12.5%".
    var percent: String {
        let value = share * 100
        return value == value.rounded() ? "\(Int(value))%" : "\(value)%"
    }

    /// The log line of a command that reads the split.
    public var note: String {
        "\(root) has no test/ or val/ subfolder: holding out \(held) of its \(total) images as the test split "
            + "(\(percent) of each class, at least 1 of a class of 2 or more; --test-share to change, 0 to hold none out)"
    }

    /// The log line of a pretraining run on the folder, which reads every image (no labels).
    public var pretrainingNote: String {
        "\(root) has no test/ or val/ subfolder: pretraining uses all \(total) images (it reads no labels); eval, knn, linprobe "
            + "and finetune hold out \(held) of them (\(percent) of each class) as the test split, which this network will have "
            + "seen unlabelled. To measure on images it has never seen, give train/ and test/ subfolders"
    }
}
