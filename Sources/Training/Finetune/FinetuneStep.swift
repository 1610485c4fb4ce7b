import Tensor

/// A fine-tuning step split over the cores by images (`DataParallel`): each shard of the batch
/// runs the classifier's forward, cross-entropy and backward on its own copy, and the copies'
/// gradients are added into the main classifier's. The loss is the whole batch's mean and the
/// gradients equal the whole batch's up to float summation order; the optimizer stays outside.
public final class FinetuneStep: @unchecked Sendable {
    private let copies: DataParallel<Classifier>

    /// `shards` ≤ 1 runs every step on `classifier` alone (ops split over the threads); a
    /// distributed `collective` has one shard per rank (see `DataParallel`).
    public init(classifier: Classifier, shards: Int, collective: any Collective = SingleProcess()) {
        copies = DataParallel(main: classifier, shards: shards, collective: collective, makeCopy: { classifier.sameLayout() },
                              weights: \.parameters, trainable: \.parameters)
    }

    public var classifier: Classifier { copies.main }
    public var shards: Int { copies.shards }

    /// Forward, label-smoothed cross-entropy and backward of `images` (B, C, H, W) with `labels`;
    /// gradients accumulate into `classifier`'s parameters. Returns the batch's mean loss.
    public func trainStep(_ images: Tensor, labels: [Int], smoothing: Float) -> Float {
        let batch = images.shape[0]
        let losses = copies.run(batch: batch) { classifier, items in
            classifier.trainStep(images.batchSlice(items), labels: Array(labels[items]), smoothing: smoothing, lossBatch: batch)
        }
        // Each shard's loss is already divided by the whole batch: they add up.
        return losses.reduce(0, +)
    }
}
