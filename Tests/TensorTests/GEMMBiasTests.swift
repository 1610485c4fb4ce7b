import XCTest
@testable import Tensor
import TestSupport

/// The bias added in the training GEMM's store (`ck_sgemm`'s bias, `BLAS.gemm(bias:)`, the Linear
/// layer's forward and inference) must give the bits of the path it replaces: C filled with
/// beta·C + bias by a pass of its own, then the same kernel with beta 1. The kernels' products
/// themselves are checked against doubles by TrainingGEMMTests; here the reference is that older
/// path, and equality is exact (any reordering of the additions changes some of these bits).
final class GEMMBiasTests: XCTestCase {
    /// Non-multiples of every tile width, K deeper than one 128-deep block (the bias must be added
    /// in the first block only), and a shape wide enough for several column blocks of packed op(B).
    static let shapes = [(1, 1, 1), (7, 13, 11), (9, 49, 129), (31, 97, 257), (67, 131, 61), (20, 1100, 300)]

    struct Operands {
        let a: [Float], b: [Float], c: [Float], bias: [Float]
        init(m: Int, n: Int, k: Int, beta: Float) {
            var rng = SeededRandom(seed: UInt64(m * 7919 + n * 31 + k))
            a = (0..<(m * k)).map { _ in rng.normal() }
            b = (0..<(n * k)).map { _ in rng.normal() }
            c = (0..<(m * n)).map { _ in beta == 0 ? .nan : rng.normal() }
            bias = (0..<n).map { _ in rng.normal() }
        }
    }

    /// C ← beta·C + bias, rounded once per element (the kernels' fma), as the older path's pass did.
    func prefilled(_ o: Operands, n: Int, beta: Float) -> [Float] {
        o.c.enumerated().map { i, old in beta == 0 ? o.bias[i % n] : o.bias[i % n].addingProduct(beta, old) }
    }

    func differingElements(_ x: [Float], _ y: [Float]) -> Int {
        zip(x, y).filter { $0.bitPattern != $1.bitPattern }.count
    }

    func testEveryKernelAddsTheBiasWithTheBitsOfAPrefilledC() {
        for kernel in GEMMKernel.allCases.filter(\.isSupported) {
            for (m, n, k) in Self.shapes {
                for transA in [false, true] {
                    for transB in [false, true] {
                        for beta: Float in [0, 1] {
                            let o = Operands(m: m, n: n, k: k, beta: beta)
                            let (lda, ldb) = (transA ? m : k, transB ? k : n)
                            var stored = o.c, reference = prefilled(o, n: n, beta: beta)
                            o.a.withUnsafeBufferPointer { a in o.b.withUnsafeBufferPointer { b in o.bias.withUnsafeBufferPointer { bias in
                                stored.withUnsafeMutableBufferPointer { c in
                                    XCTAssertTrue(kernel.multiply(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1,
                                                                  a: a.baseAddress!, lda: lda, b: b.baseAddress!, ldb: ldb, beta: beta,
                                                                  c: c.baseAddress!, ldc: n, bias: bias.baseAddress!))
                                }
                                reference.withUnsafeMutableBufferPointer { c in
                                    XCTAssertTrue(kernel.multiply(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1,
                                                                  a: a.baseAddress!, lda: lda, b: b.baseAddress!, ldb: ldb, beta: 1,
                                                                  c: c.baseAddress!, ldc: n))
                                }
                            } } }
                            XCTAssertEqual(differingElements(stored, reference), 0,
                                           "\(kernel.rawValue) \(transA ? "T" : "N")\(transB ? "T" : "N") m \(m) n \(n) k \(k) beta \(beta)")
                        }
                    }
                }
            }
        }
    }

    /// k = 0: C = beta·C + bias, without reading C for beta 0.
    func testEmptyInnerDimensionLeavesTheBias() {
        for kernel in GEMMKernel.allCases.filter(\.isSupported) {
            var c: [Float] = [.nan, .nan, 2, 4]
            let bias: [Float] = [0.25, -3], one: [Float] = [1]
            c.withUnsafeMutableBufferPointer { cp in one.withUnsafeBufferPointer { p in bias.withUnsafeBufferPointer { bp in
                kernel.multiply(transA: false, transB: false, m: 1, n: 2, k: 0, alpha: 1, a: p.baseAddress!, lda: 1,
                                b: p.baseAddress!, ldb: 2, beta: 0, c: cp.baseAddress!, ldc: 2, bias: bp.baseAddress!)
                kernel.multiply(transA: false, transB: false, m: 1, n: 2, k: 0, alpha: 1, a: p.baseAddress!, lda: 1,
                                b: p.baseAddress!, ldb: 2, beta: 0.5, c: cp.baseAddress! + 2, ldc: 2, bias: bp.baseAddress!)
            } } }
            XCTAssertEqual(c, [0.25, -3, 1.25, -1], kernel.rawValue)
        }
    }

    /// The Linear layer: forward (with and without a residual, packed or not is another path) and
    /// inference (overwriting and accumulating), bias in the store against bias in a pass, on
    /// OpenBLAS and the own kernel, with two workers so that large products are split by rows and
    /// by columns (the bias pointer must follow a column split).
    func testLinearBiasInTheStoreMatchesTheBiasPassBitForBit() {
        let (savedPath, savedWorkers, savedMode) = (BLAS.path, Parallel.workers, LinearOp.biasInGEMMStore)
        defer { (BLAS.path, Parallel.workers, LinearOp.biasInGEMMStore) = (savedPath, savedWorkers, savedMode) }
        Parallel.workers = 2
        // (rows, in, out): a row split, a column split (few rows, wide output), an unsplit small one.
        for (rows, inDim, outDim) in [(300, 129, 70), (40, 300, 520), (5, 7, 3)] {
            var rng = SeededRandom(seed: UInt64(rows * 131 + outDim))
            let x = Tensor(shape: [rows, inDim], data: (0..<(rows * inDim)).map { _ in rng.normal() })
            let w = Tensor(shape: [outDim, inDim], data: (0..<(outDim * inDim)).map { _ in rng.normal() })
            let b = Tensor(shape: [outDim], data: (0..<outDim).map { _ in rng.normal() })
            let residual = Tensor(shape: [rows, outDim], data: (0..<(rows * outDim)).map { _ in rng.normal() })
            for path in [GEMMPath.blas, .own(.best)] {
                BLAS.path = path
                func outputs() -> [[Float]] {
                    var inferred = residual.data, accumulated = residual.data
                    x.withPointer { xp in
                        inferred.withUnsafeMutableBufferPointer {
                            LinearOp.infer(xp, rows: rows, weight: w, bias: b, into: $0.baseAddress!, accumulate: false)
                        }
                        accumulated.withUnsafeMutableBufferPointer {
                            LinearOp.infer(xp, rows: rows, weight: w, bias: b, into: $0.baseAddress!, accumulate: true)
                        }
                    }
                    return [LinearOp.forward(x, weight: w, bias: b).data,
                            LinearOp.forward(x, weight: w, bias: b, adding: residual).data, inferred, accumulated]
                }
                LinearOp.biasInGEMMStore = false
                let pass = outputs()
                LinearOp.biasInGEMMStore = true
                let store = outputs()
                for (name, (s, p)) in zip(["forward", "forward + residual", "infer", "infer accumulate"], zip(store, pass)) {
                    XCTAssertEqual(differingElements(s, p), 0, "\(path) \(name) rows \(rows) in \(inDim) out \(outDim)")
                }
            }
        }
    }
}
