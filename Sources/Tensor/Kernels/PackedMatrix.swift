import CKernels

/// A Linear weight (out, in) rearranged once for an inference GEMM of `CKernels`, so a forward pass
/// streams it without repacking: y = x·Wᵀ + b. fp32: 48-column k-major panels for the AVX-512
/// kernel (gemm.c). bf16: the weight rounded to bf16 in 48-column panels of VNNI pairs, which both
/// the AVX512-BF16 and the AMX kernel read (CKernelsBF16.h); x is rounded per call.
///
/// Why: OpenBLAS packs both operands on every call; X's packing alone was 8.6% of a tiny-ViT
/// forward, and its kernel reaches 91–106 GFLOP/s on one Zen 4 core where this one reaches
/// 113–117 at the same shapes (`bootmae-bench --gemm-strategies`). Weights change every training step, so only
/// inference packs them (`Parameter.packForInference`).
public final class PackedMatrix: @unchecked Sendable {
    /// The weight's shape: (out, in).
    public let outFeatures: Int
    public let inFeatures: Int
    /// The kernel every multiply runs (its precision is the storage's).
    public let kernel: InferenceKernel
    private let storage: UnsafeMutableRawPointer

    /// Whether this CPU runs the kernel (AVX-512); without it weights stay plain and BLAS is used.
    public static let isAvailable: Bool = ck_gemm_available() != 0

    /// Whether the fp32 and AVX512-BF16 kernels prefetch each tile's rows of y before computing it
    /// (CKernels' gemm_prefetch.h; on by default). The same bits either way; benchmarks switch it
    /// between calls, never during one (`bootmae-bench forward --compare-prefetch-y on,off`).
    public static var prefetchesOutput: Bool {
        get { ck_gemm_prefetch_output() }
        set { ck_gemm_set_prefetch_output(newValue) }
    }

    /// Packs a (out, in) weight for the best kernel here at `precision`; nil when that is BLAS
    /// (the CPU has no AVX-512).
    public convenience init?(_ weight: Tensor, precision: InferencePrecision = .fp32) {
        self.init(weight, kernel: InferenceKernel.best(for: precision))
    }

    /// Packs for a given kernel (tests and the bench compare kernels); nil for BLAS or a kernel this CPU does not run.
    public init?(_ weight: Tensor, kernel: InferenceKernel) {
        guard kernel != .fp32BLAS, kernel.runsHere, weight.rank == 2, weight.count > 0 else { return nil }
        (outFeatures, inFeatures) = (weight.shape[0], weight.shape[1])
        self.kernel = kernel
        let (n, k) = (Int32(outFeatures), Int32(inFeatures))
        if kernel.bf16Kernel != nil {
            let count = ck_gemm_bf16_packed_count(n, k)
            storage = UnsafeMutableRawPointer.allocate(byteCount: count * 2, alignment: 64)
            weight.withPointer { ck_gemm_bf16_pack($0, n, k, storage.assumingMemoryBound(to: UInt16.self)) }
        } else {
            let count = ck_gemm_packed_count(n, k)
            storage = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64)
            weight.withPointer { ck_gemm_pack($0, n, k, storage.assumingMemoryBound(to: Float.self)) }
        }
    }

    deinit { storage.deallocate() }

    public var shape: [Int] { [outFeatures, inFeatures] }
    public var precision: InferencePrecision { kernel.precision }

    /// y = x·Wᵀ + b for `rows` rows of x, or with `accumulate` y += x·Wᵀ + b. The output columns
    /// are split over the `Parallel` workers in panel-aligned ranges (every worker reads all of x
    /// and its share of W), once the product is large enough to pay for a fork.
    public func multiply(_ x: UnsafePointer<Float>, rows: Int, bias: UnsafePointer<Float>?,
                         into y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let n = outFeatures
        let panels = (n + Int(ck_gemm_panel_width()) - 1) / Int(ck_gemm_panel_width())
        let parts = rows * outFeatures * inFeatures >= 1 << 21 ? min(Parallel.workers, panels) : 1
        if parts <= 1 {
            multiply(x, rows: rows, bias: bias, into: y, columns: 0..<n, accumulate: accumulate)
            return
        }
        Parallel.forEachChunk(parts) { chunk in
            for part in chunk {
                let (begin, end) = (ck_gemm_split(Int32(n), Int32(parts), Int32(part)), ck_gemm_split(Int32(n), Int32(parts), Int32(part + 1)))
                multiply(x, rows: rows, bias: bias, into: y, columns: Int(begin)..<Int(end), accumulate: accumulate)
            }
        }
    }

    /// Columns `columns` of y alone, on the calling thread (any range is correct).
    func multiply(_ x: UnsafePointer<Float>, rows: Int, bias: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>,
                  columns: Range<Int>, accumulate: Bool) {
        let (n, k, m) = (Int32(outFeatures), Int32(inFeatures), Int32(rows))
        let (begin, end, add) = (Int32(columns.lowerBound), Int32(columns.upperBound), Int32(accumulate ? 1 : 0))
        if let bf16 = kernel.bf16Kernel {
            ck_gemm_bf16(bf16, x, m, k, storage.assumingMemoryBound(to: UInt16.self), bias, y, n, begin, end, add)
        } else {
            ck_gemm_packed(x, m, k, storage.assumingMemoryBound(to: Float.self), bias, y, n, begin, end, add)
        }
    }
}
