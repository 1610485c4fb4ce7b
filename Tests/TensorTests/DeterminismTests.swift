import XCTest
import Tensor

/// Training resumes bit-exactly only if no result depends on how work is spread over threads:
/// kernels that split work over (batch, head) pairs or rows must give identical bits for any
/// worker count.
final class DeterminismTests: XCTestCase {
    override func tearDown() { Parallel.workers = 1 }

    func random(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = SeededRandom(seed: seed)
        return Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.normal() })
    }

    /// Runs `body` with 1 and with 3 workers and requires bit-identical tensors.
    func assertSameForAnyWorkerCount(_ body: () -> [Tensor], file: StaticString = #filePath, line: UInt = #line) {
        Parallel.workers = 1
        let serial = body()
        Parallel.workers = 3
        let parallel = body()
        XCTAssertEqual(serial.count, parallel.count, file: file, line: line)
        for (a, b) in zip(serial, parallel) {
            XCTAssertEqual(a.shape, b.shape, file: file, line: line)
            XCTAssertTrue(a.data.elementsEqual(b.data) { $0.bitPattern == $1.bitPattern }, "results differ", file: file, line: line)
        }
    }

    func testSelfAttention() {
        let qkv = random([3, 17, 3 * 24], seed: 1), dy = random([3, 17, 24], seed: 2)
        assertSameForAnyWorkerCount {
            let (out, saved) = AttentionOp.selfForward(qkv: qkv, heads: 4)
            return [out, saved.probs, AttentionOp.selfBackward(dy, qkv: qkv, saved: saved, heads: 4)]
        }
    }

    func testCrossAttention() {
        let q = random([2, 9, 16], seed: 3), kv = random([2, 21, 32], seed: 4), dy = random([2, 9, 16], seed: 5)
        assertSameForAnyWorkerCount {
            let (out, saved) = AttentionOp.crossForward(q: q, kv: kv, heads: 2)
            let (dq, dkv) = AttentionOp.crossBackward(dy, q: q, kv: kv, saved: saved, heads: 2)
            return [out, dq, dkv]
        }
    }
}
