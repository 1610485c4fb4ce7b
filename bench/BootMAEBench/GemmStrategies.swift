import CBLAS
import Foundation
import Tensor

/// How to spend two cores on one GEMM, at ViT shapes: BLAS.gemm (our per-core blocks),
/// OpenBLAS's own threads on one call, one single-threaded call, and the packed AVX-512 inference
/// GEMM (`PackedMatrix`) on one and on all workers (GFLOP/s per wall and per CPU second).
func gemmStrategies(seconds: Double) {
    let shapes: [(String, Int, Int, Int)] = [
        ("vit-b qkv", 1576, 2304, 768), ("vit-b fc1", 1576, 3072, 768), ("vit-b fc2", 1576, 768, 3072),
        ("tiny qkv b8", 520, 576, 192), ("tiny fc1 b8", 520, 768, 192), ("tiny fc2 b4", 260, 192, 768),
        ("ft fc1", 12800, 512, 128),
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
        let x = Tensor(shape: [m, k], data: a), w = Tensor(shape: [n, k], data: b), bias = Tensor(zeros: [n])
        report("LinearOp.forward") { _ = LinearOp.forward(x, weight: w, bias: bias) }
        report("LinearOp.forward no bias") { _ = LinearOp.forward(x, weight: w, bias: nil) }
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
            let (A, B, C) = (ap.baseAddress!, bp.baseAddress!, cp.baseAddress!)
            report("per-core row blocks") {
                BLAS.gemm(transB: true, m: m, n: n, k: k, a: A, lda: k, b: B, ldb: k, c: C, ldc: n)
            }
            report("per-core rows, beta 1") {
                BLAS.gemm(transB: true, m: m, n: n, k: k, a: A, lda: k, b: B, ldb: k, beta: 1, c: C, ldc: n)
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
            if let packed = PackedMatrix(w) {
                let workers = Parallel.workers
                report("packed, all workers") { packed.multiply(A, rows: m, bias: nil, into: C, accumulate: false) }
                Parallel.workers = 1
                report("packed, 1 thread") { packed.multiply(A, rows: m, bias: nil, into: C, accumulate: false) }
                Parallel.workers = workers
            }
        } } }
    }
}

/// Per-head attention GEMM shapes: q·kᵀ as 'nt' on strided rows vs 'nn' on a transposed copy.
func attentionGemmShapes(seconds: Double) {
    for (n, hd, row) in [(50, 32, 384), (65, 64, 576), (197, 64, 2304)] {
        var rng = SeededRandom(seed: 1)
        let qkv = (0..<(n * row)).map { _ in rng.normal() }
        var s = [Float](repeating: 0, count: n * n), kt = [Float](repeating: 0, count: hd * n)
        var o = [Float](repeating: 0, count: n * hd)
        let flop = 2.0 * Double(n * n * hd)
        qkv.withUnsafeBufferPointer { qp in s.withUnsafeMutableBufferPointer { sp in kt.withUnsafeMutableBufferPointer { ktp in o.withUnsafeMutableBufferPointer { op in
            let q = qp.baseAddress!, k = q + row / 3, v = q + 2 * row / 3, S = sp.baseAddress!, KT = ktp.baseAddress!, O = op.baseAddress!
            func report(_ label: String, _ body: () -> Void) {
                let t = timeMedians(seconds: seconds, minRuns: 5) { for _ in 0..<200 { body() } }
                print(String(format: "n %3d hd %2d %-28@ %6.2f us  %6.1f GFLOP/s per cpu-s", n, hd, label as NSString, t.cpu / 200 * 1e6, flop * 200 / t.cpu / 1e9))
            }
            report("q kT nt strided") { BLAS.single(transB: true, m: n, n: n, k: hd, a: q, lda: row, b: k, ldb: row, c: S, ldc: n) }
            report("transpose k + nn") {
                for j in 0..<n { for d in 0..<hd { KT[d * n + j] = k[j * row + d] } }
                BLAS.single(m: n, n: n, k: hd, a: q, lda: row, b: KT, ldb: n, c: S, ldc: n)
            }
            report("P v nn strided") { BLAS.single(m: n, n: hd, k: n, a: S, lda: n, b: v, ldb: row, c: O, ldc: hd) }
            report("softmax rows") { SoftmaxOp.forwardRows(S, rows: n, n: n) }
        } } } }
    }
}
