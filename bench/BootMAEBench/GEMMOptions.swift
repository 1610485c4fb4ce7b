import Tensor

/// `--gemm SETTING`: who runs `BLAS.gemm` in this process (a `BOOTMAE_GEMM` value: auto, own, blas,
/// avx512, avx2, portable), set after `TensorRuntime.configure`.
func applyGEMMPath(_ options: Options) throws {
    guard let setting = try options.string("--gemm") else { return }
    guard let path = GEMMPath(setting: setting) else {
        throw BenchError("--gemm \(setting): expected one of \(GEMMPath.settings.joined(separator: ", ")) on this CPU")
    }
    BLAS.path = path
}

/// `--compare-gemm blas,own,avx2`: one step variant per setting, alternated in this process. The
/// OpenBLAS core is fixed per process (it is chosen when the library loads): compare cores by
/// running this twice, e.g. with `OPENBLAS_CORETYPE=Prescott`, and read each run's ratios.
func gemmVariants(_ options: Options) throws -> [StepVariant] {
    guard let list = try options.string("--compare-gemm") else { return [] }
    return try list.split(separator: ",").map { word in
        let setting = String(word)
        guard let path = GEMMPath(setting: setting) else {
            throw BenchError("--compare-gemm \(setting): expected settings from \(GEMMPath.settings.joined(separator: ", "))")
        }
        return StepVariant(name: path.description) { BLAS.path = path }
    }
}

/// The variants a `--compare-X a,b` flag names, each word one of `choices` (in the order given on
/// the command line); none when the flag is absent.
func choiceVariants(_ options: Options, _ flag: String, _ choices: [(word: String, variant: StepVariant)]) throws -> [StepVariant] {
    guard let list = try options.string(flag) else { return [] }
    return try list.split(separator: ",").map { word in
        guard let variant = choices.first(where: { $0.word == word })?.variant else {
            throw BenchError("\(flag) \(word): expected \(choices.map(\.word).joined(separator: " or "))")
        }
        return variant
    }
}

/// `--compare-attention fused,gemm`: attention's forward by the fused AVX-512 kernel or by two GEMMs
/// around SoftmaxOp per (image, head) pair (`AttentionOp.fusedKernelEnabled`), alternated in this
/// process. Both give the same bits; only the time differs.
func attentionVariants(_ options: Options) throws -> [StepVariant] {
    try choiceVariants(options, "--compare-attention", [
        ("fused", StepVariant(name: "attention fused") { AttentionOp.fusedKernelEnabled = true }),
        ("gemm", StepVariant(name: "attention gemm") { AttentionOp.fusedKernelEnabled = false }),
    ])
}

/// `--compare-linear-bias store,pass`: the Linear layers' bias added in the GEMM kernel's store, or
/// written into the output by a pass of its own before the GEMM (`LinearOp.biasInGEMMStore`),
/// alternated in this process. Both give the same bits; only the time differs.
func linearBiasVariants(_ options: Options) throws -> [StepVariant] {
    try choiceVariants(options, "--compare-linear-bias", [
        ("store", StepVariant(name: "linear bias in GEMM store") { LinearOp.biasInGEMMStore = true }),
        ("pass", StepVariant(name: "linear bias pass") { LinearOp.biasInGEMMStore = false }),
    ])
}

/// `--compare-prefetch-c on,off`: the training GEMM prefetching each tile's C rows before its
/// product, or not (`GEMMKernel.prefetchesC`), alternated in this process. Same bits, different time.
func prefetchVariants(_ options: Options) throws -> [StepVariant] {
    try choiceVariants(options, "--compare-prefetch-c", [
        ("on", StepVariant(name: "prefetch C on") { GEMMKernel.prefetchesC = true }),
        ("off", StepVariant(name: "prefetch C off") { GEMMKernel.prefetchesC = false }),
    ])
}

/// `--compare-prefetch-y on,off` (forward): the packed inference GEMMs (fp32 and AVX512-BF16)
/// prefetching each tile's rows of y before its product, or not (`PackedMatrix.prefetchesOutput`),
/// alternated in this process. Same bits, different time.
func outputPrefetchVariants(_ options: Options) throws -> [StepVariant] {
    try choiceVariants(options, "--compare-prefetch-y", [
        ("on", StepVariant(name: "prefetch y on") { PackedMatrix.prefetchesOutput = true }),
        ("off", StepVariant(name: "prefetch y off") { PackedMatrix.prefetchesOutput = false }),
    ])
}

/// `--compare-attention-precision bf16,fp32` (forward, bf16 weights): attention's two products in
/// bf16 or in fp32 (`AttentionOp.bf16ProductsEnabled`), alternated in this process. Different bits:
/// the forward mode prints how far the embeddings move.
func attentionPrecisionVariants(_ options: Options) throws -> [StepVariant] {
    try choiceVariants(options, "--compare-attention-precision", [
        ("bf16", StepVariant(name: "attention bf16") { AttentionOp.bf16ProductsEnabled = true }),
        ("fp32", StepVariant(name: "attention fp32") { AttentionOp.bf16ProductsEnabled = false }),
    ])
}

/// `--compare-bf16-forward new,old` (forward, bf16 weights): both of issue 22's third-round changes
/// (output prefetch in the packed GEMMs, attention's products in bf16) against neither (main's
/// arithmetic and timing before them), alternated in this process.
func bf16ForwardVariants(_ options: Options) throws -> [StepVariant] {
    try choiceVariants(options, "--compare-bf16-forward", [
        ("new", StepVariant(name: "bf16 forward new") { (PackedMatrix.prefetchesOutput, AttentionOp.bf16ProductsEnabled) = (true, true) }),
        ("old", StepVariant(name: "bf16 forward old") { (PackedMatrix.prefetchesOutput, AttentionOp.bf16ProductsEnabled) = (false, false) }),
    ])
}

/// `--compare-k-order resident,sweep`: the training GEMM keeping each block of C's rows in cache
/// across K blocks, or sweeping all of C per K block (`GEMMKernel.keepsCAcrossKBlocks`), alternated
/// in this process. Same bits, different time.
func kOrderVariants(_ options: Options) throws -> [StepVariant] {
    try choiceVariants(options, "--compare-k-order", [
        ("resident", StepVariant(name: "C resident over K") { GEMMKernel.keepsCAcrossKBlocks = true }),
        ("sweep", StepVariant(name: "C swept per K block") { GEMMKernel.keepsCAcrossKBlocks = false }),
    ])
}

/// `--compare-gemm-driver new,old`: both driver changes of issue 21's third round together (the C
/// prefetch and C kept across K blocks) against neither (main's driver before them), alternated in
/// this process. Same bits, different time.
func driverVariants(_ options: Options) throws -> [StepVariant] {
    try choiceVariants(options, "--compare-gemm-driver", [
        ("new", StepVariant(name: "driver new") { (GEMMKernel.prefetchesC, GEMMKernel.keepsCAcrossKBlocks) = (true, true) }),
        ("old", StepVariant(name: "driver old") { (GEMMKernel.prefetchesC, GEMMKernel.keepsCAcrossKBlocks) = (false, false) }),
    ])
}

/// What ran this process's arithmetic, for the workers' `ready` lines and bench/compare's report:
/// the CPU, the GEMM path, OpenBLAS's core and whether that core is a fallback.
func engineDescription() -> [String: Any] {
    var info: [String: Any] = ["cpu": CPUFeatures.current.modelName, "cpu_flags": CPUFeatures.current.flags.joined(separator: " "),
                               "gemm": BLAS.path.description, "openblas_core": BLAS.coreName,
                               "packed_inference_gemm": PackedMatrix.isAvailable ? "avx512" : "none (BLAS.gemm)"]
    if let fallback = BLAS.coreFallback { info["openblas_fallback"] = fallback }
    return info
}
