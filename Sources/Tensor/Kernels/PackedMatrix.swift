import CKernels

/// A Linear weight (out, in) rearranged once for the AVX-512 inference GEMM of `CKernels`
/// (48-column panels, k-major), so a forward pass streams it without repacking: y = x·Wᵀ + b.
///
/// Why: OpenBLAS packs both operands on every call; X's packing alone was 8.6% of a tiny-ViT
/// forward, and its kernel reaches 91–106 GFLOP/s on one Zen 4 core where this one reaches
/// 113–117 at the same shapes (`bootmae-bench --gemm-strategies`). Weights change every training step, so only
/// inference packs them (`Parameter.packForInference`).
public final class PackedMatrix: @unchecked Sendable {
    /// The weight's shape: (out, in).
    public let outFeatures: Int
    public let inFeatures: Int
    private let storage: UnsafeMutableRawPointer

    /// Whether this CPU runs the kernel (AVX-512); without it weights stay plain and BLAS is used.
    public static let isAvailable: Bool = ck_gemm_available() != 0

    /// Packs a (out, in) weight; nil when the CPU cannot run the kernel.
    public init?(_ weight: Tensor) {
        guard Self.isAvailable, weight.rank == 2, weight.count > 0 else { return nil }
        (outFeatures, inFeatures) = (weight.shape[0], weight.shape[1])
        let count = ck_gemm_packed_count(Int32(outFeatures), Int32(inFeatures))
        storage = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64)
        weight.withPointer { ck_gemm_pack($0, Int32(outFeatures), Int32(inFeatures), storage.assumingMemoryBound(to: Float.self)) }
    }

    deinit { storage.deallocate() }

    public var shape: [Int] { [outFeatures, inFeatures] }

    /// y = x·Wᵀ + b for `rows` rows of x, or with `accumulate` y += x·Wᵀ + b. The output columns
    /// are split over the `Parallel` workers in panel-aligned ranges (every worker reads all of x
    /// and its share of W), once the product is large enough to pay for a fork.
    public func multiply(_ x: UnsafePointer<Float>, rows: Int, bias: UnsafePointer<Float>?,
                         into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let w = UnsafePointer(storage.assumingMemoryBound(to: Float.self))
        let (n, k) = (Int32(outFeatures), Int32(inFeatures))
        let panels = (outFeatures + Int(ck_gemm_panel_width()) - 1) / Int(ck_gemm_panel_width())
        let parts = rows * outFeatures * inFeatures >= 1 << 21 ? min(Parallel.workers, panels) : 1
        if parts <= 1 {
            ck_gemm_packed(x, Int32(rows), k, w, bias, y, n, 0, n, accumulate ? 1 : 0)
            return
        }
        Parallel.forEachChunk(parts) { chunk in
            for part in chunk {
                ck_gemm_packed(x, Int32(rows), k, w, bias, y, n, ck_gemm_split(n, Int32(parts), Int32(part)),
                               ck_gemm_split(n, Int32(parts), Int32(part + 1)), accumulate ? 1 : 0)
            }
        }
    }
}
