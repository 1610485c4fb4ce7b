import ImageKit
import Tensor
import ViT
import XCTest
@testable import Training

/// Classifier top-1 matches the dataset's classes to the model's by name, not by position.
final class EvaluationTests: XCTestCase {
    let config = ViTConfig(imgSize: 8, patchSize: 2, inChans: 3, embedDim: 16, depth: 2, numHeads: 2, mlpRatio: 2,
                           qkvBias: .qv, layerNormEps: 1e-6, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], posEmbed: .sincosBootMAE)

    /// The same images as `base`, its classes listed in another order (labels renumbered to match).
    struct Reordered: ImageDataset {
        let base: SyntheticDataset
        let classes: [String]
        var count: Int { base.count }
        var channels: Int { base.channels }
        func label(at index: Int) -> Int? { base.label(at: index).map { classes.firstIndex(of: base.classes[$0]) ?? 0 } }
        func image(at index: Int) throws -> Image { try base.image(at: index) }
    }

    /// The same images and labels as `base` under other class names.
    struct Renamed: ImageDataset {
        let base: SyntheticDataset
        let classes: [String]
        var count: Int { base.count }
        var channels: Int { base.channels }
        func label(at index: Int) -> Int? { base.label(at: index) }
        func image(at index: Int) throws -> Image { try base.image(at: index) }
    }

    func classifier() throws -> Classifier {
        let model = Classifier(config: config, classes: ["a", "b", "c"])
        try model.initialize(from: nil, seed: 3)
        // A visible head (the official init scales it by 0.001), so predictions differ between images.
        let head = model.model.head!.weight
        head.value = Tensor(shape: head.shape, data: head.value.data.map { $0 * 1000 })
        return model
    }

    /// Top-1 of the test classifier on `dataset`.
    func evaluate(_ dataset: any ImageDataset) throws -> Evaluation.ClassificationResult {
        try Evaluation.top1(try classifier(), dataset: dataset, batchSize: 16, progress: nil)
    }

    let base = SyntheticDataset(count: 60)

    func testClassesAreMatchedByName() throws {
        let straight = try evaluate(base), reordered = try evaluate(Reordered(base: base, classes: ["c", "a", "b"]))
        XCTAssertEqual(reordered.top1, straight.top1)
        XCTAssertEqual(reordered.perClass, straight.perClass)
        XCTAssertEqual(straight.images, 60)
    }

    /// Classes that are only numbered (IDX files without names) are the model's classes in order.
    func testNumberedClassesAreMatchedByPosition() throws {
        let straight = try evaluate(base), byPosition = try evaluate(Renamed(base: base, classes: ["0", "1", "2"]))
        XCTAssertEqual(byPosition.top1, straight.top1)
        XCTAssertEqual(byPosition.perClass["0"], straight.perClass["a"])
    }

    /// Only the classes that occur in the dataset must be the model's: a test split labelled with
    /// its train split's class list may lack some of them.
    func testAClassWithoutSamplesNeedNotBeKnown() throws {
        XCTAssertEqual(try evaluate(Renamed(base: base, classes: ["a", "b", "c", "zebra"])).top1, try evaluate(base).top1)
    }

    func testAClassTheModelDoesNotKnowIsAnError() throws {
        XCTAssertThrowsError(try evaluate(Reordered(base: SyntheticDataset(count: 6), classes: ["a", "b", "zebra"].reversed()))) {
            XCTAssertTrue("\($0)".contains("zebra"), "\($0)")
        }
    }

    /// Exporting a classifier that is barely better than guessing says so (with what to change);
    /// a useful one exports quietly.
    func testExportWarnsWhenAClassifierIsNearChance() throws {
        let run = try makeTemporaryFolder(self, "run")
        var c = config
        c.labels = (0..<10).map { "class\($0)" }
        try JSONEncoder().encode(c).write(to: URL(fileURLWithPath: run + "/config.json"))
        func top1(_ value: Double, in name: String) throws {
            try Data("{\"top1\": \(value)}".utf8).write(to: URL(fileURLWithPath: run + "/" + name))
        }
        XCTAssertNil(Exporter.nearChanceWarning(run: run), "nothing measured, nothing said")
        try top1(0.21, in: "result.json")
        let warning = try XCTUnwrap(Exporter.nearChanceWarning(run: run))
        XCTAssertTrue(warning.contains("test top-1 is 21.0% (the last epoch) where chance is 10.0% with 10 classes"), warning)
        XCTAssertTrue(warning.contains("--epochs") && warning.contains("--lr"), warning)
        try top1(0.64, in: "eval.json")  // eval.json, when there is one, is what counts
        XCTAssertNil(Exporter.nearChanceWarning(run: run))
        c.labels = ["a", "b"]
        try JSONEncoder().encode(c).write(to: URL(fileURLWithPath: run + "/config.json"))
        XCTAssertNil(Exporter.nearChanceWarning(run: run), "64% of 2 classes clears 60%")
        try top1(0.58, in: "eval.json")
        XCTAssertNotNil(Exporter.nearChanceWarning(run: run), "58% of 2 classes is barely above 50%")
    }
}

