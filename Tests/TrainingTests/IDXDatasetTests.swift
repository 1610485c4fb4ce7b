import Foundation
import XCTest
@testable import Training

final class IDXDatasetTests: XCTestCase {
    private func pixel(_ i: Int, _ y: Int, _ x: Int) -> UInt8 { UInt8((i * 11 + y * 3 + x * 7) % 256) }

    private func checkFixture(_ data: IDXDataset, count: Int, start: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(data.count, count, file: file, line: line)
        XCTAssertEqual([data.width, data.height, data.channels], [28, 28, 1], file: file, line: line)
        XCTAssertEqual(data.classes, (0...9).map(String.init), file: file, line: line)
        for i in 0..<count {
            XCTAssertEqual(data.label(at: i), (3 * (start + i)) % 10, file: file, line: line)
            let image = try data.image(at: i)
            XCTAssertEqual([image.width, image.height, image.channels], [28, 28, 1], file: file, line: line)
            for (x, y) in [(0, 0), (27, 0), (0, 27), (13, 17), (27, 27)] {
                XCTAssertEqual(image[x: x, y: y, channel: 0], pixel(start + i, y, x), "image \(i) (\(x),\(y))", file: file, line: line)
            }
        }
    }

    func testPlainAndGzippedFilesGiveTheKnownPixelsAndLabels() throws {
        let plain = try IDXDataset(directory: datasetFixtures + "/idx-plain", split: .train)
        try checkFixture(plain, count: 20, start: 0)
        let gz = try IDXDataset(directory: datasetFixtures + "/idx-gz", split: .train)
        try checkFixture(gz, count: 20, start: 0)
        XCTAssertEqual(plain.pixels, gz.pixels)
        XCTAssertTrue(gz.imagesPath.hasSuffix("train-images-idx3-ubyte.gz"))
    }

    func testDatasetsOpenFindsTheSplits() throws {
        let test = try XCTUnwrap(try Datasets.open(datasetFixtures + "/idx-gz", split: .test) as? IDXDataset)
        try checkFixture(test, count: 6, start: 100)
        let error = thrownError { try Datasets.open(datasetFixtures + "/idx-plain", split: .test) }
        guard case .splitNotFound(_, .test, let expected) = error else { return XCTFail("got \(String(describing: error))") }
        XCTAssertTrue(expected.contains("t10k-images-idx3-ubyte"), expected)
    }

    /// A copy of the plain fixture pair in a temporary folder, with the images and labels bytes
    /// passed through `images` / `labels`.
    private func variant(images: ([UInt8]) -> [UInt8] = { $0 }, labels: ([UInt8]) -> [UInt8] = { $0 },
                         folder: String = "data") throws -> String {
        let dir = try makeTemporaryFolder(self, folder)
        let source = datasetFixtures + "/idx-plain/"
        try write(images(readBytes(source + "train-images-idx3-ubyte")), to: dir + "/train-images-idx3-ubyte")
        try write(labels(readBytes(source + "train-labels-idx1-ubyte")), to: dir + "/train-labels-idx1-ubyte")
        return dir
    }

    func testBadMagicNumbers() throws {
        var dir = try variant(images: { var b = $0; b[2] = 0x0D; return b })
        var error = thrownError { try IDXDataset(directory: dir, split: .train) }
        XCTAssertEqual(error, .idxBadMagic(path: dir + "/train-images-idx3-ubyte", found: 0x0D03, expected: 0x803))
        XCTAssertTrue(error!.description.contains("0x00000D03"), error!.description)

        // Images and labels swapped.
        let labelBytes = try readBytes(datasetFixtures + "/idx-plain/train-labels-idx1-ubyte")
        dir = try variant(images: { _ in labelBytes })
        error = thrownError { try IDXDataset(directory: dir, split: .train) }
        XCTAssertEqual(error, .idxBadMagic(path: dir + "/train-images-idx3-ubyte", found: 0x801, expected: 0x803))
    }

    func testTruncatedAndOverlongFiles() throws {
        var dir = try variant(images: { Array($0.dropLast(100)) })
        var error = thrownError { try IDXDataset(directory: dir, split: .train) }
        XCTAssertEqual(error, .idxTruncated(path: dir + "/train-images-idx3-ubyte", expectedBytes: 16 + 20 * 784,
                                            actualBytes: 16 + 20 * 784 - 100))
        XCTAssertTrue(error!.description.contains("truncated"), error!.description)

        dir = try variant(images: { Array($0.prefix(10)) })  // header cut
        error = thrownError { try IDXDataset(directory: dir, split: .train) }
        XCTAssertEqual(error, .idxTruncated(path: dir + "/train-images-idx3-ubyte", expectedBytes: 16, actualBytes: 10))

        dir = try variant(labels: { $0 + [1, 2, 3] })
        error = thrownError { try IDXDataset(directory: dir, split: .train) }
        XCTAssertEqual(error, .idxTrailingBytes(path: dir + "/train-labels-idx1-ubyte", expectedBytes: 28, actualBytes: 31))

        dir = try variant(images: { _ in [] })
        error = thrownError { try IDXDataset(directory: dir, split: .train) }
        XCTAssertEqual(error, .idxTruncated(path: dir + "/train-images-idx3-ubyte", expectedBytes: 16, actualBytes: 0))
    }

    func testCountMismatchAndBadDimensions() throws {
        // 19 labels (header and body).
        var dir = try variant(labels: { var b = Array($0.dropLast()); b[7] = 19; return b })
        var error = thrownError { try IDXDataset(directory: dir, split: .train) }
        XCTAssertEqual(error, .idxCountMismatch(images: dir + "/train-images-idx3-ubyte", imageCount: 20,
                                                labels: dir + "/train-labels-idx1-ubyte", labelCount: 19))
        XCTAssertTrue(error!.description.contains("20 images"), error!.description)

        dir = try variant(images: { var b = $0; b[11] = 0; return b })  // 0 rows
        error = thrownError { try IDXDataset(directory: dir, split: .train) }
        guard case .idxBadDimensions = error else { return XCTFail("got \(String(describing: error))") }
    }

    func testDamagedGzipFiles() throws {
        let gz = try readBytes(datasetFixtures + "/idx-gz/train-images-idx3-ubyte.gz")
        let labels = try readBytes(datasetFixtures + "/idx-gz/train-labels-idx1-ubyte.gz")
        let damages: [(([UInt8]) -> [UInt8], String)] = [
            ({ Array($0.prefix($0.count / 2)) }, "unexpected end of file"),
            ({ var c = $0; for i in 20..<60 { c[i] ^= 0x5A }; return c }, "corrupt data"),
            ({ var c = $0; c[c.count - 6] ^= 1; return c }, "corrupt data"),  // CRC
        ]
        for (damage, expected) in damages {
            let dir = try makeTemporaryFolder(self)
            try write(damage(gz), to: dir + "/train-images-idx3-ubyte.gz")
            try write(labels, to: dir + "/train-labels-idx1-ubyte.gz")
            let error = thrownError { try IDXDataset(directory: dir, split: .train) }
            guard case .gzip(let path, let detail) = error else { return XCTFail("got \(String(describing: error))") }
            XCTAssertEqual(path, dir + "/train-images-idx3-ubyte.gz")
            XCTAssertTrue(detail.contains(expected), detail)
        }
    }

    func testClassNames() throws {
        // A folder whose path says "fashion" gets Fashion-MNIST's names.
        let fashion = try variant(folder: "my-fashion-copy")
        XCTAssertEqual(try IDXDataset(directory: fashion, split: .train).classes, IDXDataset.fashionMNISTClasses)
        // classes.txt wins.
        let names = (0..<10).map { "class \($0)" }
        let listed = try variant()
        try write(Array((names.joined(separator: "\n") + "\n").utf8), to: listed + "/classes.txt")
        XCTAssertEqual(try IDXDataset(directory: listed, split: .train).classes, names)
        // A list too short for the labels.
        let short = try variant()
        try write(Array("a\nb\nc\n".utf8), to: short + "/classes.txt")
        XCTAssertEqual(thrownError { try IDXDataset(directory: short, split: .train) },
                       .labelOutOfRange(path: short + "/train-labels-idx1-ubyte", label: 9, classCount: 3))
    }

    /// The real Fashion-MNIST test split (installed by scripts/setup.sh as Debian's dataset-fashion-mnist).
    func testFashionMNISTTestSplit() throws {
        let folder = "/usr/share/datasets/fashion-mnist"
        guard FileManager.default.fileExists(atPath: folder) else {
            return XCTFail("\(folder) is missing: run scripts/setup.sh (installs the Debian package dataset-fashion-mnist)")
        }
        let data = try XCTUnwrap(try Datasets.open(folder, split: .test) as? IDXDataset)
        XCTAssertEqual(data.count, 10_000)
        XCTAssertEqual([data.width, data.height, data.channels], [28, 28, 1])
        XCTAssertEqual(data.classes, IDXDataset.fashionMNISTClasses)
        var perClass = [Int](repeating: 0, count: 10)
        for label in data.labels { perClass[Int(label)] += 1 }
        XCTAssertEqual(perClass, [Int](repeating: 1000, count: 10))
        // The first test image is an ankle boot (label 9) on a black background.
        XCTAssertEqual(data.label(at: 0), 9)
        let first = try data.image(at: 0)
        XCTAssertEqual(first[x: 0, y: 0, channel: 0], 0)
        XCTAssertGreaterThan(first.pixels.map(Int.init).reduce(0, +), 0)
    }
}
