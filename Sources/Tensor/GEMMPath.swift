import CBLAS
import CKernels

/// One of `CKernels`' training-GEMM micro-kernels (`ck_sgemm`), named as `BOOTMAE_GEMM` names it.
public enum GEMMKernel: String, CaseIterable, Sendable {
    case avx512, avx2, portable

    var isa: ck_gemm_isa {
        switch self {
        case .avx512: CK_GEMM_AVX512
        case .avx2: CK_GEMM_AVX2
        case .portable: CK_GEMM_PORTABLE
        }
    }

    /// Whether this CPU runs the kernel (`CPUFeatures`).
    public var isSupported: Bool { ck_gemm_isa_supported(isa) }

    /// The fastest kernel this CPU runs.
    public static var best: GEMMKernel {
        let isa = ck_gemm_best_isa()
        return allCases.first { $0.isa == isa }!
    }

    /// Whether the kernels prefetch each tile's rows of C before computing it (CKernels' sgemm.c; on
    /// by default). The same bits either way; benchmarks switch it between calls, never during one
    /// (`bootmae-bench train-step --compare-prefetch-c on,off`).
    public static var prefetchesC: Bool {
        get { ck_sgemm_prefetch_c() }
        set { ck_sgemm_set_prefetch_c(newValue) }
    }

    /// Whether a product with several K blocks keeps each block of C's rows in cache across them
    /// (op(B) packed for all K blocks at once where it fits; CKernels' sgemm.c; on by default) or
    /// sweeps all of C once per K block. The same bits either way; benchmarks switch it between
    /// calls (`bootmae-bench train-step --compare-k-order resident,sweep`).
    public static var keepsCAcrossKBlocks: Bool {
        get { ck_sgemm_k_resident() }
        set { ck_sgemm_set_k_resident(newValue) }
    }

    /// C = alpha·op(A)·op(B) + beta·C on one thread, row-major, as `cblas_sgemm` (CKernels.h);
    /// with `bias` (n floats) C = alpha·op(A)·op(B) + (beta·C + bias), added in the kernel's store.
    /// Returns false (C untouched) only when the packing buffer could not be allocated.
    @discardableResult
    public func multiply(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                         a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                         beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>? = nil) -> Bool {
        precondition(isSupported, "GEMM kernel \(rawValue) does not run on this CPU")
        return ck_sgemm(isa, transA, transB, Int32(m), Int32(n), Int32(k), alpha, a, lda, b, ldb, beta, c, ldc,
                        bias) == 0
    }
}

/// Which code runs `BLAS.gemm`: our kernels (`GEMMKernel`, picked by CPUID) or OpenBLAS, whose
/// kernels depend on whether its build knows this CPU (Debian's 0.3.21 falls back to SSE3
/// "Prescott" on Sapphire-Rapids-class Xeons: the training step ran 2.3× slower; docs/PERFORMANCE.md).
///
/// `BOOTMAE_GEMM` chooses at start-up: `auto` (default: the best own kernel when the CPU has
/// AVX2+FMA or AVX-512, else OpenBLAS, which knows every older CPU), `own` (the best own kernel,
/// even the portable one), `blas`, or one kernel by name (`avx512`, `avx2`, `portable`).
/// The packed inference GEMM (`PackedMatrix`) is not affected.
public enum GEMMPath: Equatable, Sendable, CustomStringConvertible {
    case own(GEMMKernel)
    case blas

    /// The path `auto` resolves to on this CPU.
    public static var automatic: GEMMPath {
        let kernel = GEMMKernel.best
        return kernel == .portable ? .blas : .own(kernel)
    }

    /// Parses a `BOOTMAE_GEMM` value; nil for a name it does not know or a kernel this CPU cannot run.
    public init?(setting: String) {
        switch setting.lowercased() {
        case "", "auto": self = Self.automatic
        case "own": self = .own(.best)
        case "blas": self = .blas
        default:
            guard let kernel = GEMMKernel(rawValue: setting.lowercased()), kernel.isSupported else { return nil }
            self = .own(kernel)
        }
    }

    /// What `BOOTMAE_GEMM` accepts on this CPU, for error messages.
    public static var settings: [String] {
        ["auto", "own", "blas"] + GEMMKernel.allCases.filter(\.isSupported).map(\.rawValue)
    }

    /// "own avx512", "openblas Cooperlake".
    public var description: String {
        switch self {
        case .own(let kernel): "own \(kernel.rawValue)"
        case .blas: "openblas \(BLAS.coreName)"
        }
    }
}
