import XCTest
@testable import Tensor
import TestSupport

/// The AVX-512 inference GEMM against a double-precision product computed here, on shapes that
/// exercise every edge: partial 8-row tiles, partial 48-column panels, more than one 64-row
/// block, K past the 3072 block, one and two workers. Tolerance: 1e-5 relative (max|Δ| / max|ref|).
final class PackedMatrixTests: XCTestCase {
    override func setUpWithError() throws {
        try XCTSkipUnless(PackedMatrix.isAvailable, "this CPU has no AVX-512: the packed GEMM is never used")
    }

    func random(_ shape: [Int], _ rng: inout SeededRandom) -> Tensor {
        Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.normal() })
    }

    /// y = start + x·Wᵀ + b in doubles.
    func reference(_ x: Tensor, _ w: Tensor, _ b: Tensor?, start: Tensor?) -> Tensor {
        let (m, k, n) = (x.shape[0], x.shape[1], w.shape[0])
        var y = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s = Double(b?.data[j] ?? 0) + Double(start?.data[i * n + j] ?? 0)
                for t in 0..<k { s += Double(x.data[i * k + t]) * Double(w.data[j * k + t]) }
                y[i * n + j] = Float(s)
            }
        }
        return Tensor(shape: [m, n], data: y)
    }

    func testMatchesTheDoublePrecisionProduct() throws {
        let savedWorkers = Parallel.workers
        defer { Parallel.workers = savedWorkers }
        var rng = SeededRandom(seed: 5)
        // (m, k, n): tiny edges, ragged tiles and panels, M over one 64-row block, K over 3072.
        let shapes = [(1, 1, 1), (13, 5, 17), (29, 300, 47), (70, 33, 100), (130, 192, 576), (9, 3100, 97), (65, 64, 200)]
        for workers in [1, 2] {
            Parallel.workers = workers
            for (m, k, n) in shapes {
                let x = random([m, k], &rng), w = random([n, k], &rng), b = random([n], &rng), start = random([m, n], &rng)
                let packed = try XCTUnwrap(PackedMatrix(w))
                for (bias, accumulate) in [(b, false), (nil, false), (b, true), (nil, true)] as [(Tensor?, Bool)] {
                    var y = accumulate ? start : Tensor(repeating: .nan, shape: [m, n])
                    y.withMutablePointer { yp in x.withPointer { xp in
                        if let bias { bias.withPointer { packed.multiply(xp, rows: m, bias: $0, into: yp, accumulate: accumulate) } }
                        else { packed.multiply(xp, rows: m, bias: nil, into: yp, accumulate: accumulate) }
                    } }
                    let expected = reference(x, w, bias, start: accumulate ? start : nil)
                    XCTAssertLessThanOrEqual(relativeError(y, expected), 1e-5,
                                             "m \(m) k \(k) n \(n), bias \(bias != nil), accumulate \(accumulate), \(workers) worker(s)")
                }
            }
        }
    }

    /// A new value (or an in-place change) must drop the packed copy, never serve stale weights.
    func testChangingTheValueDropsThePackedCopy() {
        var rng = SeededRandom(seed: 6)
        let p = Parameter(random([96, 16], &rng))
        XCTAssertTrue(p.packForInference(releasingPlainValues: false))
        XCTAssertNotNil(p.packed)
        p.value.data[3] += 1
        XCTAssertNil(p.packed)
        XCTAssertTrue(p.packForInference(releasingPlainValues: true))
        XCTAssertTrue(p.isPackedOnly)
        XCTAssertEqual(p.shape, [96, 16])
        XCTAssertEqual(p.elementCount, 96 * 16)
    }

    /// Linear through the packed weight equals the BLAS path (residual and bias included).
    func testLinearForwardWithAPackedWeight() throws {
        var rng = SeededRandom(seed: 7)
        let x = random([2, 37, 64], &rng), residual = random([2, 37, 80], &rng), b = random([80], &rng)
        let weight = Parameter(random([80, 64], &rng))
        let plain = LinearOp.forward(x, weight: weight.value, bias: b, adding: residual)
        XCTAssertTrue(weight.packForInference(releasingPlainValues: true))
        let packed = LinearOp.forward(x, weight: weight, bias: b, adding: residual)
        XCTAssertEqual(packed.shape, plain.shape)
        XCTAssertLessThanOrEqual(relativeError(packed, plain), 1e-6)
    }
}
