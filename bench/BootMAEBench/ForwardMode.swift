import Checkpoint
import Foundation
import Tensor
import ViT

/// `bootmae-bench forward --model-dir D [--batch 8] [--seconds 3] [--min-iterations 3] [--threads 2] [--json] [--serve]
///                        [--split operation|image] [--precision fp32|bf16] [--kernel K] [--gemm SETTING]
///                        [--compare-split | --compare-precision | --compare-gemm blas,own | --compare-prefetch-y on,off |
///                         --compare-attention-precision bf16,fp32 | --compare-bf16-forward new,old]
///                        [--rounds 5]`
///
/// `--split` picks how a batch uses the threads (`InferenceSplit`); the blocks' weights are packed
/// for the inference GEMM as the server packs them (at `--precision`, fp32 by default), unless
/// `--no-pack`; `--kernel` (fp32-avx512, bf16-avx512, bf16-amx) overrides the CPUID choice. `--compare-split`
/// alternates BLAS / packed × split by operation / by image in this process and prints medians and
/// ratios; `--compare-precision` alternates fp32 and bf16 packed weights the same way and prints the
/// embeddings' cosine between the two. `--gemm` / `--compare-gemm` set or alternate who runs the GEMMs
/// outside packed layers (attention; every layer with `--no-pack` or without AVX-512), as in `train-step`;
/// `--compare-prefetch-y on,off` alternates the packed GEMMs prefetching their output tiles or not,
/// `--compare-attention-precision bf16,fp32` attention's products in bf16 or fp32 (bf16 weights),
/// `--compare-bf16-forward new,old` both against neither.
/// Variants that claim the same arithmetic are first checked for bit-identical embeddings.
/// Encoder forward (pooled embeddings) of a model directory on random inputs. Without `--serve`
/// it measures `--batch` once; with `--serve` it is a worker for bench/compare, answering stdin lines:
///   measure <batch> <seconds> <min-iterations>   one timing, as a JSON line
///   embed <in.safetensors> <out.safetensors>     embeddings of the tensor "images" into "embeddings"
struct ForwardMode {
    let model: VisionTransformer
    /// The same weights left plain (BLAS), for `--compare-split`.
    let plainModel: VisionTransformer?
    /// The same weights packed in fp32, for `--compare-precision` (`model` is then bf16).
    let fp32Model: VisionTransformer?
    let name: String
    let threads: Int
    /// Kept across calls, as the server keeps one per model.
    let workspace = InferenceWorkspace()

    init(_ options: Options) throws {
        threads = try options.int("--threads", default: 2)
        TensorRuntime.configure(threads: threads)
        try applyGEMMPath(options)
        if let name = try options.string("--split") {
            guard let split = InferenceSplit(name: name) else { throw BenchError("--split \(name): expected operation or image") }
            InferenceSplit.current = split
        }
        guard let dir = try options.string("--model-dir") else { throw BenchError("forward needs --model-dir DIR") }
        let url = URL(fileURLWithPath: dir)
        let comparePrecision = options.flag("--compare-precision")
        let precisionName = try options.string("--precision") ?? (comparePrecision ? "bf16" : "fp32")
        guard let precision = InferencePrecision(rawValue: precisionName) else {
            throw BenchError("--precision \(precisionName): expected fp32 or bf16")
        }
        // --kernel picks one kernel over the CPUID choice (bf16-avx512 on an AMX machine, say).
        var kernel = InferenceKernel.best(for: precision)
        if let name = try options.string("--kernel") {
            guard let chosen = InferenceKernel(rawValue: name), chosen != .fp32BLAS, chosen.runsHere else {
                throw BenchError("--kernel \(name): expected one this CPU runs: "
                                 + [InferenceKernel.fp32AVX512, .bf16AVX512, .bf16AMX, .bf16AMXModel].filter(\.runsHere).map(\.rawValue).joined(separator: ", "))
            }
            kernel = chosen
        }
        model = try ModelDirectory.loadEncoder(url)
        if !options.flag("--no-pack") { model.packForInference(releasingPlainValues: true, kernel: kernel) }
        plainModel = options.flag("--compare-split") ? try ModelDirectory.loadEncoder(url) : nil
        fp32Model = comparePrecision ? try ModelDirectory.loadEncoder(url) : nil
        fp32Model?.packForInference(releasingPlainValues: true, precision: .fp32)
        name = url.lastPathComponent
    }

    func measure(batch: Int, seconds: Double, minIterations: Int) -> [String: Any] {
        let c = model.config
        var rng = SeededRandom(seed: UInt64(batch))
        let shape = [batch, c.inChans, c.imgSize, c.imgSize]
        let images = Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.normal() })
        let timing = timeRuns(seconds: seconds, minIterations: minIterations) { _ = model.embed(images, workspace: workspace) }
        let t = timing.medianSeconds
        let result: [String: Any] = ["event": "forward", "engine": "swift", "model": name, "batch": batch, "threads": threads,
                                     "precision": model.inferenceKernel.precision.rawValue, "kernel": model.inferenceKernel.rawValue,
                                     "iterations": timing.times.count, "median_s": t, "img_per_s": Double(batch) / t,
                                     "gflop_per_s": flopsPerImage(c) * Double(batch) / t / 1e9,
                                     "faults_per_call": timing.faultsPerCall]
        return result.merging(memoryStatus()) { a, _ in a }
    }

    func embed(input: String, output: String) throws -> [String: Any] {
        let images = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: input)).tensor("images")
        let c = model.config
        guard images.shape.count == 4, Array(images.shape[1...]) == [c.inChans, c.imgSize, c.imgSize] else {
            throw BenchError("\(input): images have shape \(images.shape), the model takes (B, \(c.inChans), \(c.imgSize), \(c.imgSize))")
        }
        let embeddings = model.embed(images, workspace: workspace)
        try SafeTensorsWriter.write([("embeddings", embeddings)], to: URL(fileURLWithPath: output))
        return ["event": "embed", "output": output, "shape": embeddings.shape]
    }

    func run(_ options: Options) throws {
        if options.flag("--serve") {
            let ready: [String: Any] = ["engine": "swift", "model": name, "threads": threads, "kernel": model.inferenceKernel.rawValue]
            serveCommands(ready: ready.merging(engineDescription()) { a, _ in a }) { words in
                switch words[0] {
                case "measure":
                    return measure(batch: try argument(words, 1, "batch"), seconds: try argument(words, 2, "seconds"),
                                   minIterations: try argument(words, 3, "min-iterations"))
                case "embed":
                    guard words.count == 3 else { throw BenchError("embed needs <in.safetensors> <out.safetensors>") }
                    return try embed(input: words[1], output: words[2])
                default:
                    throw BenchError("unknown command '\(words[0])' (measure, embed, quit)")
                }
            }
            return
        }
        if options.flag("--compare-split") {
            let batch = try options.int("--batch", default: 8)
            let c = model.config
            var rng = SeededRandom(seed: UInt64(batch))
            let shape = [batch, c.inChans, c.imgSize, c.imgSize]
            let images = Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.normal() })
            nonisolated(unsafe) var current = model
            var variants: [StepVariant] = []
            for (engine, network) in [("blas", plainModel!), ("packed", model)] {
                for (label, split) in [("split by operation", InferenceSplit.byOperation), ("split by image", .byImage)] {
                    variants.append(StepVariant(name: "\(engine), \(label)") { current = network; InferenceSplit.current = split })
                }
            }
            compareVariants("\(name) forward", batch: batch, threads: threads,
                            step: { _ = current.embed(images, workspace: workspace) }, variants,
                            rounds: try options.int("--rounds", default: 5), seconds: try options.double("--seconds", default: 3))
            return
        }
        if let fp32Model {
            try comparePrecision(fp32Model, options)
            return
        }
        let gemm = try gemmVariants(options) + outputPrefetchVariants(options) + attentionPrecisionVariants(options) + bf16ForwardVariants(options)
        if !gemm.isEmpty {
            let batch = try options.int("--batch", default: 8), c = model.config
            var rng = SeededRandom(seed: UInt64(batch))
            let shape = [batch, c.inChans, c.imgSize, c.imgSize]
            let images = Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.normal() })
            reportBitwise(gemm, images: images)
            compareVariants("\(name) forward", batch: batch, threads: threads, step: { _ = model.embed(images, workspace: workspace) },
                            gemm, rounds: try options.int("--rounds", default: 5), seconds: try options.double("--seconds", default: 3))
            return
        }
        let r = measure(batch: try options.int("--batch", default: 8), seconds: try options.double("--seconds", default: 3),
                        minIterations: try options.int("--min-iterations", default: 3))
        if options.flag("--json") {
            emitJSON(r)
        } else {
            print(String(format: "%@ (%@) batch %d: %.2f img/s, %.1f GFLOP/s, %.1f ms/batch (median of %d)", name as NSString,
                         model.inferenceKernel.rawValue as NSString, r["batch"] as! Int,
                         r["img_per_s"] as! Double, r["gflop_per_s"] as! Double, (r["median_s"] as! Double) * 1000, r["iterations"] as! Int))
        }
    }

    /// Whether every variant gives the first one's embeddings bit for bit (variants that claim to
    /// change only the time must), printed before the timing.
    func reportBitwise(_ variants: [StepVariant], images: Tensor) {
        var reference: [Float]?
        for v in variants {
            v.setUp()
            let data = model.embed(images, workspace: workspace).data
            guard let first = reference else { reference = data; continue }
            let differing = zip(first, data).filter { $0.bitPattern != $1.bitPattern }.count
            let dim = data.count / images.shape[0]
            let cosines = (0..<images.shape[0]).map { i in cosine(first[(i * dim)..<((i + 1) * dim)], data[(i * dim)..<((i + 1) * dim)]) }
            print("\(v.name) vs \(variants[0].name): " + (differing == 0 ? "embeddings bit-identical (\(data.count) floats)"
                : String(format: "%d of %d embedding floats differ, cosine min %.7f", differing, data.count, cosines.min()!)))
        }
    }

    /// fp32 and bf16 packed weights alternated in this process (medians and ratio), and how far
    /// the bf16 embeddings are from the fp32 ones (cosine per image, the minimum printed).
    func comparePrecision(_ fp32Model: VisionTransformer, _ options: Options) throws {
        let batch = try options.int("--batch", default: 8)
        let c = model.config
        var rng = SeededRandom(seed: UInt64(batch))
        let shape = [batch, c.inChans, c.imgSize, c.imgSize]
        let images = Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in rng.normal() })
        let (reference, reduced) = (fp32Model.embed(images, workspace: workspace), model.embed(images, workspace: workspace))
        let dim = reference.lastDim
        let cosines = (0..<batch).map { i in
            cosine(reference.data[(i * dim)..<((i + 1) * dim)], reduced.data[(i * dim)..<((i + 1) * dim)])
        }
        print(String(format: "%@: %@ vs %@, embedding cosine min %.6f over %d random images", name as NSString,
                     model.inferenceKernel.rawValue as NSString, fp32Model.inferenceKernel.rawValue as NSString, cosines.min() ?? .nan, batch))
        nonisolated(unsafe) var current = fp32Model
        let variants = [fp32Model, model].map { network in
            StepVariant(name: network.inferenceKernel.rawValue) { current = network }
        }
        compareVariants("\(name) forward", batch: batch, threads: threads,
                        step: { _ = current.embed(images, workspace: workspace) }, variants,
                        rounds: try options.int("--rounds", default: 5), seconds: try options.double("--seconds", default: 3))
    }
}

/// The cosine of two equally long vectors, summed in doubles.
func cosine(_ x: ArraySlice<Float>, _ y: ArraySlice<Float>) -> Double {
    var (dot, a, b) = (0.0, 0.0, 0.0)
    for (u, v) in zip(x, y) { (dot, a, b) = (dot + Double(u) * Double(v), a + Double(u) * Double(u), b + Double(v) * Double(v)) }
    return dot / (a * b).squareRoot()
}
