import Foundation

/// The dataset a model in a folder was trained on, as the folder records it: a run's recipe.json
/// `data` and `testShare` (a fine-tune's held-out share of a class folder), or an export's config.json
/// `training_data` and `test_share` (written by `export`). Measurements default to it; an export copies it.
public struct RecordedTrainingData: Sendable, Equatable {
    public let path: String
    /// The share of each class the run held out as its test split, when it trained on a class folder.
    public let testShare: Double?
    /// The file that says so ("recipe.json" or "config.json training_data"), for messages.
    public let file: String

    public init(path: String, testShare: Double?, file: String) {
        self.path = path; self.testShare = testShare; self.file = file
    }

    /// What `folder` records, or nil when neither file names the data.
    public static func read(from folder: URL) -> RecordedTrainingData? {
        struct Recipe: Decodable { let data: String; let testShare: Double? }
        struct Config: Decodable { let training_data: String?; let test_share: Double? }
        if let recipe = try? JSONDecoder().decode(Recipe.self, from: Data(contentsOf: folder.appendingPathComponent("recipe.json"))) {
            return RecordedTrainingData(path: recipe.data, testShare: recipe.testShare, file: "recipe.json")
        }
        let config = try? JSONDecoder().decode(Config.self, from: Data(contentsOf: folder.appendingPathComponent("config.json")))
        return config?.training_data.map { RecordedTrainingData(path: $0, testShare: config?.test_share, file: "config.json training_data") }
    }
}
