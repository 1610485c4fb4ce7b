import Foundation
import XCTest
import Training

/// Which dataset a folder says its model trained on: a run's recipe.json first, else an export's config.json.
final class RecordedTrainingDataTests: XCTestCase {
    private func write(_ json: String, _ name: String, in folder: String) throws {
        try Data(json.utf8).write(to: URL(fileURLWithPath: folder).appendingPathComponent(name))
    }

    func testARunsRecipeNamesTheDataAndItsHeldOutShare() throws {
        let folder = try makeTemporaryFolder(self, "run")
        try write(#"{"data": "/data/photos", "testShare": 0.2, "seed": 0}"#, "recipe.json", in: folder)
        try write(#"{"training_data": "/elsewhere", "test_share": 0.1}"#, "config.json", in: folder)
        XCTAssertEqual(RecordedTrainingData.read(from: URL(fileURLWithPath: folder)),
                       RecordedTrainingData(path: "/data/photos", testShare: 0.2, file: "recipe.json"))
    }

    func testAnExportsConfigNamesItWhenThereIsNoRecipe() throws {
        let folder = try makeTemporaryFolder(self, "export")
        try write(#"{"training_data": "fmnist", "embed_dim": 192}"#, "config.json", in: folder)
        XCTAssertEqual(RecordedTrainingData.read(from: URL(fileURLWithPath: folder)),
                       RecordedTrainingData(path: "fmnist", testShare: nil, file: "config.json training_data"))
    }

    func testAFolderThatNamesNoDataHasNone() throws {
        let folder = try makeTemporaryFolder(self, "export")
        try write(#"{"embed_dim": 192}"#, "config.json", in: folder)
        XCTAssertNil(RecordedTrainingData.read(from: URL(fileURLWithPath: folder)))
        XCTAssertNil(RecordedTrainingData.read(from: URL(fileURLWithPath: folder).appendingPathComponent("missing")))
    }
}
