import ImageKit

/// The first `count` samples of another dataset (quick experiments, smoke tests). With a stride,
/// every `stride`-th sample instead, which keeps the class balance of sorted folders.
public struct SubsetDataset: ImageDataset {
    public let base: any ImageDataset
    public let indices: [Int]

    public init(_ base: any ImageDataset, count: Int, spread: Bool = true) {
        self.base = base
        let n = min(count, base.count)
        let stride = spread ? max(1, base.count / max(n, 1)) : 1
        indices = (0..<n).map { $0 * stride }
    }

    public var count: Int { indices.count }
    public var classes: [String] { base.classes }
    public var channels: Int { base.channels }
    public func label(at index: Int) -> Int? { base.label(at: indices[index]) }
    public func image(at index: Int) throws -> Image { try base.image(at: indices[index]) }
    public func image(at index: Int, minimumSide: Int) throws -> Image { try base.image(at: indices[index], minimumSide: minimumSide) }
    public func sampleName(at index: Int) -> String { base.sampleName(at: indices[index]) }
}
