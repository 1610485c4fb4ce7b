import Foundation
import ImageKit
import XCTest
@testable import Training

final class ImageFolderDatasetTests: XCTestCase {
    private func png(_ seed: Int, channels: Int = 3, width: Int = 9, height: Int = 7) throws -> [UInt8] {
        try PNGEncoder.encode(patternImage(width: width, height: height, channels: channels, seed: seed))
    }

    /// root/train/{cat,dog}/…, root/<testName>/{cat,dog}/…; one corrupt file in train/dog.
    private func makeSplitFolder(testName: String = "test") throws -> String {
        let root = try makeTemporaryFolder(self)
        try write(png(1), to: root + "/train/dog/b.png")
        try write(png(2), to: root + "/train/dog/a.PNG")
        try write(Array("not an image".utf8), to: root + "/train/dog/c.jpg")  // corrupt
        try write(png(3), to: root + "/train/dog/nested/z.png")
        try write(Array("notes".utf8), to: root + "/train/dog/readme.txt")     // ignored
        try write(png(4), to: root + "/train/cat/x.Jpeg")                      // PNG bytes, any extension case
        try write(png(5), to: root + "/train/cat/.hidden.png")                 // ignored
        try write(png(6), to: root + "/\(testName)/cat/t.png")
        try write(png(7), to: root + "/\(testName)/dog/u.png")
        try write(png(8), to: root + "/\(testName)/dog/v.png")
        return root
    }

    func testClassFoldersWithSplits() throws {
        let root = try makeSplitFolder()
        let train = try XCTUnwrap(try Datasets.open(root, split: .train) as? ImageFolderDataset)
        XCTAssertEqual(train.classes, ["cat", "dog"])
        XCTAssertEqual(train.files.map { String($0.dropFirst(root.count)) },
                       ["/train/cat/x.Jpeg", "/train/dog/a.PNG", "/train/dog/b.png", "/train/dog/c.jpg", "/train/dog/nested/z.png"])
        XCTAssertEqual((0..<train.count).map { train.label(at: $0) }, [0, 1, 1, 1, 1])
        XCTAssertEqual(train.channels, 3)
        XCTAssertEqual(try train.image(at: 1), patternImage(width: 9, height: 7, channels: 3, seed: 2))
        XCTAssertEqual(train.sampleName(at: 3), root + "/train/dog/c.jpg")
        // Files that are not images are counted and named once, not skipped silently (hidden ones are not counted).
        XCTAssertEqual(train.ignoredFiles, [root + "/train/dog/readme.txt"])
        XCTAssertEqual(train.ignoredFilesWarning,
                       "warning: 1 file is not PNG/JPEG and not used (1 .txt; e.g. readme.txt); convert them to PNG or JPEG to train on them")
        XCTAssertEqual(SubsetDataset(train, count: 2).ignoredFiles, train.ignoredFiles)

        // The corrupt file throws, naming the file.
        let error = thrownError { try train.image(at: 3) }
        guard case .unreadableImage(let name, let reason) = error else { return XCTFail("got \(String(describing: error))") }
        XCTAssertEqual(name, root + "/train/dog/c.jpg")
        XCTAssertTrue(reason.contains("Unsupported image format"), reason)
        guard case .failure = train.loadImage(at: 3), case .success = train.loadImage(at: 0) else { return XCTFail() }

        let test = try Datasets.open(root, split: .test)
        XCTAssertEqual(test.classes, ["cat", "dog"])
        XCTAssertEqual((0..<test.count).map { test.label(at: $0) }, [0, 1, 1])
    }

    /// A flat folder's GIFs and notes are counted and a few named; the images are used.
    func testNonImageFilesOfAFlatFolderAreReported() throws {
        let root = try makeTemporaryFolder(self)
        try write(png(1, width: 64, height: 48), to: root + "/a.png")
        try write(png(2, width: 64, height: 48), to: root + "/b.png")
        for name in ["c.gif", "d.gif", "e.GIF", "notes.txt", "LICENSE"] { try write(Array("x".utf8), to: root + "/" + name) }
        let data = try Datasets.open(root, split: .train)
        XCTAssertEqual(data.count, 2)
        XCTAssertEqual(data.ignoredFiles.count, 5)
        XCTAssertEqual(data.ignoredFilesWarning, "warning: 5 files are not PNG/JPEG and not used (3 .gif, 1 without extension, 1 .txt; "
                       + "e.g. LICENSE, c.gif, d.gif, …); convert them to PNG or JPEG to train on them")
        let size = try XCTUnwrap(data.typicalImageSize())
        XCTAssertEqual(size.width, 64)
        XCTAssertEqual(size.height, 48)
    }

    /// The test split's class folders are labelled by the train split's class names, so a test
    /// split with fewer classes still scores against the right outputs.
    func testTestSplitIsLabelledByTheTrainSplitsClassNames() throws {
        let root = try makeTemporaryFolder(self)
        for (i, name) in ["bird", "cat", "dog"].enumerated() { try write(png(i), to: root + "/train/\(name)/1.png") }
        try write(png(5), to: root + "/test/cat/1.png")
        try write(png(6), to: root + "/test/dog/1.png")
        let test = try Datasets.open(root, split: .test)
        XCTAssertEqual(test.classes, ["bird", "cat", "dog"])
        XCTAssertEqual((0..<test.count).map { test.label(at: $0) }, [1, 2])

        try write(png(7), to: root + "/test/zebra/1.png")
        let error = thrownError { try Datasets.open(root, split: .test) }
        guard case .unknownClasses(_, let unknown, let known) = error else { return XCTFail("got \(String(describing: error))") }
        XCTAssertEqual(unknown, ["zebra"])
        XCTAssertEqual(known, ["bird", "cat", "dog"])
        XCTAssertTrue(error!.description.contains("zebra"), error!.description)
    }

    func testValFolderIsTheTestSplit() throws {
        let root = try makeSplitFolder(testName: "val")
        XCTAssertEqual(try Datasets.open(root, split: .test).count, 3)
    }

    /// Classes of one image each leave nothing to hold out: all of it is the train split.
    func testWithoutSplitFoldersOrImagesToHoldOutEverythingIsTrain() throws {
        let root = try makeTemporaryFolder(self)
        try write(png(1, channels: 1), to: root + "/b/1.png")
        try write(png(2, channels: 1), to: root + "/a/2.png")
        let data = try Datasets.open(root, split: .train)
        XCTAssertEqual(data.classes, ["a", "b"])
        XCTAssertEqual(data.count, 2)
        XCTAssertNil(data.heldOut)
        XCTAssertEqual(data.channels, 3, "image folders are RGB, whatever the files hold (as torchvision's ImageFolder)")
        let error = thrownError { try Datasets.open(root, split: .test) }
        guard case .splitNotFound(root, .test, let expected) = error else { return XCTFail("got \(String(describing: error))") }
        XCTAssertTrue(expected.contains("test/"), expected)
        XCTAssertTrue(expected.contains("a single image"), expected)
        XCTAssertTrue(error!.description.contains("no test split"), error!.description)
    }

    /// root/<class>/ without test/ or val/: a share of each class (by a hash of the path inside the
    /// folder) is the test split and the rest the train split. The held-out files are FNV-1a's lowest
    /// of each class, as Python computes them (`fnv1a(b"a/1.png")`, …): 12 images hold out 1 at 10%
    /// and 4 at 30% (3.6 rounded), 5 hold out 1 at both (0.5 and 1.5 rounded: at least 1, half away
    /// from zero), a class of 1 none. The same files are held out wherever the folder lives, and a
    /// smaller share's are among a larger one's.
    func testALabelledFolderHoldsOutAShareOfEachClass() throws {
        let root = try makeTemporaryFolder(self)
        for (name, count) in [("a", 12), ("b", 5), ("c", 1)] {
            for i in 0..<count { try write(png(i), to: root + "/\(name)/\(i).png") }
        }
        func relative(_ data: any ImageDataset, in folder: String) -> [String] {
            (data as! ImageFolderDataset).files.map { String($0.dropFirst(folder.count + 1)) }
        }
        let train = try Datasets.open(root, split: .train), test = try Datasets.open(root, split: .test)
        XCTAssertEqual(relative(test, in: root), ["a/1.png", "b/1.png"])
        XCTAssertEqual((0..<test.count).map { test.label(at: $0) }, [0, 1])
        XCTAssertEqual(train.count, 16)
        XCTAssertEqual(Set(relative(train, in: root)).intersection(relative(test, in: root)), [])
        XCTAssertEqual(train.classes, ["a", "b", "c"])
        XCTAssertEqual(test.classes, ["a", "b", "c"])
        let held = HeldOutSplit(root: root, share: 0.1, held: 2, total: 18)
        XCTAssertEqual(test.heldOut, held)
        XCTAssertEqual(SubsetDataset(train, count: 4).heldOut, held)
        XCTAssertEqual(held.note, "\(root) has no test/ or val/ subfolder: holding out 2 of its 18 images as the test split "
                       + "(10% of each class, at least 1 of a class of 2 or more; --test-share to change, 0 to hold none out)")

        let larger = try Datasets.open(root, split: .test, testShare: 0.3)
        XCTAssertEqual(relative(larger, in: root), ["a/0.png", "a/1.png", "a/6.png", "a/9.png", "b/1.png", "b/4.png"])
        XCTAssertEqual(try Datasets.open(root, split: .train, testShare: 0.3).count, 12)

        let moved = try makeTemporaryFolder(self) + "/elsewhere"
        try FileManager.default.copyItem(atPath: root, toPath: moved)
        XCTAssertEqual(relative(try Datasets.open(moved, split: .test), in: moved), ["a/1.png", "b/1.png"])

        // A share of 0 holds none out: every image trains, and there is no test split.
        XCTAssertEqual(try Datasets.open(root, split: .train, testShare: 0).count, 18)
        let error = thrownError { try Datasets.open(root, split: .test, testShare: 0) }
        guard case .splitNotFound(root, .test, let expected) = error else { return XCTFail("got \(String(describing: error))") }
        XCTAssertTrue(expected.contains("--test-share 0"), expected)
        // What pretraining (every image) says measurements will hold out.
        let all = try XCTUnwrap(try Datasets.open(root, split: .train, testShare: 0) as? ImageFolderDataset)
        XCTAssertEqual(all.heldOutSplit(share: 0.1), held)
    }

    func testHeldOutCountPerClass() {
        XCTAssertEqual([0, 1, 2, 5, 9, 10, 14, 15, 100].map { HeldOutSplit.heldCount(of: $0, share: 0.1) }, [0, 0, 1, 1, 1, 1, 1, 2, 10])
        XCTAssertEqual([2, 3, 4].map { HeldOutSplit.heldCount(of: $0, share: 0.5) }, [1, 2, 2])
        XCTAssertEqual(HeldOutSplit.heldCount(of: 10, share: 0), 0)
    }

    func testFlatFolderIsUnlabeled() throws {
        let root = try makeTemporaryFolder(self)
        for i in 0..<3 { try write(png(i), to: root + "/img\(i).png") }
        try FileManager.default.createDirectory(atPath: root + "/empty-subfolder", withIntermediateDirectories: true)
        let data = try Datasets.open(root, split: .train)
        XCTAssertEqual(data.count, 3)
        XCTAssertEqual(data.classes, [])
        XCTAssertNil(data.label(at: 0))
        XCTAssertEqual(try data.image(at: 2), patternImage(width: 9, height: 7, channels: 3, seed: 2))
    }

    func testMissingEmptyAndOddFolders() throws {
        let root = try makeTemporaryFolder(self)
        XCTAssertEqual(thrownError { try Datasets.open(root, split: .train) }, .noImages(path: root))
        XCTAssertTrue(DatasetError.noImages(path: root).description.contains("idx3-ubyte"))
        XCTAssertEqual(thrownError { try Datasets.open(root + "/nope", split: .train) }, .notFound(path: root + "/nope"))
        try write(png(1), to: root + "/file.png")
        XCTAssertEqual(thrownError { try Datasets.open(root + "/file.png", split: .train) }, .notAFolder(path: root + "/file.png"))

        let classes = try makeTemporaryFolder(self)
        try write(png(1), to: classes + "/full/1.png")
        try write(Array("x".utf8), to: classes + "/empty/notes.txt")
        XCTAssertEqual(thrownError { try Datasets.open(classes, split: .train) },
                       .emptyClassFolders(path: classes, classes: ["empty"]))
    }

    func testPythonSortOrder() throws {
        // torchvision sorts by code point: uppercase before lowercase, "a-b" before "a/…" before "a0".
        let root = try makeTemporaryFolder(self)
        for name in ["b", "B", "a0", "a"] { try write(png(1), to: root + "/\(name)/1.png") }
        try write(png(1), to: root + "/a/sub/2.png")
        try write(png(1), to: root + "/a/sub-x/3.png")
        try write(png(1), to: root + "/a/4.png")
        let data = try ImageFolderDataset(directory: root)
        XCTAssertEqual(data.classes, ["B", "a", "a0", "b"])
        XCTAssertEqual(data.files.filter { $0.contains("/a/") }.map { String($0.dropFirst(root.count)) },
                       ["/a/1.png", "/a/4.png", "/a/sub/2.png", "/a/sub-x/3.png"])
    }
}
