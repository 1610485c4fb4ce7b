import Foundation
import ImageKit
import Tensor
import XCTest
@testable import Training

final class BatchLoaderTests: XCTestCase {
    private let mean: [Float] = [0.5, 0.4, 0.3], std: [Float] = [0.2, 0.25, 0.3]

    private func loader(_ dataset: any ImageDataset, batchSize: Int = 5, shuffle: Bool = true, dropLast: Bool = false,
                        seed: UInt64 = 9, epoch: Int = 0, startBatch: Int = 0, augment: Augment? = Augment(size: 8),
                        prefetch: Int = 2, workers: Int? = nil, maxSkipFraction: Double = 0.01) -> BatchLoader {
        BatchLoader(dataset: dataset, batchSize: batchSize, shuffle: shuffle, dropLast: dropLast, seed: seed, epoch: epoch,
                    startBatch: startBatch, channels: 3, imageSize: 8, mean: mean, std: std, augment: augment,
                    prefetch: prefetch, workers: workers, maxSkipFraction: maxSkipFraction)
    }

    private func all(_ loader: BatchLoader) throws -> [Batch] {
        var batches: [Batch] = []
        while let batch = try loader.next() { batches.append(batch) }
        XCTAssertNil(try loader.next())  // stays finished
        return batches
    }

    private func assertSame(_ a: [Batch], _ b: [Batch], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, "batch count", file: file, line: line)
        for (x, y) in zip(a, b) {
            XCTAssertEqual(x.index, y.index, file: file, line: line)
            XCTAssertEqual(x.sampleIndices, y.sampleIndices, "batch \(x.index)", file: file, line: line)
            XCTAssertEqual(x.labels, y.labels, "batch \(x.index)", file: file, line: line)
            XCTAssertEqual(x.images, y.images, "batch \(x.index)", file: file, line: line)
        }
    }

    /// What a loader asks its dataset for: a training loader (augmented) lets images come scaled down
    /// to 3 × its output size on the shorter side (a default crop keeps ≥ ~0.39 of it), more for
    /// smaller crops, the largest view's for a multi-view loader; an evaluation loader asks for whole
    /// images, as the server decodes them.
    func testTrainingLoadersLetImagesDecodeSmallerAndEvaluationLoadersDoNot() throws {
        final class Recording: ImageDataset, @unchecked Sendable {
            let lock = NSLock()
            var sides: [Int] = []
            let count = 4
            var classes: [String] { [] }
            var channels: Int { 3 }
            func label(at index: Int) -> Int? { nil }
            func image(at index: Int) throws -> Image { record(0) }
            func image(at index: Int, minimumSide: Int) throws -> Image { record(minimumSide) }
            func record(_ side: Int) -> Image {
                lock.lock(); sides.append(side); lock.unlock()
                return Image(width: 40, height: 30, channels: 3, fill: 100)
            }
        }
        let training = Recording()
        _ = try all(loader(training))
        XCTAssertEqual(training.sides, [24, 24, 24, 24], "3 × the 8-px output")
        // Crops down to 8% of the area (torchvision's default) keep √(0.08 · 3/4) ≈ 0.245 of the side: 8 / 0.245 → 33.
        let small = Recording()
        _ = try all(loader(small, augment: Augment(size: 8, scale: 0.08...1)))
        XCTAssertEqual(small.sides, [33, 33, 33, 33], "no crop upsampled")
        let evaluation = Recording()
        _ = try all(loader(evaluation, augment: nil))
        XCTAssertEqual(evaluation.sides, [0, 0, 0, 0], "whole images")
    }

    func testSameSeedAndEpochGiveIdenticalBatches() throws {
        let data = SyntheticDataset(count: 23)
        let first = try all(loader(data))
        assertSame(first, try all(loader(data)))
        // Shapes, labels and the per-sample augmentation stream.
        XCTAssertEqual(first.map(\.count), [5, 5, 5, 5, 3])
        XCTAssertEqual(first[0].images.shape, [5, 3, 8, 8])
        let transform = SampleTransform(channels: 3, imageSize: 8, mean: mean, std: std, augment: Augment(size: 8))
        for batch in first {
            XCTAssertEqual(batch.labels, batch.sampleIndices.map { $0 % 3 })
            for (slot, index) in batch.sampleIndices.enumerated() {
                var rng = SeededRandom(seed: LoaderSeeds.sampleSeed(seed: 9, epoch: 0, index: index))
                let expected = transform.apply(try data.image(at: index), using: &rng)
                XCTAssertEqual(Array(batch.images.data[(slot * 192)..<((slot + 1) * 192)]), expected)
            }
        }
        // Another seed: another order.
        XCTAssertNotEqual(first.flatMap(\.sampleIndices), try all(loader(data, seed: 10)).flatMap(\.sampleIndices))
    }

    func testEpochsDifferAndEverySampleAppearsOnce() throws {
        let data = SyntheticDataset(count: 23)
        var orders: [[Int]] = []
        for epoch in 0..<3 {
            let batches = try all(loader(data, epoch: epoch))
            let order = batches.flatMap(\.sampleIndices)
            XCTAssertEqual(order.sorted(), Array(0..<23))
            XCTAssertEqual(order, LoaderSeeds.epochOrder(count: 23, shuffle: true, seed: 9, epoch: epoch))
            orders.append(order)
        }
        XCTAssertEqual(Set(orders).count, 3)
        // dropLast: 4 full batches; no shuffle: dataset order.
        let dropped = try all(loader(data, dropLast: true))
        XCTAssertEqual(dropped.map(\.count), [5, 5, 5, 5])
        XCTAssertEqual(try all(loader(data, shuffle: false)).flatMap(\.sampleIndices), Array(0..<23))
    }

    func testResumingMidEpochGivesTheSameBatches() throws {
        var data = SyntheticDataset(count: 23)
        data.broken = [7]  // skipping must not shift the batches of a resumed run either
        let full = try all(loader(data, maxSkipFraction: 0.1))
        for k in [1, 3, 4] {
            assertSame(Array(full[k...]), try all(loader(data, startBatch: k, maxSkipFraction: 0.1)))
        }
        XCTAssertEqual(try all(loader(data, startBatch: 5)).count, 0)
    }

    func testPrefetchAndWorkersDoNotChangeTheBatches() throws {
        let data = SyntheticDataset(count: 23)
        let reference = try all(loader(data, prefetch: 0, workers: 1))
        for (prefetch, workers) in [(0, 2), (1, 1), (2, 2), (4, 3)] {
            assertSame(reference, try all(loader(data, prefetch: prefetch, workers: workers)))
        }
        // The eval transform (no augmentation) as well.
        assertSame(try all(loader(data, augment: nil, prefetch: 0)), try all(loader(data, augment: nil, prefetch: 3)))
    }

    func testUnreadableSamplesAreSkippedAndReplaced() throws {
        var data = SyntheticDataset(count: 23)
        data.broken = [4, 10]
        let loader = loader(data, shuffle: false, maxSkipFraction: 0.1)  // allows 3 of 23 (the minimum)
        let batches = try all(loader)
        // Each gap is filled from the next positions; batch boundaries stay put.
        XCTAssertEqual(batches.map(\.sampleIndices), [[0, 1, 2, 3, 5], [5, 6, 7, 8, 9], [11, 12, 13, 14, 15],
                                                      [15, 16, 17, 18, 19], [20, 21, 22]])
        XCTAssertEqual(loader.skipped, 2)
        XCTAssertEqual(loader.stats.skipped, 2)
        XCTAssertEqual(loader.skippedSamples.map(\.name), ["synthetic/4.png", "synthetic/10.png"])
        XCTAssertEqual(loader.skippedSamples.first?.reason, "broken on purpose")
    }

    /// A training loop names each skipped image once, however many epochs meet it again.
    func testUnreadableImagesAreReportedOncePerFile() throws {
        var data = SyntheticDataset(count: 23)
        data.broken = [4, 10]
        let unreadable = UnreadableImages()
        let quiet = ProgressReporter(interactive: false, logEvery: .infinity)
        for epoch in 0..<2 {
            let loader = loader(data, epoch: epoch, maxSkipFraction: 0.1)
            while try loader.next() != nil { unreadable.report(loader, to: quiet) }
        }
        XCTAssertEqual(Set(unreadable.names), ["synthetic/4.png", "synthetic/10.png"])
        XCTAssertEqual(unreadable.names.count, 2)
        XCTAssertNil(UnreadableImages().listed, "no key in result.json when every image was read")
    }

    func testTooManyUnreadableSamplesThrowNamingOne() throws {
        var data = SyntheticDataset(count: 23)
        data.broken = [4, 10, 15, 21]  // 3 of 23 are skipped (the minimum), the fourth stops the epoch
        for prefetch in [0, 2] {
            let loader = loader(data, shuffle: false, prefetch: prefetch, maxSkipFraction: 0.1)
            XCTAssertNotNil(try loader.next())
            XCTAssertNotNil(try loader.next())
            XCTAssertNotNil(try loader.next())
            XCTAssertNotNil(try loader.next())
            let error = thrownError { try loader.next() }
            XCTAssertEqual(error, .tooManyUnreadable(skipped: 4, allowed: 3, total: 23, example: "synthetic/21.png",
                                                     reason: "broken on purpose"))
            XCTAssertTrue(error!.description.contains("synthetic/21.png"), error!.description)
            XCTAssertEqual(thrownError { try loader.next() }, error)  // and again
        }
    }

    func testImageFolderWithACorruptFile() throws {
        let root = try makeTemporaryFolder(self)
        for i in 0..<9 {
            try write(PNGEncoder.encode(patternImage(width: 10, height: 12, channels: 3, seed: i)),
                      to: root + "/\(i % 2 == 0 ? "even" : "odd")/\(i).png")
        }
        try write(Array("GIF89a…".utf8), to: root + "/odd/broken.png")
        let data = try Datasets.open(root, split: .train, testShare: 0)  // every image: no test split held out
        XCTAssertEqual(data.count, 10)

        let tolerant = loader(data, batchSize: 4, maxSkipFraction: 0.1)  // 1 of 10 allowed
        let batches = try all(tolerant)
        XCTAssertEqual(tolerant.skipped, 1)
        XCTAssertEqual(tolerant.skippedSamples.first?.name, root + "/odd/broken.png")
        XCTAssertTrue(tolerant.skippedSamples.first?.reason.contains("GIF") ?? false)
        let seen = batches.flatMap(\.sampleIndices)
        XCTAssertEqual(Set(seen), Set(0..<10).subtracting([(data as! ImageFolderDataset).files.firstIndex { $0.hasSuffix("broken.png") }!]))
        XCTAssertEqual(batches.flatMap(\.labels), seen.map { data.label(at: $0)! })

        // The default (1%, at least 3 of 7 or more) skips it too: one damaged file does not stop a small folder.
        let byDefault = loader(data, batchSize: 4)
        XCTAssertEqual(byDefault.allowedSkips, 3)
        XCTAssertEqual(try all(byDefault).flatMap(\.sampleIndices), seen)
        XCTAssertEqual(byDefault.skippedSamples.map(\.name), [root + "/odd/broken.png"])

        // Past that, the epoch stops naming a file and the rule.
        for i in 0..<3 { try write(Array("not a PNG".utf8), to: root + "/even/broken-\(i).png") }
        let more = try Datasets.open(root, split: .train, testShare: 0)
        var failure: DatasetError?
        do { let strict = loader(more, batchSize: 4); while try strict.next() != nil {} } catch { failure = error }
        guard case .tooManyUnreadable(4, 3, 13, let example, _) = failure else { return XCTFail("got \(String(describing: failure))") }
        XCTAssertTrue(example.contains("/broken"), example)
        XCTAssertTrue(failure!.description.contains("more than the 3 the loader skips (1% of the samples, and at least 3 when there are 7 or more)"),
                      failure!.description)
    }

    /// The tolerated count: 1% of a large dataset, at least 3 of a small one, never half of a tiny one.
    func testAllowedSkipsRule() {
        XCTAssertEqual([2, 3, 6, 7, 39, 100, 399, 400, 10_000].map { BatchLoader.allowedSkips(count: $0, fraction: 0.01) },
                       [0, 1, 2, 3, 3, 3, 3, 4, 100])
    }

    func testUnlabeledStatsAndEarlyRelease() throws {
        let root = try makeTemporaryFolder(self)
        for i in 0..<6 { try write(PNGEncoder.encode(patternImage(width: 9, height: 9, channels: 1, seed: i)), to: root + "/\(i).png") }
        let data = try Datasets.open(root, split: .train)
        let loader = loader(data, batchSize: 4)
        let batches = try all(loader)
        XCTAssertEqual(batches.flatMap(\.labels), [Int](repeating: -1, count: 6))
        let stats = loader.stats
        XCTAssertEqual(stats.batches, 2)
        XCTAssertEqual(stats.images, 6)
        XCTAssertGreaterThan(stats.produceSeconds, 0)
        XCTAssertGreaterThanOrEqual(stats.waitSeconds, 0)

        // Dropping a loader whose producer is blocked on a full prefetch buffer ends it cleanly.
        for _ in 0..<20 {
            let big = self.loader(SyntheticDataset(count: 200), batchSize: 2, prefetch: 2)
            _ = try big.next()
        }
    }
}
