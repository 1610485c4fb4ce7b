import Foundation
import XCTest
@testable import Tensor
import TestSupport

/// The bf16 inference GEMM (CKernelsBF16.h) against references computed here.
///
/// - Rounding: `ck_bf16_round` against a model written from the definition (the two bf16 neighbours
///   compared in Double, ties to the even one), and the hardware conversion against it.
/// - Layout: on integer inputs every product and sum is exact in fp32, so each kernel's result must
///   equal the exact product bit for bit, whatever its summation order. That checks the packing, the
///   VNNI pairs, the tile addressing (the AMX kernel through its C model, on any CPU), ragged edges,
///   bias, accumulation and column ranges exactly.
/// - Accuracy on random floats, tolerances from the arithmetic: against a Double product of the
///   bf16-rounded inputs, only fp32 summation errs: |Δ| ≤ (k+2)·2⁻²⁴·Σ|x·w| (+ |bias| + |y₀| terms).
///   Against the unrounded inputs, each input carries a relative error ≤ 2⁻⁸ (half a unit in the
///   last of 8 significant bits), so each product ≤ 2⁻⁷ + 2⁻¹⁶: |Δ| ≤ (2⁻⁷ + 2⁻¹⁶ + (k+2)·2⁻²⁴)·Σ|x·w| + ….
final class BF16GEMMTests: XCTestCase {
    /// Kernels that run on this machine: the AMX model always, the hardware kernels where present.
    var kernels: [InferenceKernel] { [.bf16AVX512, .bf16AMX, .bf16AMXModel].filter(\.runsHere) }

    // MARK: Rounding

    /// The bf16 nearest to x from its two neighbours (truncation and the next value up in magnitude).
    func modelRound(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(bits >> 16) | 0x0040 }
        if x.isSubnormal || x == 0 { return UInt16(bits >> 16) & 0x8000 }
        let down = UInt16(bits >> 16), up = down &+ 1
        let dDown = abs(Double(x) - Double(BFloat16.float(down)))
        // Past the largest finite bf16 the "up" neighbour is infinity; the rounding boundary is
        // then the midpoint to 2^128 (IEEE: round as if the exponent were unbounded).
        let upValue = BFloat16.float(up).isInfinite ? Double(x.sign == .minus ? -1 : 1) * 0x1p128 : Double(BFloat16.float(up))
        let dUp = abs(Double(x) - upValue)
        if dDown < dUp { return down }
        if dUp < dDown { return up }
        return down & 1 == 0 ? down : up
    }

    func testRoundingMatchesTheNearestEvenModel() {
        var rng = SeededRandom(seed: 22)
        var samples: [Float] = [0, -0, 1, -1, .infinity, -.infinity, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                                .leastNormalMagnitude, .leastNonzeroMagnitude, -.leastNonzeroMagnitude, 3.0e38,
                                Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000),  // ties: to even down, to even up
                                Float(bitPattern: 0x3F80_8001), Float(bitPattern: 0x3F80_7FFF),  // just past / below a tie
                                Float(bitPattern: 0x7F7F_8000),                                   // the tie to infinity
                                Float(bitPattern: 0x7F80_0001), Float(bitPattern: 0xFFC1_2345), .nan]
        for _ in 0..<200_000 { samples.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))) }
        for x in samples {
            let got = BFloat16.round(x), want = modelRound(x)
            XCTAssertEqual(got, want, "bf16(\(x)) bits \(String(x.bitPattern, radix: 16))")
            if x.isNaN { XCTAssertTrue(BFloat16.float(got).isNaN) }
            if x.isFinite && !x.isSubnormal && abs(x) < 3.38e38 {  // below the midpoint to infinity: finite, within half an ulp
                let r = BFloat16.float(got)
                XCTAssertLessThanOrEqual(abs(Double(r) - Double(x)), abs(Double(x)) * 0x1p-8, "\(x) → \(r)")
            }
        }
        XCTAssertEqual(BFloat16.round(Float(bitPattern: 0x3F80_8000)), 0x3F80)
        XCTAssertEqual(BFloat16.round(Float(bitPattern: 0x3F81_8000)), 0x3F82)
        XCTAssertEqual(BFloat16.round(.greatestFiniteMagnitude), 0x7F80)  // overflows to +Inf
        XCTAssertEqual(BFloat16.round(-.leastNonzeroMagnitude), 0x8000)
    }

    func testHardwareConversionMatchesTheSoftwareModel() throws {
        var rng = SeededRandom(seed: 23)
        // 1003 values: a ragged tail for the masked last vector.
        var x = (0..<1003).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) }
        x += [.nan, .infinity, -.infinity, 0, -0, .leastNonzeroMagnitude, Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x7F80_0001)]
        guard let hardware = BFloat16.roundWithHardware(x) else { throw XCTSkip("this CPU has no AVX512-BF16") }
        for (i, v) in x.enumerated() { XCTAssertEqual(hardware[i], BFloat16.round(v), "element \(i): \(v)") }
    }

    // MARK: GEMM

    /// y (m, n) from `kernel` with y starting as `start` (accumulate) or NaN.
    func multiply(_ kernel: InferenceKernel, _ x: [Float], _ w: [Float], m: Int, k: Int, n: Int, bias: [Float]?,
                  start: [Float]?) throws -> [Float] {
        let packed = try XCTUnwrap(PackedMatrix(Tensor(shape: [n, k], data: w), kernel: kernel))
        XCTAssertEqual(packed.kernel, kernel)
        var y = start ?? [Float](repeating: .nan, count: m * n)
        y.withUnsafeMutableBufferPointer { yp in x.withUnsafeBufferPointer { xp in
            if let bias { bias.withUnsafeBufferPointer { packed.multiply(xp.baseAddress!, rows: m, bias: $0.baseAddress!, into: yp.baseAddress!, accumulate: start != nil) } }
            else { packed.multiply(xp.baseAddress!, rows: m, bias: nil, into: yp.baseAddress!, accumulate: start != nil) }
        } }
        return y
    }

    // (m, k, n): single elements, ragged 8-row / 16-column / 48-column / 32-row edges, K odd and
    // past the 256-k block, M past the 64-row block, products big enough to split over workers.
    let shapes = [(1, 1, 1), (7, 3, 5), (33, 31, 49), (65, 33, 97), (17, 300, 16), (100, 70, 50), (130, 257, 200), (197, 192, 144)]

    func testIntegerProductsAreExactOnEveryKernel() throws {
        let savedWorkers = Parallel.workers
        defer { Parallel.workers = savedWorkers }
        var rng = SeededRandom(seed: 24)
        func ints(_ count: Int, _ range: ClosedRange<Int>) -> [Float] { (0..<count).map { _ in Float(range.lowerBound + Int(rng.next() % UInt64(range.count))) } }
        for kernel in kernels {
            for workers in [1, 2] {
                Parallel.workers = workers
                for (m, k, n) in shapes where kernel != .bf16AMXModel || m * k * n < 3_000_000 {
                    // |x|, |w| ≤ 16 (exact in bf16), sums ≤ 300·256 + … < 2^24: every operation exact.
                    let x = ints(m * k, -16...16), w = ints(n * k, -16...16), b = ints(n, -50...50), start = ints(m * n, -9...9)
                    for (bias, y0) in [(b, nil), (nil, start), (b, start)] as [([Float]?, [Float]?)] {
                        let y = try multiply(kernel, x, w, m: m, k: k, n: n, bias: bias, start: y0)
                        var wrong = 0
                        for i in 0..<m { for j in 0..<n {
                            var s = (bias?[j] ?? 0) + (y0?[i * n + j] ?? 0)
                            for t in 0..<k { s += x[i * k + t] * w[j * k + t] }
                            if y[i * n + j] != s { wrong += 1 }
                        } }
                        XCTAssertEqual(wrong, 0, "\(kernel) m \(m) k \(k) n \(n) bias \(bias != nil) accumulate \(y0 != nil), \(workers) worker(s)")
                    }
                }
            }
        }
    }

    func testRandomProductsStayWithinTheRoundingBounds() throws {
        var rng = SeededRandom(seed: 25)
        for kernel in kernels {
            for (m, k, n) in shapes where kernel != .bf16AMXModel || m * k * n < 3_000_000 {
                let x = (0..<m * k).map { _ in rng.normal() }, w = (0..<n * k).map { _ in rng.normal() * 0.05 }
                let b = (0..<n).map { _ in rng.normal() }, start = (0..<m * n).map { _ in rng.normal() }
                let y = try multiply(kernel, x, w, m: m, k: k, n: n, bias: b, start: start)
                let r = { (v: Float) in Double(BFloat16.float(BFloat16.round(v))) }
                for i in 0..<m { for j in 0..<n {
                    var rounded = 0.0, exact = 0.0, magnitude = 0.0
                    for t in 0..<k {
                        let (xv, wv) = (x[i * k + t], w[j * k + t])
                        rounded += r(xv) * r(wv)
                        exact += Double(xv) * Double(wv)
                        magnitude += abs(Double(xv) * Double(wv))
                    }
                    let offset = Double(b[j]) + Double(start[i * n + j])
                    let outer = (abs(Double(b[j])) + abs(Double(start[i * n + j]))) * 0x1p-23  // the two epilogue adds
                    let summation = Double(k + 2) * 0x1p-24 * magnitude * 1.01
                    let got = Double(y[i * n + j])
                    XCTAssertLessThanOrEqual(abs(got - (rounded + offset)), summation + outer,
                                             "\(kernel) m \(m) k \(k) n \(n) at (\(i), \(j)) vs the rounded inputs")
                    XCTAssertLessThanOrEqual(abs(got - (exact + offset)), (0x1p-7 + 0x1p-16) * magnitude * 1.01 + summation + outer,
                                             "\(kernel) m \(m) k \(k) n \(n) at (\(i), \(j)) vs the fp32 inputs")
                }
                }
            }
        }
    }

    /// Any column range computes exactly those columns (threads take disjoint ranges): the union
    /// of ranges split anywhere equals one call over all columns, bit for bit. The ranges also end
    /// inside the first one or two 16-column groups of a panel, where the AVX512-BF16 kernel runs a
    /// narrower tile (5, 16, 97, 120): its sums must equal the full tile's.
    func testColumnRangesComposeBitForBit() throws {
        var rng = SeededRandom(seed: 26)
        let (m, k, n) = (37, 100, 131)
        let x = (0..<m * k).map { _ in rng.normal() }, w = (0..<n * k).map { _ in rng.normal() }
        let b = (0..<n).map { _ in rng.normal() }
        for kernel in kernels {
            let packed = try XCTUnwrap(PackedMatrix(Tensor(shape: [n, k], data: w), kernel: kernel))
            var whole = [Float](repeating: .nan, count: m * n), pieces = whole
            x.withUnsafeBufferPointer { xp in b.withUnsafeBufferPointer { bp in
                packed.multiply(xp.baseAddress!, rows: m, bias: bp.baseAddress!, into: &whole, accumulate: false)
                for (lo, hi) in [(0, 5), (5, 16), (16, 53), (53, 96), (96, 97), (97, 120), (120, 131)] {
                    packed.multiply(xp.baseAddress!, rows: m, bias: bp.baseAddress!, into: &pieces, columns: lo..<hi, accumulate: false)
                }
            } }
            XCTAssertEqual(whole.map(\.bitPattern), pieces.map(\.bitPattern), "\(kernel)")
        }
    }

    /// Where the CPU has AMX, the hardware tiles and their C model agree to twice the fp32
    /// summation bound (the instruction's internal order of the pair sums is its own).
    func testAMXHardwareAgreesWithItsModel() throws {
        try XCTSkipUnless(InferenceKernel.bf16AMX.runsHere, "this CPU has no AMX-BF16 (its layout is checked through the model)")
        var rng = SeededRandom(seed: 27)
        let (m, k, n) = (75, 200, 100)
        let x = (0..<m * k).map { _ in rng.normal() }, w = (0..<n * k).map { _ in rng.normal() }
        let hardware = try multiply(.bf16AMX, x, w, m: m, k: k, n: n, bias: nil, start: nil)
        let model = try multiply(.bf16AMXModel, x, w, m: m, k: k, n: n, bias: nil, start: nil)
        let r = { (v: Float) in Double(BFloat16.float(BFloat16.round(v))) }
        for i in 0..<m { for j in 0..<n {
            let magnitude = (0..<k).reduce(0.0) { $0 + abs(r(x[i * k + $1]) * r(w[j * k + $1])) }
            XCTAssertLessThanOrEqual(abs(Double(hardware[i * n + j]) - Double(model[i * n + j])), 2 * Double(k + 2) * 0x1p-24 * magnitude * 1.01)
        } }
    }
}
