import Foundation
import Tensor

/// `bootmae-bench --gemm-training [--seconds S] [--rounds R]`: one thread, the GEMM shapes of a BootMAE
/// tiny-preset training step (2 shards of 64 images: 3200 token rows with the momentum encoder and
/// decoders, 832 visible rows in the encoder; 50 × 50 and 13 × 13 attention per head), each run by
/// every own kernel this CPU runs and by OpenBLAS, alternated in rounds: median GFLOP/s per CPU
/// second. Prefix `OPENBLAS_CORETYPE=Prescott` to see OpenBLAS's fallback (the core is fixed per process).
func trainingGEMMShapes(seconds: Double, rounds: Int) {
    // (case, m, n, k): the largest classes of one traced step (forward NT, dX NN, dW TN, attention).
    let shapes: [(String, Int, Int, Int)] = [
        ("NT", 3200, 128, 512), ("NT", 3200, 512, 128), ("NT", 3200, 384, 128), ("NT", 832, 384, 128),
        ("NN", 3200, 128, 512), ("NN", 3200, 512, 128), ("TN", 128, 512, 3200), ("TN", 512, 128, 3200),
        ("TN", 128, 128, 832), ("NT", 50, 50, 32), ("NN", 50, 32, 50), ("TN", 50, 32, 50), ("NT", 13, 13, 32),
        ("NN", 13, 32, 13), ("NT", 50, 50, 16), ("NN", 50, 16, 50),
    ]
    let saved = (Parallel.workers, BLAS.path)
    defer { (Parallel.workers, BLAS.path) = saved }
    Parallel.workers = 1
    let paths = GEMMKernel.allCases.filter { $0.isSupported && $0 != .portable }.map { GEMMPath.own($0) } + [.blas]
    print("one thread, GFLOP/s per CPU second, median of \(rounds) alternated rounds; CPU \(CPUFeatures.current.modelName)")
    print("| case | m×n×k | " + paths.map(\.description).joined(separator: " | ") + " |")
    for (name, m, n, k) in shapes {
        let (transA, transB) = (name.first == "T", name.last == "T")
        var rng = SeededRandom(seed: 1)
        let a = (0..<(m * k)).map { _ in rng.normal() }, b = (0..<(n * k)).map { _ in rng.normal() }
        var c = [Float](repeating: 0, count: m * n)
        let flop = 2.0 * Double(m * n * k)
        // Enough calls per timing that the clock's resolution does not matter.
        let calls = max(1, Int(2e7 / flop))
        var rates = [[Double]](repeating: [], count: paths.count)
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
            for _ in 0..<rounds {
                for (i, path) in paths.enumerated() {
                    BLAS.path = path
                    let t = timeMedians(seconds: seconds / Double(paths.count * rounds), minRuns: 3) {
                        for _ in 0..<calls {
                            BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, a: ap.baseAddress!, lda: transA ? m : k,
                                      b: bp.baseAddress!, ldb: transB ? k : n, c: cp.baseAddress!, ldc: n)
                        }
                    }
                    rates[i].append(flop * Double(calls) / t.cpu / 1e9)
                }
            }
        } } }
        print("| \(name) | \(m)×\(n)×\(k) | " + rates.map { String(format: "%.0f", median($0)) }.joined(separator: " | ") + " |")
    }
}
