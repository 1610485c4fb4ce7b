import XCTest
@testable import Tensor
import TestSupport

/// The training GEMM's kernels (`GEMMKernel`: AVX-512, AVX2, portable — each this CPU runs, called
/// explicitly) and `BLAS.gemm` on both paths, against C = alpha·op(A)·op(B) + beta·C computed here in
/// doubles. Shapes: 1×1×1, primes, non-multiples of every tile (8×48, 6×16, 4×8) and of the
/// 128-deep K block, large K; all four transposition cases; beta 0 (C not read: it holds NaN) and 1.
///
/// Tolerance: |C − ref| ≤ 1e-6 · (|alpha|·Σₖ|a||b| + |beta·C₀|) per element — about 8 float
/// epsilons of the sum of magnitudes (the worst-case bound of a k-term float sum is k·ε; a wrong
/// tile, edge or stride gives errors of order 1).
final class TrainingGEMMTests: XCTestCase {
    struct Case {
        let transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, beta: Float
        // Leading dimensions wider than the matrices: the kernels must honour the strides.
        var lda: Int { (transA ? m : k) + 3 }
        var ldb: Int { (transB ? k : n) + 5 }
        var ldc: Int { n + 2 }
    }

    static let shapes = [(1, 1, 1), (2, 3, 5), (7, 13, 11), (8, 48, 128), (9, 49, 129), (13, 13, 32),
                         (50, 50, 32), (31, 97, 257), (9, 17, 3001), (67, 131, 61)]

    static var cases: [Case] {
        var cases: [Case] = []
        for (index, (m, n, k)) in shapes.enumerated() {
            for transA in [false, true] {
                for transB in [false, true] {
                    for beta: Float in [0, 1] {
                        cases.append(Case(transA: transA, transB: transB, m: m, n: n, k: k,
                                          alpha: index % 2 == 0 ? 1 : 0.5, beta: beta))
                    }
                }
            }
        }
        return cases
    }

    /// Runs `gemm` on random operands and checks every element of C, and that the columns of C's
    /// padding (between n and ldc) are untouched.
    func check(_ c: Case, _ label: String, file: StaticString = #filePath, line: UInt = #line,
               gemm: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) {
        var rng = SeededRandom(seed: UInt64(c.m * 1000 + c.n * 10 + c.k))
        let aRows = c.transA ? c.k : c.m, bRows = c.transB ? c.n : c.k
        let a = (0..<(aRows * c.lda)).map { _ in rng.normal() }
        let b = (0..<(bRows * c.ldb)).map { _ in rng.normal() }
        let padding: Float = 12345
        var c0 = (0..<(c.m * c.ldc)).map { i in i % c.ldc >= c.n ? padding : (c.beta == 0 ? .nan : rng.normal()) }
        let start = c0
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c0.withUnsafeMutableBufferPointer { cp in
            gemm(ap.baseAddress!, bp.baseAddress!, cp.baseAddress!)
        } } }
        var worst = 0.0
        for i in 0..<c.m {
            for j in 0..<c.ldc {
                let got = c0[i * c.ldc + j]
                if j >= c.n {
                    XCTAssertEqual(got, padding, "\(label): wrote C[\(i)][\(j)] outside n = \(c.n)", file: file, line: line)
                    continue
                }
                var sum = 0.0, magnitude = 0.0
                for t in 0..<c.k {
                    let x = Double(c.transA ? a[t * c.lda + i] : a[i * c.lda + t])
                    let y = Double(c.transB ? b[j * c.ldb + t] : b[t * c.ldb + j])
                    sum += x * y
                    magnitude += abs(x * y)
                }
                let old = c.beta == 0 ? 0 : Double(start[i * c.ldc + j])
                let reference = Double(c.alpha) * sum + Double(c.beta) * old
                let scale = Double(abs(c.alpha)) * magnitude + abs(Double(c.beta) * old)
                worst = max(worst, abs(Double(got) - reference) / max(scale, 1e-30))
            }
        }
        XCTAssertLessThanOrEqual(worst, 1e-6, "\(label) \(c.transA ? "T" : "N")\(c.transB ? "T" : "N") m \(c.m) n \(c.n) k \(c.k) "
                                 + "alpha \(c.alpha) beta \(c.beta)", file: file, line: line)
    }

    /// In the default driver (each tile's C prefetched, C's row blocks kept across K blocks where
    /// op(B) fits the buffer whole) and in the other settings of those benchmark switches
    /// (`GEMMKernel.prefetchesC`, `keepsCAcrossKBlocks`), which must compute the same products.
    func testEveryKernelThisCPURunsMatchesTheDoubleProduct() throws {
        let kernels = GEMMKernel.allCases.filter(\.isSupported)
        XCTAssertTrue(kernels.contains(.portable), "the portable kernel runs everywhere")
        let saved = (GEMMKernel.prefetchesC, GEMMKernel.keepsCAcrossKBlocks)
        defer { (GEMMKernel.prefetchesC, GEMMKernel.keepsCAcrossKBlocks) = saved }
        for (kernel, defaults) in kernels.flatMap({ k in [(k, true), (k, false)] }) {
            (GEMMKernel.prefetchesC, GEMMKernel.keepsCAcrossKBlocks) = (defaults, defaults)
            for c in Self.cases {
                check(c, "\(kernel.rawValue), driver \(defaults ? "default" : "prefetch off, C swept per K block")") { a, b, out in
                    XCTAssertTrue(kernel.multiply(transA: c.transA, transB: c.transB, m: c.m, n: c.n, k: c.k, alpha: c.alpha,
                                                  a: a, lda: c.lda, b: b, ldb: c.ldb, beta: c.beta, c: out, ldc: c.ldc))
                }
            }
        }
    }

    /// The driver's two K orders (C's row blocks kept across K blocks, or all of C swept per K
    /// block) run the same tiles with the same arguments, so C must match bit for bit; several K
    /// blocks, a bias and beta 1, both transpositions of A.
    func testKOrdersGiveTheSameBits() {
        let saved = GEMMKernel.keepsCAcrossKBlocks
        defer { GEMMKernel.keepsCAcrossKBlocks = saved }
        for kernel in GEMMKernel.allCases.filter(\.isSupported) {
            for (transA, m, n, k) in [(false, 67, 131, 300), (true, 70, 128, 512), (false, 200, 40, 1000)] {
                var rng = SeededRandom(seed: UInt64(m + n + k))
                let a = (0..<(m * k)).map { _ in rng.normal() }, b = (0..<(k * n)).map { _ in rng.normal() }
                let bias = (0..<n).map { _ in rng.normal() }, start = (0..<(m * n)).map { _ in rng.normal() }
                func product(keeping: Bool) -> [Float] {
                    GEMMKernel.keepsCAcrossKBlocks = keeping
                    var c = start
                    c.withUnsafeMutableBufferPointer { cp in
                        XCTAssertTrue(kernel.multiply(transA: transA, transB: false, m: m, n: n, k: k, alpha: 1, a: a,
                                                      lda: transA ? m : k, b: b, ldb: n, beta: 1, c: cp.baseAddress!, ldc: n,
                                                      bias: bias))
                    }
                    return c
                }
                XCTAssertEqual(product(keeping: true).map(\.bitPattern), product(keeping: false).map(\.bitPattern),
                               "\(kernel.rawValue) \(transA ? "T" : "N")N \(m)×\(n)×\(k)")
            }
        }
    }

    /// `BLAS.gemm` on OpenBLAS and on the automatic own kernel, split over two workers (rows or
    /// columns of C) where the product is large enough.
    func testBLASGemmOnBothPathsMatchesTheDoubleProduct() {
        let (savedPath, savedWorkers) = (BLAS.path, Parallel.workers)
        defer { (BLAS.path, Parallel.workers) = (savedPath, savedWorkers) }
        Parallel.workers = 2
        let split = [Case(transA: false, transB: true, m: 300, n: 70, k: 129, alpha: 1, beta: 1),
                     Case(transA: true, transB: false, m: 60, n: 300, k: 200, alpha: 1, beta: 0)]
        for path in [GEMMPath.blas, .own(.best)] {
            BLAS.path = path
            for c in Self.cases + split {
                check(c, path.description) { a, b, out in
                    BLAS.gemm(transA: c.transA, transB: c.transB, m: c.m, n: c.n, k: c.k, alpha: c.alpha, a: a, lda: c.lda,
                              b: b, ldb: c.ldb, beta: c.beta, c: out, ldc: c.ldc)
                }
            }
        }
    }

    /// k = 0 leaves beta·C (zeros for beta 0, without reading C).
    func testEmptyInnerDimensionScalesC() {
        for kernel in GEMMKernel.allCases.filter(\.isSupported) {
            var c: [Float] = [.nan, .nan, 2, 4]
            let one: [Float] = [1]
            c.withUnsafeMutableBufferPointer { cp in one.withUnsafeBufferPointer { p in
                kernel.multiply(transA: false, transB: false, m: 1, n: 2, k: 0, alpha: 1, a: p.baseAddress!, lda: 1,
                                b: p.baseAddress!, ldb: 2, beta: 0, c: cp.baseAddress!, ldc: 2)
                kernel.multiply(transA: false, transB: false, m: 1, n: 2, k: 0, alpha: 1, a: p.baseAddress!, lda: 1,
                                b: p.baseAddress!, ldb: 2, beta: 0.5, c: cp.baseAddress! + 2, ldc: 2)
            } }
            XCTAssertEqual(c, [0, 0, 1, 2], kernel.rawValue)
        }
    }

    /// `BOOTMAE_GEMM` values: the names, case-insensitive; kernels only where the CPU runs them.
    func testPathSettings() {
        XCTAssertEqual(GEMMPath(setting: "blas"), .blas)
        XCTAssertEqual(GEMMPath(setting: "OWN"), .own(GEMMKernel.best))
        XCTAssertEqual(GEMMPath(setting: "portable"), .own(.portable))
        XCTAssertEqual(GEMMPath(setting: "auto"), GEMMPath.automatic)
        XCTAssertNil(GEMMPath(setting: "mkl"))
        for kernel in GEMMKernel.allCases {
            XCTAssertEqual(GEMMPath(setting: kernel.rawValue) != nil, kernel.isSupported, kernel.rawValue)
        }
        // auto: own kernels wherever the CPU has AVX2+FMA (every CPU OpenBLAS may misjudge).
        let cpu = CPUFeatures.current
        XCTAssertEqual(GEMMPath.automatic == .blas, !(cpu.has("avx2") && cpu.has("fma")) && !cpu.has("avx512f"))
    }

    /// The feature list agrees with the kernels' own checks and with the inference kernel's.
    func testCPUFeaturesAgreeWithTheDispatch() {
        let cpu = CPUFeatures.current
        XCTAssertEqual(GEMMKernel.avx2.isSupported, cpu.has("avx2") && cpu.has("fma"))
        XCTAssertEqual(GEMMKernel.avx512.isSupported,
                       ["avx512f", "avx512vl", "avx512bw", "avx512dq", "fma"].allSatisfy(cpu.has))
        XCTAssertEqual(PackedMatrix.isAvailable, ["avx512f", "avx512vl", "avx512bw", "avx512dq"].allSatisfy(cpu.has))
        #if arch(x86_64)
        XCTAssertFalse(cpu.vendor.isEmpty)
        XCTAssertTrue(cpu.has("sse3"), "every x86-64 CPU Swift runs on has SSE3")
        #endif
    }
}
