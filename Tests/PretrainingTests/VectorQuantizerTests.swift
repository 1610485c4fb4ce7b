import XCTest
import Tensor
@testable import Objectives

/// The PeCo tokenizer's quantizer against brute force, closed forms, finite differences and
/// hand-computed EMA updates.
final class VectorQuantizerTests: XCTestCase {
    func makeQuantizer(codes: Int, dim: Int, seed: UInt64 = 1) -> VectorQuantizer {
        var list = ParameterList()
        let q = VectorQuantizer(codes: codes, dim: dim, name: "quantizer", into: &list)
        var rng = SeededRandom(seed: seed)
        q.codebook.fill { rng.normal() }
        return q
    }

    func randomRows(_ m: Int, _ d: Int, seed: UInt64) -> Tensor {
        var rng = SeededRandom(seed: seed)
        return Tensor(shape: [m, d], data: (0..<(m * d)).map { _ in rng.normal() })
    }

    /// The index is the brute-force argmin of ‖z − e_k‖² computed in Float64.
    func testNearestIsBruteForceArgmin() {
        let q = makeQuantizer(codes: 37, dim: 8)
        let z = randomRows(300, 8, seed: 2)
        let indices = q.nearest(z)
        for r in 0..<z.rows {
            var best = 0, bestDistance = Double.infinity
            for k in 0..<q.codes {
                var distance = 0.0
                for c in 0..<8 {
                    let diff = Double(z.data[r * 8 + c]) - Double(q.codebook.value.data[k * 8 + c])
                    distance += diff * diff
                }
                if distance < bestDistance { (best, bestDistance) = (k, distance) }
            }
            XCTAssertEqual(indices[r], best, "row \(r)")
        }
        // A row equal to a code maps to that code; the lookup returns the codes.
        let exact = Tensor(shape: [2, 8], data: Array(q.codebook.value.data[(5 * 8)..<(6 * 8)] + q.codebook.value.data[(30 * 8)..<(31 * 8)]))
        XCTAssertEqual(q.nearest(exact), [5, 30])
        XCTAssertEqual(q.lookup([5, 30]), exact)
    }

    /// The search over all codes at once gives the indices of the code-by-code float32 search it
    /// replaced (each distance summed in coordinate order), also where only rounding decides:
    /// half of 512 codes of width 32 are permutations of one vector v, so a row whose coordinates
    /// are all equal is exactly as far from each of them in real arithmetic, and the float32 sums
    /// of the same squares in different orders pick the winner (a search that summed in any other
    /// order would pick others). The other codes are random, rows random or equal to a code.
    func testNearestIsTheCodeByCodeFloat32Search() {
        let (k, d) = (512, 32)
        var rng = SeededRandom(seed: 6)
        let v = (0..<d).map { _ in rng.normal() }
        var codes: [Float] = []
        for _ in 0..<(k / 2) {
            var order = Array(0..<d)
            for i in stride(from: d - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            codes += order.map { v[$0] }
        }
        codes += (0..<(k / 2 * d)).map { _ in 2 + rng.normal() }
        var list = ParameterList()
        let q = VectorQuantizer(codes: k, dim: d, name: "quantizer", into: &list)
        q.codebook.value = Tensor(shape: [k, d], data: codes)
        var rows: [Float] = []
        for _ in 0..<200 { rows += Array(repeating: rng.normal() * 0.3, count: d) }
        rows += randomRows(100, d, seed: 7).data.map { $0 + 2 }
        rows += Array(codes[(3 * d)..<(4 * d)]) + Array(codes[(400 * d)..<(401 * d)])
        let m = rows.count / d
        let expected = (0..<m).map { r -> Int in
            var best = 0, bestDistance = Float.infinity
            for j in 0..<k {
                var distance: Float = 0
                for c in 0..<d { let diff = rows[r * d + c] - codes[j * d + c]; distance += diff * diff }
                if distance < bestDistance { (best, bestDistance) = (j, distance) }
            }
            return best
        }
        XCTAssertEqual(q.nearest(Tensor(shape: [m, d], data: rows)), expected)
        XCTAssertEqual(Array(expected.suffix(2)), [3, 400])
        XCTAssertGreaterThan(Set(expected.prefix(200)).count, 20, "rounding spreads the tied rows over many permutations")
    }

    /// Ties go to the lowest index (torch.argmin's rule).
    func testTieGoesToLowestIndex() {
        var list = ParameterList()
        let q = VectorQuantizer(codes: 3, dim: 1, name: "q", into: &list)
        q.codebook.value = Tensor(shape: [3, 1], data: [1, -1, 1])
        XCTAssertEqual(q.nearest(Tensor(shape: [1, 1], data: [0])), [0])
    }

    /// Straight-through: without commitment the gradient reaching the codes reaches z unchanged.
    /// With it, z also gets 2β(z − e)/n (closed form), which finite differences of the commitment
    /// loss confirm; the codebook is state (never trainable), so no loss gradient reaches it.
    func testStraightThroughAndCommitmentGradients() {
        let q = makeQuantizer(codes: 16, dim: 4)
        let z = randomRows(10, 4, seed: 3)
        let dq = randomRows(10, 4, seed: 4)
        let plain = q.forward(z, beta: 0, normalizer: 40)
        XCTAssertEqual(q.backward(dq, output: plain), dq, "β = 0: d z is exactly d z_q")
        XCTAssertEqual(plain.commitment, 0)

        let beta: Float = 0.25, n: Float = 40
        let out = q.forward(z, beta: beta, normalizer: n)
        let dz = q.backward(dq, output: out)
        for i in 0..<z.count {
            let closed = dq.data[i] + 2 * beta * (z.data[i] - out.quantized.data[i]) / n
            XCTAssertEqual(dz.data[i], closed, accuracy: 1e-6)
        }
        // The commitment loss against finite differences (h small enough to keep every assignment).
        let h: Float = 1e-3
        var worst: Float = 0
        for i in 0..<z.count {
            var up = z, down = z
            up.data[i] += h
            down.data[i] -= h
            let outUp = q.forward(up, beta: beta, normalizer: n), outDown = q.forward(down, beta: beta, normalizer: n)
            XCTAssertEqual(outUp.indices, out.indices)
            XCTAssertEqual(outDown.indices, out.indices)
            let numeric = (outUp.commitment - outDown.commitment) / (2 * h)
            worst = max(worst, abs(numeric - out.commitmentGrad.data[i]))
        }
        XCTAssertLessThan(worst, 1e-3, "commitment gradient vs central differences")
        XCTAssertEqual(Double(out.commitment), Double(beta) * zip(z.data, out.quantized.data).map { Double(($0 - $1) * ($0 - $1)) }.reduce(0, +) / Double(n),
                       accuracy: 1e-6)
        for p in [q.codebook, q.usage, q.sums, q.health] { XCTAssertFalse(p.trainable) }
    }

    /// Statistics and the EMA update on numbers computed by hand (γ = 0.5, K = 3, d = 2).
    func testEMAUpdateByHand() {
        var list = ParameterList()
        let q = VectorQuantizer(codes: 3, dim: 2, name: "q", into: &list)
        q.codebook.value = Tensor(shape: [3, 2], data: [0, 0, 10, 10, -10, 0])
        q.usage.value = Tensor(shape: [3], data: [2, 1, 4])
        q.sums.value = Tensor(shape: [3, 2], data: [2, 2, 10, 10, -40, 0])
        let z = Tensor(shape: [3, 2], data: [1, 1, 9, 11, 0.5, 0])
        let indices = q.nearest(z)
        XCTAssertEqual(indices, [0, 1, 0])
        let stats = VectorQuantizer.statistics(z, indices: indices, codes: 3)
        XCTAssertEqual(stats.counts, [2, 1, 0])
        XCTAssertEqual(stats.sums, [1.5, 1, 9, 11, 0, 0])
        // N = 0.5·[2, 1, 4] + 0.5·[2, 1, 0] = [2, 1, 2]; m0 = 0.5·(2, 2) + 0.5·(1.5, 1) = (1.75, 1.5),
        // m1 = (9.5, 10.5), m2 = (−20, 0); e = m / N.
        let dead = q.updateEMA(counts: stats.counts, sums: stats.sums, decay: 0.5, deadShare: 0.03, candidates: [Float](repeating: 7, count: 6))
        XCTAssertEqual(dead, [])
        XCTAssertEqual(q.usage.value.data, [2, 1, 2])
        XCTAssertEqual(q.sums.value.data, [1.75, 1.5, 9.5, 10.5, -20, 0])
        XCTAssertEqual(q.codebook.value.data, [0.875, 0.75, 9.5, 10.5, -10, 0])
        XCTAssertEqual(q.lastHealth.perplexity, Float(exp(-(2.0 / 3 * log(2.0 / 3) + 1.0 / 3 * log(1.0 / 3)))), accuracy: 1e-6)
        XCTAssertEqual(q.lastHealth.deadShare, 0)
    }

    /// A code below 3% of the mean usage restarts at its candidate with a uniform share of usage;
    /// the first step (nothing used yet) restarts every unused code from the batch.
    func testDeadCodeRestarts() {
        var list = ParameterList()
        let q = VectorQuantizer(codes: 4, dim: 1, name: "q", into: &list)
        q.codebook.value = Tensor(shape: [4, 1], data: [0, 1, 2, 3])
        // First step: codes 0 and 1 used; 2 and 3 have N = 0 and restart.
        let candidates: [Float] = [10, 11, 12, 13]
        let dead = q.updateEMA(counts: [3, 1, 0, 0], sums: [0.3, 1.1, 0, 0], decay: 0.9, deadShare: 0.03, candidates: candidates)
        XCTAssertEqual(dead, [2, 3])
        let uniform = (0.1 * 3 + 0.1 * 1) / Float(4)
        XCTAssertEqual(q.usage.value.data[0], 0.3, accuracy: 1e-7)
        XCTAssertEqual(q.usage.value.data[2], uniform, accuracy: 1e-7)
        XCTAssertEqual(Array(q.codebook.value.data[2...]), [12, 13])
        XCTAssertEqual(q.sums.value.data[3], 13 * uniform, accuracy: 1e-6)
        XCTAssertEqual(q.codebook.value.data[0], 0.1, accuracy: 1e-6)
        XCTAssertEqual(q.lastHealth.deadShare, 0.5)
        XCTAssertEqual(VectorQuantizer.deadCodes(usage: [1, 1, 1, 0.02], share: 0.03), [3])
        XCTAssertEqual(VectorQuantizer.deadCodes(usage: [1, 1, 1, 0.03], share: 0.03), [])
    }

    /// Perplexity = exp(entropy of the usage shares).
    func testPerplexity() {
        XCTAssertEqual(VectorQuantizer.perplexity([5, 5, 5, 5]), 4, accuracy: 1e-5)
        XCTAssertEqual(VectorQuantizer.perplexity([9, 0, 0, 0]), 1, accuracy: 1e-6)
        XCTAssertEqual(VectorQuantizer.perplexity([1, 3]), Float(exp(-(0.25 * log(0.25) + 0.75 * log(0.75)))), accuracy: 1e-6)
        XCTAssertEqual(VectorQuantizer.perplexity([0, 0]), 0)
    }
}
