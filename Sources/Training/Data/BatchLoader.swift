import Dispatch
import Foundation
import ImageKit
import Tensor

/// One batch of model input.
public struct Batch: Sendable {
    /// Position of the batch in the epoch (0, 1, …).
    public let index: Int
    /// (B, C, H, W) normalized images. B is the batch size except for the last batch of an epoch
    /// without `dropLast` (or when unreadable samples could not be replaced). For a multi-view
    /// loader, the first view group: (views · B, C, size, size).
    public let images: Tensor
    /// Label of each image; −1 for unlabeled samples.
    public let labels: [Int]
    /// Dataset index of each image.
    public let sampleIndices: [Int]
    /// One tensor per view group of a multi-view loader (`MultiViewTransform.groupTensors`:
    /// (views · B, C, size, size), view-major; `images` is the first); `[images]` otherwise.
    public let views: [Tensor]

    init(index: Int, images: Tensor, labels: [Int], sampleIndices: [Int], views: [Tensor]? = nil) {
        self.index = index
        self.images = images
        self.labels = labels
        self.sampleIndices = sampleIndices
        self.views = views ?? [images]
    }

    public var count: Int { sampleIndices.count }
}

/// A sample the loader skipped because its image could not be loaded.
public struct SkippedSample: Sendable, Hashable {
    public let index: Int
    public let name: String
    public let reason: String
}

/// Where the time of data loading went, over the batches `next()` has returned.
public struct LoaderStats: Sendable, Hashable {
    /// Batches and images returned.
    public var batches = 0
    public var images = 0
    /// Wall time spent producing those batches (decode + augment + normalize; on the background
    /// queue when prefetching, in `next()` otherwise).
    public var produceSeconds = 0.0
    /// Time the caller spent inside `next()` waiting for (or, with prefetch 0, producing) a batch:
    /// the data loader's share of the training step.
    public var waitSeconds = 0.0
    /// The same two for the most recent batch.
    public var lastProduceSeconds = 0.0
    public var lastWaitSeconds = 0.0
    /// Unreadable samples skipped so far.
    public var skipped = 0

    /// Images per second of producing work (a throughput independent of the consumer).
    public var producedImagesPerSecond: Double { produceSeconds > 0 ? Double(images) / produceSeconds : 0 }
}

/// Iterates one epoch of a dataset in batches, producing them ahead on a background queue.
///
/// Determinism: the epoch order is `LoaderSeeds.epochOrder(count:shuffle:seed:epoch:)` and sample
/// `i`'s augmentation uses `SeededRandom(seed: LoaderSeeds.sampleSeed(seed:epoch:index: i))` (view v
/// of a multi-view loader `LoaderSeeds.viewSeed(seed:epoch:index: i, view: v)`), so the batches
/// depend only on (dataset, seed, epoch, settings) — not on thread timing, `prefetch` or `workers`.
/// Batch k holds the samples at positions k·B ..< (k+1)·B of the order; a resumed run passing
/// `startBatch: k` gets exactly the batches k, k+1, … of an uninterrupted run.
///
/// Unreadable samples are skipped and the batch is filled from the samples at the following
/// positions (which then also appear in their own batch: batch boundaries never move, so resuming
/// stays exact). Past `allowedSkips(count:fraction:)` of them in an epoch (`maxSkipFraction`, 1%,
/// but at least `minimumSkips`), `next()` throws `DatasetError.tooManyUnreadable` naming a bad file.
///
/// Threads: one serial background queue builds batches in order, each batch's images decoded and
/// augmented in parallel with `DispatchQueue.concurrentPerform` over `workers` chunks. `next()` may
/// be called from any thread (calls are serialized).
public final class BatchLoader: @unchecked Sendable {
    // @unchecked Sendable: the stored `let`s are immutable Sendable values; every mutable field
    // lives in `pipeline` and is only touched with its condition locked.

    public let dataset: any ImageDataset
    public let batchSize: Int
    public let dropLast: Bool
    public let seed: UInt64
    public let epoch: Int
    public let startBatch: Int
    public let prefetch: Int
    public let workers: Int
    /// The transform of every sample, or of the first view group of a multi-view loader.
    public let transform: SampleTransform
    /// Several augmented views of each sample (nil: one image per sample through `transform`).
    public let views: MultiViewTransform?
    /// The epoch's visiting order (dataset indices).
    public let order: [Int]
    /// Number of batches in the epoch (counting from 0, not from `startBatch`).
    public let batchCount: Int
    /// Most unreadable samples tolerated in the epoch: `allowedSkips(count:fraction:)`.
    public let allowedSkips: Int

    /// Unreadable samples an epoch of any dataset tolerates, however small: 1% of 39 images is none,
    /// and one damaged photo should not stop a small folder.
    public static let minimumSkips = 3

    /// Unreadable samples tolerated among `count`: ⌊fraction × count⌋, or `minimumSkips` when that is more,
    /// but never half of a tiny dataset (each skipped one is named in a warning).
    public static func allowedSkips(count: Int, fraction: Double) -> Int {
        max(Int((fraction * Double(count)).rounded(.down)), min(minimumSkips, (count - 1) / 2))
    }

    private let maker: BatchMaker
    private let pipeline: Pipeline

    public convenience init(dataset: any ImageDataset, batchSize: Int, shuffle: Bool, dropLast: Bool, seed: UInt64, epoch: Int,
                            startBatch: Int = 0, channels: Int, imageSize: Int, mean: [Float], std: [Float],
                            augment: Augment?, cropPct: Double = 1, prefetch: Int = 2, workers: Int? = nil,
                            maxSkipFraction: Double = 0.01) {
        let transform = SampleTransform(channels: channels, imageSize: imageSize, mean: mean, std: std,
                                        augment: augment, cropPct: cropPct)
        self.init(dataset: dataset, batchSize: batchSize, shuffle: shuffle, dropLast: dropLast, seed: seed, epoch: epoch,
                  startBatch: startBatch, transform: transform, views: nil, prefetch: prefetch, workers: workers,
                  maxSkipFraction: maxSkipFraction)
    }

    /// A multi-view loader: every sample becomes all the views of `views` (each view's crop from
    /// (seed, epoch, index, view)); `Batch.views` holds one tensor per group.
    public convenience init(dataset: any ImageDataset, batchSize: Int, shuffle: Bool, dropLast: Bool, seed: UInt64, epoch: Int,
                            startBatch: Int = 0, views: MultiViewTransform, prefetch: Int = 2, workers: Int? = nil,
                            maxSkipFraction: Double = 0.01) {
        self.init(dataset: dataset, batchSize: batchSize, shuffle: shuffle, dropLast: dropLast, seed: seed, epoch: epoch,
                  startBatch: startBatch, transform: views.groups[0].transform, views: views, prefetch: prefetch,
                  workers: workers, maxSkipFraction: maxSkipFraction)
    }

    private init(dataset: any ImageDataset, batchSize: Int, shuffle: Bool, dropLast: Bool, seed: UInt64, epoch: Int,
                 startBatch: Int, transform: SampleTransform, views: MultiViewTransform?, prefetch: Int, workers: Int?,
                 maxSkipFraction: Double) {
        precondition(batchSize > 0, "BatchLoader: batchSize must be positive")
        precondition(startBatch >= 0, "BatchLoader: startBatch must not be negative")
        precondition(prefetch >= 0, "BatchLoader: prefetch must not be negative")
        precondition((0...1).contains(maxSkipFraction), "BatchLoader: maxSkipFraction must be in 0...1")
        self.dataset = dataset
        self.batchSize = batchSize
        self.dropLast = dropLast
        self.seed = seed
        self.epoch = epoch
        self.startBatch = startBatch
        self.prefetch = prefetch
        self.workers = max(1, workers ?? ProcessInfo.processInfo.activeProcessorCount)
        self.transform = transform
        self.views = views
        order = LoaderSeeds.epochOrder(count: dataset.count, shuffle: shuffle, seed: seed, epoch: epoch)
        batchCount = dropLast ? dataset.count / batchSize : (dataset.count + batchSize - 1) / batchSize
        allowedSkips = Self.allowedSkips(count: dataset.count, fraction: maxSkipFraction)
        maker = BatchMaker(dataset: dataset, order: order, batchSize: batchSize, seed: seed, epoch: epoch,
                           transform: transform, views: views, workers: self.workers, allowedSkips: allowedSkips)
        pipeline = Pipeline(first: startBatch)
        if prefetch > 0 && startBatch < batchCount {
            let (maker, pipeline, batchCount, prefetch) = (maker, pipeline, batchCount, prefetch)
            DispatchQueue(label: "bootmae.batch-loader", qos: .userInitiated).async {
                pipeline.produce(maker: maker, batches: startBatch..<batchCount, prefetch: prefetch)
            }
        }
    }

    deinit {
        pipeline.cancel()
    }

    /// The next batch of the epoch, or nil after the last one. Throws `DatasetError.tooManyUnreadable`
    /// (and again on every later call) when too many samples could not be loaded.
    public func next() throws(DatasetError) -> Batch? {
        let started = ContinuousClock.now
        let condition = pipeline.condition
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let error = pipeline.error { throw error }
            let k = pipeline.consumed
            guard k < batchCount else { return nil }
            let produced: Produced
            if prefetch == 0 {
                produced = maker.make(k, state: &pipeline.syncState)
            } else if let ready = pipeline.ready.removeValue(forKey: k) {
                produced = ready
            } else {
                condition.wait()
                continue
            }
            pipeline.consumed = k + 1
            condition.broadcast()  // a slot is free for the producer
            pipeline.skippedSamples += produced.skipped
            pipeline.stats.skipped = pipeline.skippedSamples.count
            if let error = produced.error {
                pipeline.error = error
                throw error
            }
            guard let batch = produced.batch else { continue }  // every sample failed: next batch
            let waited = (ContinuousClock.now - started).seconds
            pipeline.stats.batches += 1
            pipeline.stats.images += batch.count
            pipeline.stats.produceSeconds += produced.seconds
            pipeline.stats.lastProduceSeconds = produced.seconds
            pipeline.stats.waitSeconds += waited
            pipeline.stats.lastWaitSeconds = waited
            return batch
        }
    }

    /// Timings and counts over the batches returned so far.
    public var stats: LoaderStats { pipeline.locked { $0.stats } }
    /// Number of unreadable samples skipped in the batches returned so far.
    public var skipped: Int { pipeline.locked { $0.skippedSamples.count } }
    /// The skipped samples, with the reason each failed.
    public var skippedSamples: [SkippedSample] { pipeline.locked { $0.skippedSamples } }
}

/// What building one batch gave.
struct Produced: Sendable {
    var batch: Batch?
    /// Samples that failed for the first time in this batch.
    var skipped: [SkippedSample]
    var seconds: Double
    var error: DatasetError?
}

/// The producer's running state; owned by one thread at a time.
struct ProducerState: Sendable {
    /// Dataset indices known to be unreadable (not tried again when they come up as fillers).
    var failed: Set<Int> = []
}

/// Builds batch k from the epoch order. An immutable value, shared by the producer queue and `next()`.
struct BatchMaker: Sendable {
    let dataset: any ImageDataset
    let order: [Int]
    let batchSize: Int
    let seed: UInt64
    let epoch: Int
    let transform: SampleTransform
    let views: MultiViewTransform?
    let workers: Int
    let allowedSkips: Int

    /// Floats per sample: one image, or all of its views.
    var perSample: Int { views?.tensorCount ?? transform.tensorCount }

    /// The shorter side a training sample may be decoded down to (JPEGs only, `ImageDecoder`), so
    /// that no crop has fewer pixels than it is resized to: a RandomResizedCrop of scale ≥ s and
    /// ratio within [r, R] keeps at least √(s · min(r, 1/R)) of the shorter side, hence the side ÷
    /// that (and at least 3 × the output). 0, the whole image, for evaluation: its centre crop and
    /// resize follow the server's preprocessing exactly.
    var decodeSide: Int {
        let transforms = views?.groups.map(\.transform) ?? [transform]
        var side = 0
        for transform in transforms {
            guard let crop = transform.augment?.crop else { return 0 }
            let kept = (crop.scale.lowerBound * min(crop.ratio.lowerBound, 1 / crop.ratio.upperBound)).squareRoot()
            side = max(side, 3 * crop.size, Int((Double(crop.size) / kept).rounded(.up)))
        }
        return side
    }

    func make(_ k: Int, state: inout ProducerState) -> Produced {
        let started = ContinuousClock.now
        let start = k * batchSize
        let target = min(batchSize, order.count - start)
        let per = perSample
        var floats = [Float](repeating: 0, count: target * per)
        var indices: [Int] = []
        indices.reserveCapacity(target)
        var skipped: [SkippedSample] = []
        var position = start
        // Fill the batch from positions start, start+1, … until it is full or the epoch ends.
        while indices.count < target && position < order.count {
            let need = target - indices.count
            var candidates: [Int] = []
            while candidates.count < need && position < order.count {
                let index = order[position]
                if !state.failed.contains(index) { candidates.append(index) }
                position += 1
            }
            let errors = floats.withUnsafeMutableBufferPointer { buffer in
                load(candidates, into: UnsafeMutableBufferPointer(rebasing: buffer[(indices.count * per)...]))
            }
            // Compact: move each success down over the slots of earlier failures.
            floats.withUnsafeMutableBufferPointer { buffer in
                let base = buffer.baseAddress! + indices.count * per
                var kept = 0
                for (slot, index) in candidates.enumerated() {
                    if let error = errors[slot] {
                        state.failed.insert(index)
                        skipped.append(SkippedSample(index: index, name: dataset.sampleName(at: index), reason: error.reason))
                        continue
                    }
                    if kept != slot { (base + kept * per).update(from: base + slot * per, count: per) }
                    kept += 1
                }
            }
            indices += candidates.enumerated().filter { errors[$0.offset] == nil }.map(\.element)
        }
        let seconds = (ContinuousClock.now - started).seconds
        if state.failed.count > allowedSkips, let example = skipped.first {
            let error = DatasetError.tooManyUnreadable(skipped: state.failed.count, allowed: allowedSkips,
                                                       total: order.count, example: example.name, reason: example.reason)
            return Produced(batch: nil, skipped: skipped, seconds: seconds, error: error)
        }
        guard !indices.isEmpty else { return Produced(batch: nil, skipped: skipped, seconds: seconds, error: nil) }
        floats.removeLast(floats.count - indices.count * per)
        let labels = indices.map { dataset.label(at: $0) ?? -1 }
        let batch: Batch
        if let views {
            let groups = views.groupTensors(floats, images: indices.count)
            batch = Batch(index: k, images: groups[0], labels: labels, sampleIndices: indices, views: groups)
        } else {
            let images = Tensor(shape: [indices.count, transform.channels, transform.imageSize, transform.imageSize], data: floats)
            batch = Batch(index: k, images: images, labels: labels, sampleIndices: indices)
        }
        return Produced(batch: batch, skipped: skipped, seconds: seconds, error: nil)
    }

    /// Decodes and transforms `indices` into consecutive slots of `output`, in parallel. Returns the
    /// error of each failed slot (nil where the sample loaded).
    private func load(_ indices: [Int], into output: UnsafeMutableBufferPointer<Float>) -> [DatasetError?] {
        let (per, side) = (perSample, decodeSide)
        var errors = [DatasetError?](repeating: nil, count: indices.count)
        let chunks = min(workers, indices.count)
        guard chunks > 0 else { return errors }
        errors.withUnsafeMutableBufferPointer { errorSlots in
            // Each chunk writes disjoint slots of `output` and `errorSlots`; concurrentPerform returns
            // after all chunks finished, so the pointers outlive every access.
            let shared = SharedBuffers(output: output, errors: errorSlots)
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                for slot in stride(from: chunk, to: indices.count, by: chunks) {
                    let index = indices[slot]
                    switch dataset.loadImage(at: index, minimumSide: side) {
                    case .success(let image):
                        let slice = UnsafeMutableBufferPointer(rebasing: shared.output[(slot * per)..<((slot + 1) * per)])
                        if let views {
                            views.apply(image, seed: seed, epoch: epoch, index: index, into: slice)
                        } else {
                            var rng = SeededRandom(seed: LoaderSeeds.sampleSeed(seed: seed, epoch: epoch, index: index))
                            transform.apply(image, using: &rng, into: slice)
                        }
                    case .failure(let error):
                        shared.errors[slot] = error
                    }
                }
            }
        }
        return errors
    }
}

/// Pointers handed to `concurrentPerform`'s workers, which write disjoint elements.
private struct SharedBuffers: @unchecked Sendable {
    let output: UnsafeMutableBufferPointer<Float>
    let errors: UnsafeMutableBufferPointer<DatasetError?>
}

/// State shared by the producer queue and the consumer. Every mutable field is guarded by
/// `condition` (hence @unchecked Sendable).
private final class Pipeline: @unchecked Sendable {
    let condition = NSCondition()
    /// Finished batches not yet taken, by batch index.
    var ready: [Int: Produced] = [:]
    /// The next batch `next()` returns.
    var consumed: Int
    var cancelled = false
    /// The first fatal error (returned again by every later `next()`).
    var error: DatasetError?
    var stats = LoaderStats()
    var skippedSamples: [SkippedSample] = []
    /// Producer state when `prefetch` is 0 (batches are then made inside `next()`).
    var syncState = ProducerState()

    init(first: Int) { consumed = first }

    func locked<T>(_ body: (Pipeline) -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        return body(self)
    }

    func cancel() {
        locked { $0.cancelled = true }
        condition.broadcast()
    }

    /// The producer loop: makes `batches` in order, at most `prefetch` ahead of the consumer.
    func produce(maker: BatchMaker, batches: Range<Int>, prefetch: Int) {
        var state = ProducerState()
        for k in batches {
            condition.lock()
            while !cancelled && k >= consumed + prefetch { condition.wait() }
            let stop = cancelled
            condition.unlock()
            if stop { return }
            let produced = maker.make(k, state: &state)
            condition.lock()
            ready[k] = produced
            condition.broadcast()
            condition.unlock()
            if produced.error != nil { return }
        }
    }
}

extension DatasetError {
    /// The reason part of an unreadable-sample error.
    var reason: String {
        if case .unreadableImage(_, let reason) = self { return reason }
        return description
    }
}

extension Duration {
    var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) * 1e-18
    }
}
