import Foundation
import ImageKit
import Objectives
import Tensor
import XCTest
@testable import Training

final class MultiViewLoaderTests: XCTestCase {
    private let mean: [Float] = [0.5, 0.4, 0.3], std: [Float] = [0.2, 0.25, 0.3]

    /// 2 global views of 8 px and 3 local views of 4 px.
    private var views: MultiViewTransform {
        .multiCrop(channels: 3, mean: mean, std: std, globalSize: 8, localSize: 4, localViews: 3)
    }

    private func loader(_ dataset: any ImageDataset, batchSize: Int = 3, startBatch: Int = 0, prefetch: Int = 2,
                        workers: Int? = nil, maxSkipFraction: Double = 0.01) -> BatchLoader {
        BatchLoader(dataset: dataset, batchSize: batchSize, shuffle: true, dropLast: false, seed: 4, epoch: 1,
                    startBatch: startBatch, views: views, prefetch: prefetch, workers: workers, maxSkipFraction: maxSkipFraction)
    }

    private func all(_ loader: BatchLoader) throws -> [Batch] {
        var batches: [Batch] = []
        while let batch = try loader.next() { batches.append(batch) }
        return batches
    }

    private func assertSame(_ a: [Batch], _ b: [Batch], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, "batch count", file: file, line: line)
        for (x, y) in zip(a, b) {
            XCTAssertEqual(x.sampleIndices, y.sampleIndices, "batch \(x.index)", file: file, line: line)
            XCTAssertEqual(x.views, y.views, "batch \(x.index)", file: file, line: line)
        }
    }

    /// The recipe's groups: global crops at the model size with scale 0.25…1, local crops with
    /// scale 0.05…0.25, both flipped half the time.
    func testMultiCropGroups() {
        let v = views
        XCTAssertEqual(v.groups.map(\.views), [2, 3])
        XCTAssertEqual(v.groups.map(\.transform.imageSize), [8, 4])
        XCTAssertEqual(v.groups.map { $0.transform.augment!.crop.scale }, [0.25...1, 0.05...0.25])
        XCTAssertEqual(v.groups.map { $0.transform.augment!.flip?.p }, [0.5, 0.5])
        XCTAssertEqual(v.viewCount, 5)
        XCTAssertEqual(v.tensorCount, 2 * 192 + 3 * 48)
        XCTAssertEqual(MultiViewTransform.multiCrop(channels: 1, mean: [0.5], std: [0.5], globalSize: 8).groups.count, 1)
    }

    /// One tensor per group, view-major, each view exactly the transform of its own stream
    /// (seed, epoch, index, view), views counted over all groups.
    func testEveryViewComesFromItsOwnStream() throws {
        let data = SyntheticDataset(count: 7)
        let batches = try all(loader(data))
        XCTAssertEqual(batches.map(\.count), [3, 3, 1])
        XCTAssertEqual(batches.flatMap(\.sampleIndices), LoaderSeeds.epochOrder(count: 7, shuffle: true, seed: 4, epoch: 1))
        let v = views
        for batch in batches {
            let b = batch.count
            XCTAssertEqual(batch.views.map(\.shape), [[2 * b, 3, 8, 8], [3 * b, 3, 4, 4]])
            XCTAssertEqual(batch.images, batch.views[0])
            XCTAssertEqual(batch.labels, batch.sampleIndices.map { $0 % 3 })
            var view = 0
            for (g, group) in v.groups.enumerated() {
                let per = group.transform.tensorCount
                for local in 0..<group.views {
                    for (slot, index) in batch.sampleIndices.enumerated() {
                        var rng = SeededRandom(seed: LoaderSeeds.viewSeed(seed: 4, epoch: 1, index: index, view: view))
                        let expected = group.transform.apply(try data.image(at: index), using: &rng)
                        let at = (local * b + slot) * per
                        XCTAssertEqual(Array(batch.views[g].data[at..<(at + per)]), expected, "group \(g) view \(local) slot \(slot)")
                    }
                    view += 1
                }
            }
        }
        // Two views of one image are two different crops.
        let first = batches[0].views[0]
        XCTAssertNotEqual(Array(first.data[0..<192]), Array(first.data[(3 * 192)..<(4 * 192)]))
    }

    /// Batches depend only on (seed, epoch, index, view): not on prefetching or workers, and a
    /// resumed epoch gives exactly the remaining batches, also when a sample is unreadable.
    func testDeterministicAndResumable() throws {
        var data = SyntheticDataset(count: 11)
        data.broken = [5]
        let full = try all(loader(data, maxSkipFraction: 0.1))
        XCTAssertFalse(full.flatMap(\.sampleIndices).contains(5))
        assertSame(full, try all(loader(data, prefetch: 0, workers: 1, maxSkipFraction: 0.1)))
        assertSame(full, try all(loader(data, workers: 3, maxSkipFraction: 0.1)))
        for k in [1, 2] {
            assertSame(Array(full[k...]), try all(loader(data, startBatch: k, maxSkipFraction: 0.1)))
        }
        let other = BatchLoader(dataset: data, batchSize: 3, shuffle: true, dropLast: false, seed: 5, epoch: 1,
                                views: views, maxSkipFraction: 0.1)
        XCTAssertNotEqual(try all(other).first?.views, full.first?.views)
    }

    /// iBOT's photometric groups (one view each, the first and second global recipes) through the
    /// loader: each view is its group's transform on its own stream, views counted across groups;
    /// the same loader run twice gives the same batches.
    func testPhotometricGroupsThroughTheLoader() throws {
        func group(_ spec: PhotometricSpec?) -> MultiViewTransform.Group {
            .init(views: 1, transform: SampleTransform(channels: 3, imageSize: 8, mean: mean, std: std, augment: Augment(size: 8),
                                                       photometric: spec))
        }
        let photometric = MultiViewTransform(groups: [group(.ibotFirstGlobal), group(.ibotSecondGlobal)])
        let plain = MultiViewTransform(groups: [group(nil), group(nil)])
        let data = SyntheticDataset(count: 5)
        func run(_ views: MultiViewTransform) throws -> [Batch] {
            try all(BatchLoader(dataset: data, batchSize: 5, shuffle: true, dropLast: false, seed: 4, epoch: 1, views: views))
        }
        let batch = try XCTUnwrap(try run(photometric).first)
        assertSame([batch], try run(photometric))
        XCTAssertEqual(batch.views.map(\.shape), [[5, 3, 8, 8], [5, 3, 8, 8]])
        for (view, g) in photometric.groups.enumerated() {
            for (slot, index) in batch.sampleIndices.enumerated() {
                var rng = SeededRandom(seed: LoaderSeeds.viewSeed(seed: 4, epoch: 1, index: index, view: view))
                XCTAssertEqual(Array(batch.views[view].data[(slot * 192)..<((slot + 1) * 192)]),
                               g.transform.apply(try data.image(at: index), using: &rng), "view \(view) slot \(slot)")
            }
        }
        XCTAssertNotEqual(batch.views, try XCTUnwrap(try run(plain).first).views)
    }

    /// A single-view loader's batch lists its images as its only view.
    func testSingleViewBatchHasOneView() throws {
        let loader = BatchLoader(dataset: SyntheticDataset(count: 4), batchSize: 2, shuffle: false, dropLast: false, seed: 1,
                                 epoch: 0, channels: 3, imageSize: 8, mean: mean, std: std, augment: Augment(size: 8))
        let batch = try XCTUnwrap(try loader.next())
        XCTAssertNil(loader.views)
        XCTAssertEqual(batch.views, [batch.images])
    }
}
