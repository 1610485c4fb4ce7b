import CBLAS
import CKernels
#if canImport(Glibc)
import Glibc
#endif

/// The project's GEMM (`gemm`, `single`), run by our own kernels or OpenBLAS as `path` says, and
/// thin wrappers over the OpenBLAS settings. Row-major everywhere.
public enum BLAS {
    /// Threads OpenBLAS may use for one call. Set once at start-up (servers, trainers, benchmarks).
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(max(1, newValue))) }
    }

    /// Who runs `gemm` and `single`: `BOOTMAE_GEMM` at start-up (`TensorRuntime.configure` checks
    /// it), else `GEMMPath.automatic`. Benchmarks and tests switch it between calls, never during one.
    nonisolated(unsafe) public static var path: GEMMPath = environmentPath ?? .automatic

    /// `BOOTMAE_GEMM` parsed, nil when unset or not understood.
    static var environmentPath: GEMMPath? {
        getenv("BOOTMAE_GEMM").flatMap { GEMMPath(setting: String(cString: $0)) }
    }

    /// The kernel family OpenBLAS loaded for this CPU (`openblas_get_corename`), e.g. "Cooperlake".
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// Why OpenBLAS's kernels are slower than this CPU allows, or nil: its build did not recognise
    /// the CPU and loaded an older core (Debian's 0.3.21 loads SSE3 "Prescott" on Sapphire Rapids).
    public static var coreFallback: String? {
        let core = coreName.lowercased(), cpu = CPUFeatures.current
        let avx512Cores = ["skylakex", "cooperlake", "sapphirerapids"]
        let avx2Cores = avx512Cores + ["haswell", "zen"]
        if cpu.has("avx512f") && !avx512Cores.contains(core) {
            return "OpenBLAS core \(coreName) does not use this CPU's AVX-512"
        }
        if cpu.has("avx2") && cpu.has("fma") && !avx2Cores.contains(core) {
            return "OpenBLAS core \(coreName) does not use this CPU's AVX2/FMA"
        }
        return nil
    }

    /// C = alpha · op(A) · op(B) + beta · C, with op(X) = X or Xᵀ; all matrices row-major.
    /// `m×k` is the shape of op(A), `k×n` of op(B), `m×n` of C; `lda`/`ldb`/`ldc` are row strides.
    ///
    /// `bias` (n floats), when given, is added to every row of C: C = alpha·op(A)·op(B) + (beta·C + bias),
    /// the bracket rounded first, so the bits are those of filling C with C + bias (or bias) and
    /// multiplying with beta 1; our kernels add it in their store, saving that pass over C.
    ///
    /// Large products are split into row (or column) blocks of C, one per `Parallel` worker, each a
    /// single-threaded BLAS call: on this 2-core machine that beats OpenBLAS's own threading of one
    /// call (whose idle threads spin in sched_yield between calls) at ViT shapes.
    @inlinable
    public static func gemm(transA: Bool = false, transB: Bool = false,
                            m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0,
                            c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>? = nil) {
        let workers = Parallel.workers
        if workers > 1 && m * n * k >= 1 << 21 {
            if m >= 64 * workers {
                Parallel.forEachChunk(m) { rows in
                    single(transA: transA, transB: transB, m: rows.count, n: n, k: k, alpha: alpha,
                           a: transA ? a + rows.lowerBound : a + rows.lowerBound * lda, lda: lda, b: b, ldb: ldb,
                           beta: beta, c: c + rows.lowerBound * ldc, ldc: ldc, bias: bias)
                }
                return
            }
            if n >= 64 * workers {
                Parallel.forEachChunk(n) { cols in
                    single(transA: transA, transB: transB, m: m, n: cols.count, k: k, alpha: alpha, a: a, lda: lda,
                           b: transB ? b + cols.lowerBound * ldb : b + cols.lowerBound, ldb: ldb,
                           beta: beta, c: c + cols.lowerBound, ldc: ldc, bias: bias.map { $0 + cols.lowerBound })
                }
                return
            }
        }
        single(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
               beta: beta, c: c, ldc: ldc, bias: bias)
    }

    /// One single-threaded GEMM, by `path` (`bias` as in `gemm`).
    @inlinable
    public static func single(transA: Bool = false, transB: Bool = false,
                            m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0,
                            c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>? = nil) {
        if m == 0 || n == 0 { return }
        // The own kernel returns false only when its packing buffer could not be allocated.
        if case .own(let kernel) = path,
           kernel.multiply(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                           b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, bias: bias) {
            return
        }
        var beta = beta
        if let bias {
            // OpenBLAS has no bias: C ← beta·C + bias first (same rounding as the kernels' store), then beta 1.
            for i in 0..<m {
                let row = c + i * ldc
                for j in 0..<n { row[j] = beta == 0 ? bias[j] : bias[j].addingProduct(beta, row[j]) }
            }
            beta = 1
        }
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

/// Process-wide settings for numeric work; executables call `configure` once at start-up.
public enum TensorRuntime {
    /// Sets BLAS threads and keeps freed activation buffers in the heap: by default glibc returns
    /// large blocks to the kernel on free, and every forward pass then page-faults its activations
    /// in again (measured at ~11% of an encoder forward).
    ///
    /// One malloc arena for all threads: a data-parallel shard allocates its activations on a
    /// worker thread, and glibc's per-thread arenas unmap a whole 64 MiB heap as soon as it is
    /// free (the trim threshold below binds only the main arena), so every step faulted them in
    /// again: fine-tune step with 2 shards, ~44,000 minor faults per step and 1.5 GiB peak RSS with
    /// glibc's default arenas, under 150 faults and 0.84 GiB with one (and ~7% less CPU per step).
    /// Call before starting threads: glibc fixes the limit when a second thread first allocates.
    ///
    /// `repeatedSteps` (training: every step allocates the same activations again) also keeps
    /// blocks above glibc's 32 MiB mmap ceiling in the heap and never trims it, so the process
    /// holds its peak step's memory instead of unmapping and faulting it in every step. Long
    /// sequences make such blocks: at 112 px / patch 4 (785 tokens) one layer's attention
    /// probabilities for 64 images are 631 MB, and a fine-tune step faulted ~4 million pages
    /// (sys time 60% of the step) with every block over 32 MiB mmapped.
    public static func configure(threads: Int, repeatedSteps: Bool = false) {
        if let setting = getenv("BOOTMAE_GEMM").map({ String(cString: $0) }), GEMMPath(setting: setting) == nil {
            let message = "error: BOOTMAE_GEMM=\(setting) is not one of \(GEMMPath.settings.joined(separator: ", ")) on this CPU\n"
            _ = message.withCString { write(2, $0, strlen($0)) }
            exit(64)
        }
        // Our own workers split large GEMMs and run each block single-threaded (see BLAS.gemm).
        BLAS.threads = 1
        Parallel.workers = max(1, threads)
        #if os(Linux)
        _ = mallopt(M_MMAP_THRESHOLD, 32 << 20)
        _ = mallopt(M_TRIM_THRESHOLD, repeatedSteps ? -1 : 1 << 30)  // -1: never trim
        if repeatedSteps { _ = mallopt(M_MMAP_MAX, 0) }
        _ = mallopt(M_ARENA_MAX, 1)
        #endif
    }
}
