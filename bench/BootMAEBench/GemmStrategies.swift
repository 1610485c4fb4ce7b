import CBLAS
import Foundation
import Tensor

/// How to spend two cores on one GEMM, at ViT shapes: BLAS.gemm (our per-core blocks),
/// OpenBLAS's own threads on one call, and one single-threaded call (GFLOP/s per wall and per CPU second).
func gemmStrategies(seconds: Double) {
    let shapes: [(String, Int, Int, Int)] = [
        ("vit-b qkv", 1576, 2304, 768), ("vit-b fc1", 1576, 3072, 768), ("vit-b fc2", 1576, 768, 3072),
        ("tiny qkv b8", 520, 576, 192), ("tiny fc1 b8", 520, 768, 192), ("ft fc1", 12800, 512, 128),
    ]
    for (name, m, n, k) in shapes {
        var rng = SeededRandom(seed: 1)
        let a = (0..<(m * k)).map { _ in rng.normal() }, b = (0..<(n * k)).map { _ in rng.normal() }
        var c = [Float](repeating: 0, count: m * n)
        let flop = 2.0 * Double(m * n * k)
        func report(_ label: String, _ body: () -> Void) {
            let t = timeMedians(seconds: seconds, minRuns: 5, body)
            print(String(format: "%-12@ %-22@ %7.1f GFLOP/s wall  %7.1f per cpu-s", name as NSString, label as NSString,
                         flop / t.wall / 1e9, flop / t.cpu / 1e9))
        }
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
            let (A, B, C) = (ap.baseAddress!, bp.baseAddress!, cp.baseAddress!)
            report("per-core row blocks") {
                BLAS.gemm(transB: true, m: m, n: n, k: k, a: A, lda: k, b: B, ldb: k, c: C, ldc: n)
            }
            report("per-core column blocks") {
                Parallel.forEachChunk(n) { cols in
                    BLAS.single(transB: true, m: m, n: cols.count, k: k, a: A, lda: k, b: B + cols.lowerBound * k, ldb: k,
                                c: C + cols.lowerBound, ldc: n)
                }
            }
            report("one call, 1 thread") {
                BLAS.single(transB: true, m: m, n: n, k: k, a: A, lda: k, b: B, ldb: k, c: C, ldc: n)
            }
            BLAS.threads = Parallel.workers
            report("one call, BLAS threads") {
                BLAS.single(transB: true, m: m, n: n, k: k, a: A, lda: k, b: B, ldb: k, c: C, ldc: n)
            }
            BLAS.threads = 1
        } } }
    }
}
