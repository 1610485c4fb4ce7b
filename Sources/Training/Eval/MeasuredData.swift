import Foundation

/// The images a measurement was made on: written into its JSON as `data` (eval, knn, linprobe,
/// tokenizer-eval, precision-check; calibrate's `dataset` says it in words) and shown beside its
/// number in a model card, so a number never stands without the data behind it.
public struct MeasuredData: Codable, Sendable, Equatable {
    /// The dataset folder, absolute.
    public var path: String
    /// Which of its images: "test split", "train and test splits", …; for a test split held out of
    /// class folders, how many and by which share.
    public var split: String

    /// `split` of the dataset at `path`; `heldOut` when its test split was held out of class folders.
    public init(path: String, split: String, heldOut: HeldOutSplit? = nil) {
        self.path = URL(fileURLWithPath: path).standardizedFileURL.path
        self.split = split + (heldOut.map { " (test split held out of the class folders: \($0.held) of \($0.total) images, \($0.percent) of each class)" } ?? "")
    }

    /// "fashion-mnist, test split": the folder's name and the split, for a card's table and log lines.
    public var summary: String { "\((path as NSString).lastPathComponent), \(split)" }
}
