/// An additive bias on self-attention logits, S = q·kᵀ/√hd + bias, read without copies: the
/// (image b, head h) pair's bias is the contiguous (N, N) matrix at offset b·imageStride + h·headStride
/// of `values`. A stride of 0 shares the bias along that axis: BEiT's relative position bias is one
/// (H, N, N) table for every image (microsoft/unilm beit/modeling_finetune.py `Attention`), LoMaR's
/// contextual iRPE term q_i·r_{b(i,j)} is one per image and head (junchen14/LoMaR irpe.py).
///
/// Backward adds d bias with the same convention, so a shared bias receives the sum over the
/// images (and heads) that read it.
public struct AttentionBias: Sendable {
    public var values: Tensor
    public var imageStride: Int
    public var headStride: Int

    public init(values: Tensor, imageStride: Int, headStride: Int) {
        precondition(imageStride >= 0 && headStride >= 0, "attention bias: negative stride")
        self.values = values
        self.imageStride = imageStride
        self.headStride = headStride
    }

    /// One (H, N, N) bias for all images (BEiT's relative position bias).
    public static func perHead(_ values: Tensor) -> AttentionBias {
        let (n, m) = (values.shape[values.rank - 2], values.shape[values.rank - 1])
        return AttentionBias(values: values, imageStride: 0, headStride: n * m)
    }

    /// A (B, H, N, N) bias, one matrix per image and head (LoMaR's iRPE term).
    public static func perImageAndHead(_ values: Tensor) -> AttentionBias {
        precondition(values.rank == 4, "per-image-and-head attention bias needs (B, H, N, N), got \(values.shape)")
        let (h, n, m) = (values.shape[1], values.shape[2], values.shape[3])
        return AttentionBias(values: values, imageStride: h * n * m, headStride: n * m)
    }

    /// Where each pair's matrix lies, without the values: what backward needs to add d bias. Kept
    /// for backward instead of the bias itself, which would hold an (R, H, N, N) tensor per layer
    /// alive until then (LoMaR's iRPE term: as large as the attention probabilities).
    public var layout: Layout { Layout(shape: values.shape, imageStride: imageStride, headStride: headStride) }

    /// Traps unless every pair's (queries × keys) matrix lies inside `values`.
    func check(batch: Int, heads: Int, queries: Int, keys: Int) {
        let last = layout.offset(image: batch - 1, head: heads - 1) + queries * keys
        precondition(last <= values.count,
                     "attention bias \(values.shape) (strides image \(imageStride), head \(headStride)) too small for \(batch)×\(heads) pairs of \(queries)×\(keys)")
    }

    public struct Layout: Sendable {
        /// The shape of the bias's values (and of its gradient).
        public let shape: [Int]
        public let imageStride: Int
        public let headStride: Int

        /// Offset of the (image, head) pair's matrix in the values.
        @inlinable
        func offset(image: Int, head: Int) -> Int { image * imageStride + head * headStride }

        /// True when no two pairs read overlapping elements, so their gradients can be added in
        /// parallel without a race; false for shared biases (a stride of 0 over more than one pair).
        func pairsAreDisjoint(batch: Int, heads: Int, size: Int) -> Bool {
            var offsets: [Int] = []
            offsets.reserveCapacity(batch * heads)
            for b in 0..<batch { for h in 0..<heads { offsets.append(offset(image: b, head: h)) } }
            offsets.sort()
            return zip(offsets, offsets.dropFirst()).allSatisfy { $1 - $0 >= size }
        }
    }
}
