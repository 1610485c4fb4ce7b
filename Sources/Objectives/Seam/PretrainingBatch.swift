import Tensor

/// One step's images as the objective asked for them (`PretrainingObjective.dataViews`): groups of
/// augmented views, each group one tensor (views·B, C, S, S), view-major (all images' first view,
/// then all images' second view, ...). Most objectives take one view per image: `images`.
public struct PretrainingBatch: Sendable {
    public struct Group: Sendable {
        public let views: Int
        public let images: Tensor
        public init(views: Int, images: Tensor) {
            precondition(images.shape[0] % views == 0, "a group of \(views) views needs a multiple of \(views) rows")
            self.views = views
            self.images = images
        }
    }

    public let groups: [Group]
    /// Images (not views) in the batch.
    public let count: Int

    /// One view per image.
    public init(images: Tensor) {
        groups = [Group(views: 1, images: images)]
        count = images.shape[0]
    }

    public init(groups: [Group]) {
        precondition(!groups.isEmpty, "a batch has at least one view group")
        let count = groups[0].images.shape[0] / groups[0].views
        precondition(groups.allSatisfy { $0.images.shape[0] == count * $0.views }, "every group must hold the same images")
        self.groups = groups
        self.count = count
    }

    /// The first group's tensor: one view per image for single-view objectives.
    public var images: Tensor { groups[0].images }

    /// View `v` of group `g` for every image, (B, C, S, S).
    public func view(_ v: Int, group g: Int = 0) -> Tensor {
        groups[g].images.batchSlice((v * count)..<((v + 1) * count))
    }

    /// Every view of every group, in order, each (B, C, S, S).
    public var allViews: [Tensor] {
        groups.indices.flatMap { g in (0..<groups[g].views).map { view($0, group: g) } }
    }

    /// The images `items` of every view (a data-parallel shard), in the same layout.
    public func shard(_ items: Range<Int>) -> PretrainingBatch {
        if items == 0..<count { return self }
        return PretrainingBatch(groups: groups.map { group in
            if group.views == 1 { return Group(views: 1, images: group.images.batchSlice(items)) }
            let views = (0..<group.views).map { v in group.images.batchSlice((v * count + items.lowerBound)..<(v * count + items.upperBound)) }
            return Group(views: group.views, images: Tensor(concatenatingBatches: views))
        })
    }
}

/// A group of views an objective wants per image: `views` crops at `size` pixels, each a
/// random-resized crop of `scale` of the image (nil: the recipe's scale), flipped half the time,
/// then the photometric changes of `photometric` (none when nil).
public struct ViewGroupSpec: Sendable, Equatable {
    public var views: Int
    public var size: Int
    public var scale: ClosedRange<Double>?
    public var photometric: PhotometricSpec?
    public init(views: Int, size: Int, scale: ClosedRange<Double>? = nil, photometric: PhotometricSpec? = nil) {
        self.views = views; self.size = size; self.scale = scale; self.photometric = photometric
    }
}

/// Photometric augmentations of a view, in torchvision's order and meaning (DINO/iBOT's
/// `DataAugmentationiBOT`): colour jitter with probability `jitterProbability`, random grayscale,
/// Gaussian blur with σ drawn from `blurSigma` (in pixels of a crop of `blurReferenceSize`, the
/// official crop size: 224 for global crops, 96 for local ones; scaled to the view's size),
/// solarization at 128. On one-channel images saturation, hue and grayscale do nothing.
public struct PhotometricSpec: Sendable, Equatable {
    public var brightness: Double = 0
    public var contrast: Double = 0
    public var saturation: Double = 0
    public var hue: Double = 0
    public var jitterProbability: Double = 0
    public var grayscaleProbability: Double = 0
    public var blurProbability: Double = 0
    public var blurSigma: ClosedRange<Double> = 0.1...2.0
    public var solarizeProbability: Double = 0
    public var blurReferenceSize: Int = 224

    public init(brightness: Double = 0, contrast: Double = 0, saturation: Double = 0, hue: Double = 0, jitterProbability: Double = 0,
                grayscaleProbability: Double = 0, blurProbability: Double = 0, blurSigma: ClosedRange<Double> = 0.1...2.0,
                solarizeProbability: Double = 0, blurReferenceSize: Int = 224) {
        self.brightness = brightness; self.contrast = contrast; self.saturation = saturation; self.hue = hue
        self.jitterProbability = jitterProbability; self.grayscaleProbability = grayscaleProbability
        self.blurProbability = blurProbability; self.blurSigma = blurSigma; self.solarizeProbability = solarizeProbability
        self.blurReferenceSize = blurReferenceSize
    }

    /// DINO/iBOT's first global crop: jitter (0.4, 0.4, 0.2, 0.1) p 0.8, grayscale p 0.2, blur p 1.
    public static let ibotFirstGlobal = PhotometricSpec(brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1, jitterProbability: 0.8,
                                                        grayscaleProbability: 0.2, blurProbability: 1)
    /// The second: the same jitter and grayscale, blur p 0.1, solarization p 0.2.
    public static let ibotSecondGlobal = PhotometricSpec(brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1, jitterProbability: 0.8,
                                                         grayscaleProbability: 0.2, blurProbability: 0.1, solarizeProbability: 0.2)
    /// The local crops (`local_transfo`): the same jitter and grayscale, blur p 0.5, no
    /// solarization; officially 96-pixel crops, so σ is in pixels of a 96-pixel crop.
    public static let ibotLocal = PhotometricSpec(brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1, jitterProbability: 0.8,
                                                  grayscaleProbability: 0.2, blurProbability: 0.5, blurReferenceSize: 96)
}

/// What the objective changes about one optimizer step: the weight decay of a schedule, and
/// tensors left untouched this step (no moment update, no decay: PyTorch skips a tensor whose
/// gradient is None).
public struct UpdateAdjustment: Sendable, Equatable {
    public var weightDecay: Double?
    public var frozen: Set<String>
    public init(weightDecay: Double? = nil, frozen: Set<String> = []) {
        self.weightDecay = weightDecay; self.frozen = frozen
    }
}
