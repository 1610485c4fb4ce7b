import ImageKit
import Tensor

/// Several augmented crops ("views") of each image, in groups of one size: the multi-crop input of
/// DINO and iBOT (bytedance/ibot main_ibot.py `DataAugmentationiBOT`: 2 global crops at the model
/// size with scale (0.25, 1) and `local_crops_number` local crops of 96 px with scale (0.05, 0.25)).
/// Each view is RandomResizedCrop + flip, then its group's photometric augmentations when the
/// group's transform has them (`SampleTransform.photometric`: iBOT's colour jitter, grayscale,
/// blur, solarization).
///
/// Determinism: view v of dataset index i draws from its own stream,
/// `SeededRandom(seed: LoaderSeeds.viewSeed(seed:epoch:index: i, view: v))`, v counted over all
/// groups, so every view depends only on (seed, epoch, index, view) and a resumed run sees the
/// same crops.
public struct MultiViewTransform: Sendable {
    /// `views` crops of one size, all through `transform` (which must augment).
    public struct Group: Sendable {
        public let views: Int
        public let transform: SampleTransform

        public init(views: Int, transform: SampleTransform) {
            precondition(views > 0, "MultiViewTransform: a group needs at least one view")
            precondition(transform.augment != nil, "MultiViewTransform: every view must be augmented")
            self.views = views
            self.transform = transform
        }
    }

    public let groups: [Group]

    public init(groups: [Group]) {
        precondition(!groups.isEmpty, "MultiViewTransform: no view group")
        precondition(Set(groups.map(\.transform.channels)).count == 1, "MultiViewTransform: groups differ in channels")
        self.groups = groups
    }

    /// iBOT's multi-crop: `globalViews` crops of `globalSize` with `globalScale`, then (when
    /// `localViews` > 0) `localViews` crops of `localSize` with `localScale`; aspect ratios 3/4…4/3,
    /// bicubic, each flipped with probability `horizontalFlip`.
    public static func multiCrop(channels: Int, mean: [Float], std: [Float], globalSize: Int, globalViews: Int = 2,
                                 globalScale: ClosedRange<Double> = 0.25...1, localSize: Int = 96, localViews: Int = 0,
                                 localScale: ClosedRange<Double> = 0.05...0.25, horizontalFlip: Double = 0.5) -> MultiViewTransform {
        func group(_ views: Int, _ size: Int, _ scale: ClosedRange<Double>) -> Group {
            let augment = Augment(size: size, scale: scale, horizontalFlip: horizontalFlip)
            return Group(views: views, transform: SampleTransform(channels: channels, imageSize: size, mean: mean, std: std,
                                                                  augment: augment))
        }
        var groups = [group(globalViews, globalSize, globalScale)]
        if localViews > 0 { groups.append(group(localViews, localSize, localScale)) }
        return MultiViewTransform(groups: groups)
    }

    public var channels: Int { groups[0].transform.channels }
    /// Views per image, over all groups.
    public var viewCount: Int { groups.reduce(0) { $0 + $1.views } }
    /// Floats per image, all views: the groups one after another, each view after view.
    public var tensorCount: Int { groups.reduce(0) { $0 + $1.views * $1.transform.tensorCount } }

    /// Writes every view of `image` (dataset index `index`) into `output`, in `tensorCount` order.
    public func apply(_ image: Image, seed: UInt64, epoch: Int, index: Int, into output: UnsafeMutableBufferPointer<Float>) {
        precondition(output.count >= tensorCount, "output needs \(tensorCount) floats")
        var (view, offset) = (0, 0)
        for group in groups {
            let per = group.transform.tensorCount
            for _ in 0..<group.views {
                var rng = SeededRandom(seed: LoaderSeeds.viewSeed(seed: seed, epoch: epoch, index: index, view: view))
                group.transform.apply(image, using: &rng, into: UnsafeMutableBufferPointer(rebasing: output[offset..<(offset + per)]))
                view += 1
                offset += per
            }
        }
    }

    /// `images` samples laid out as `apply` writes them, one after another, regrouped into one
    /// tensor per group: (views · images, C, size, size), view-major — every image's first view,
    /// then every image's second — the order in which iBOT's `MultiCropWrapper` concatenates
    /// crops of one resolution (bytedance/ibot utils.py `MultiCropWrapper`).
    public func groupTensors(_ samples: [Float], images: Int) -> [Tensor] {
        precondition(samples.count == images * tensorCount, "MultiViewTransform: \(samples.count) floats for \(images) images")
        var groupOffset = 0
        return groups.map { group in
            let (per, views, t) = (group.transform.tensorCount, group.views, group.transform)
            let shape = [views * images, t.channels, t.imageSize, t.imageSize]
            let tensor = Tensor(shape: shape) { out in
                samples.withUnsafeBufferPointer { src in
                    for v in 0..<views { for s in 0..<images {
                        let from = src.baseAddress! + s * tensorCount + groupOffset + v * per
                        (out + (v * images + s) * per).update(from: from, count: per)
                    } }
                }
            }
            groupOffset += views * per
            return tensor
        }
    }
}
