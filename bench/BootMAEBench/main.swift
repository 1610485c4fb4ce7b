import Foundation
import Tensor
import ViT

// Encoder forward throughput on random weights: img/s and achieved GFLOP/s per model and batch.
// Run through bench/encoder (release build with the project's flags). Not a test: numbers vary
// 15–40% run to run on shared machines; compare within one run. The `forward` and `train-step`
// modes (ForwardMode.swift, TrainStepMode.swift) are the workers of bench/compare.

struct Case {
    let name: String
    let config: ViTConfig
}

let arguments = CommandLine.arguments

// Machine-readable modes (one JSON line per measurement) driven by bench/compare.
if let mode = arguments.dropFirst().first, ["forward", "train-step", "finetune-step", "lomar-cost"].contains(mode) {
    let options = Options(arguments: Array(arguments.dropFirst(2)))
    do {
        switch mode {
        case "forward": try ForwardMode(options).run(options)
        case "train-step": try TrainStepMode(options).run(options)
        case "lomar-cost": try LoMaRCostMode(options).run()
        default: try FinetuneStepMode(options).run(options)
        }
        exit(0)
    } catch {
        FileHandle.standardError.write(Data("bootmae-bench \(mode): error: \(error)\n".utf8))
        exit(2)
    }
}
/// The value after `flag` among the top-level flags, nil when the flag is absent; a missing or
/// malformed value stops with a message (exit 64), not a crash.
func flagValue<T: LosslessStringConvertible>(_ flag: String, as type: T.Type = T.self) -> T? {
    guard let i = arguments.firstIndex(of: flag) else { return nil }
    guard i + 1 < arguments.count, let value = T(arguments[i + 1]) else {
        FileHandle.standardError.write(Data("bootmae-bench: \(flag) needs a value (\(T.self))\n".utf8))
        exit(64)
    }
    return value
}
let threads = flagValue("--threads", as: Int.self) ?? 2
let seconds = flagValue("--seconds", as: Double.self) ?? 3
TensorRuntime.configure(threads: threads)

let benchmarkCases = [
    Case(name: "vit_b16_224", config: ViTConfig(imgSize: 224, patchSize: 16, embedDim: 768, depth: 12, numHeads: 12,
                                                posEmbed: .sincosMAE)),
    Case(name: "vit_tiny_32_p4", config: ViTConfig(imgSize: 32, patchSize: 4, embedDim: 192, depth: 12, numHeads: 3,
                                                   posEmbed: .sincosMAE)),
]

/// Elementwise kernels alone, in Gelem/s (checks that release builds vectorize them).
func kernelRates() {
    var rng = SeededRandom(seed: 1)
    let x = Tensor(shape: [512, 768], data: (0..<(512 * 768)).map { _ in rng.normal() * 3 })
    func rate(_ name: String, _ body: () -> Void) {
        body()
        var times: [Double] = []
        for _ in 0..<(arguments.contains("--only") ? 200 : 20) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        print(String(format: "kernel %-24@ %6.2f Gelem/s", name as NSString, Double(x.count) / median(times) / 1e9))
    }
    rate("gelu forward") { _ = GELUOp.forward(x) }
    rate("gelu backward") { _ = GELUOp.backward(x, input: x) }
    rate("layernorm forward") { _ = LayerNormOp.forward(x, weight: nil, bias: nil, eps: 1e-6) }
    rate("row max") { x.withPointer { p in for r in 0..<512 { _ = Vector.max(p + r * 768, 768) } } }
    rate("row sum") { x.withPointer { p in for r in 0..<512 { _ = Vector.sum(p + r * 768, 768) } } }
    rate("softmax forward (rows 768)") { _ = SoftmaxOp.forward(x) }
}
if arguments.contains("--images") {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Tests/Fixtures/images").standardized
    try imageTimings(fixtures: fixtures)
    exit(0)
}
if arguments.contains("--gemm") {
    // Raw sgemm rates at the shapes a tiny-ViT training step uses.
    for (m, n, k, tb) in [(12800, 384, 128, true), (12800, 512, 128, true), (12800, 128, 512, true), (12800, 128, 128, true),
                          (50, 50, 32, true), (50, 32, 50, false)] {
        var a = [Float](repeating: 0.5, count: m * k), b = [Float](repeating: 0.25, count: n * k), c = [Float](repeating: 0, count: m * n)
        let reps = m * n * k > 1_000_000 ? 20 : 20000
        var times: [Double] = []
        for _ in 0..<5 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<reps {
                BLAS.gemm(transB: tb, m: m, n: n, k: k, a: &a, lda: k, b: &b, ldb: tb ? k : n, c: &c, ldc: n)
            }
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 / Double(reps))
        }
        print(String(format: "gemm %5d x %4d x %4d: %7.1f GFLOP/s  %8.1f us", m, n, k, 2.0 * Double(m * n * k) / median(times) / 1e9, median(times) * 1e6))
    }
    exit(0)
}
if arguments.contains("--gemm-training") {
    trainingGEMMShapes(seconds: seconds, rounds: flagValue("--rounds", as: Int.self) ?? 5)
    exit(0)
}
if arguments.contains("--linear-bias") {
    linearBiasShapes(seconds: seconds, rounds: flagValue("--rounds", as: Int.self) ?? 5)
    exit(0)
}
if arguments.contains("--gemm-strategies") {
    attentionGemmShapes(seconds: seconds); if arguments.contains("--attention") { exit(0) }
    gemmStrategies(seconds: seconds)
    exit(0)
}
if arguments.contains("--breakdown") {
    breakdowns(seconds: seconds, only: flagValue("--only", as: String.self))
    exit(0)
}
if arguments.contains("--finetune") {
    finetuneStepRates(seconds: seconds)
    exit(0)
}
if arguments.contains("--train") {
    trainStepRates(seconds: seconds)
    exit(0)
}
if arguments.contains("--kernels") { kernelRates(); if arguments.contains("--only") { exit(0) } }

print("threads=\(threads)  (median of timed runs after one warm-up, ~\(seconds)s per case; img/s per wall and per CPU second)")
print("case                 batch    img/s   GFLOP/s   ms/batch   img/cpu-s")
for c in benchmarkCases {
    var rng = SeededRandom(seed: 0)
    let model = VisionTransformer(config: c.config)
    WeightInit.initialize(model, style: .mae, rng: &rng)
    for batch in [1, 8] {
        let shape = [batch, c.config.inChans, c.config.imgSize, c.config.imgSize]
        let images = Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.normal() })
        let t = timeMedians(seconds: seconds) { _ = model.embed(images) }
        let ips = Double(batch) / t.wall
        let gflops = flopsPerImage(c.config) * ips / 1e9
        print(c.name.padding(toLength: 20, withPad: " ", startingAt: 0)
              + String(format: " %5d %8.1f %9.1f %10.2f %11.1f", batch, ips, gflops, t.wall * 1000, Double(batch) / t.cpu))
    }
}
