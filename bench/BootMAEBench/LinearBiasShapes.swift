import Foundation
import Tensor

/// `bootmae-bench --linear-bias [--seconds S] [--rounds R]`: one thread, `LinearOp.forward` at the
/// bias-only Linear shapes of a BootMAE tiny-preset training step (one shard of 64 images: fc1 and
/// qkv of the momentum encoder at 3200 rows, of the encoder at 832), with the bias added in the
/// GEMM's store and by a pass of its own (`LinearOp.biasInGEMMStore`), alternated in rounds: median
/// CPU µs per call. Each call allocates its output, as the step does.
func linearBiasShapes(seconds: Double, rounds: Int) {
    let shapes = [(3200, 128, 512), (3200, 128, 384), (832, 128, 512), (832, 128, 384), (3200, 64, 256)]
    let saved = (Parallel.workers, LinearOp.biasInGEMMStore)
    defer { (Parallel.workers, LinearOp.biasInGEMMStore) = saved }
    Parallel.workers = 1
    print("one thread, LinearOp.forward CPU µs per call, median of \(rounds) alternated rounds; CPU \(CPUFeatures.current.modelName); gemm \(BLAS.path)")
    print("| rows×in→out | bias in store | bias pass | store / pass |")
    for (rows, inDim, outDim) in shapes {
        var rng = SeededRandom(seed: 1)
        let x = Tensor(shape: [rows, inDim], data: (0..<(rows * inDim)).map { _ in rng.normal() })
        let w = Tensor(shape: [outDim, inDim], data: (0..<(outDim * inDim)).map { _ in rng.normal() })
        let b = Tensor(shape: [outDim], data: (0..<outDim).map { _ in rng.normal() })
        var times: [[Double]] = [[], []]
        for _ in 0..<rounds {
            for (i, store) in [true, false].enumerated() {
                LinearOp.biasInGEMMStore = store
                let t = timeMedians(seconds: seconds / Double(2 * rounds), minRuns: 5) {
                    _ = LinearOp.forward(x, weight: w, bias: b)
                }
                times[i].append(t.cpu * 1e6)
            }
        }
        let (store, pass) = (median(times[0]), median(times[1]))
        print(String(format: "| %d×%d→%d | %.1f | %.1f | %.3f |", rows, inDim, outDim, store, pass, store / pass))
    }
}
