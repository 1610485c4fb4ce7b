import CKernels

/// The number format of a served model's Linear weights and GEMM inputs. LayerNorm, softmax, GELU,
/// the patch embedding and the head stay fp32 in either case; with bf16 the blocks' four weight
/// matrices (qkv, proj, fc1, fc2: nearly all of the FLOPs) are rounded to bf16 once, their inputs on
/// every call, attention's two products take bf16 operands too (`AttentionOp.attendBF16`), and
/// products are summed in fp32.
public enum InferencePrecision: String, CaseIterable, Sendable, Codable {
    case fp32, bf16
}

/// The kernel that runs a packed Linear layer's GEMM. Chosen once per process from CPUID
/// (`best(for:)`, the one place that decides), reported by `/v1/models` and the bench.
public enum InferenceKernel: String, Sendable, Codable {
    /// OpenBLAS on the plain weights (CPUs without AVX-512).
    case fp32BLAS = "fp32-blas"
    /// The packed fp32 AVX-512 kernel (gemm.c).
    case fp32AVX512 = "fp32-avx512"
    /// bf16 weights, `vdpbf16ps` dot products (gemm_bf16.c).
    case bf16AVX512 = "bf16-avx512"
    /// bf16 weights on AMX tiles (gemm_amx.c).
    case bf16AMX = "bf16-amx"
    /// The AMX kernel with every tile instruction done in C: exact to it, slow, runs everywhere (tests).
    case bf16AMXModel = "bf16-amx-model"

    public var precision: InferencePrecision {
        switch self {
        case .fp32BLAS, .fp32AVX512: .fp32
        case .bf16AVX512, .bf16AMX, .bf16AMXModel: .bf16
        }
    }

    /// The fastest kernel here for `precision`: AMX, then AVX512-BF16 for bf16; fp32 (packed
    /// AVX-512, then BLAS) when the CPU has no bf16 instructions or fp32 was asked for.
    public static func best(for precision: InferencePrecision) -> InferenceKernel {
        if precision == .bf16 {
            switch ck_bf16_best_kernel() {
            case CK_BF16_AMX: return .bf16AMX
            case CK_BF16_AVX512: return .bf16AVX512
            default: break
            }
        }
        return ck_gemm_available() != 0 ? .fp32AVX512 : .fp32BLAS
    }

    /// Whether this CPU (and OS) runs the kernel.
    public var runsHere: Bool {
        switch self {
        case .fp32BLAS: true
        case .fp32AVX512: ck_gemm_available() != 0
        case .bf16AVX512: ck_bf16_kernel_runs(CK_BF16_AVX512) != 0
        case .bf16AMX: ck_bf16_kernel_runs(CK_BF16_AMX) != 0
        case .bf16AMXModel: true
        }
    }

    var bf16Kernel: ck_bf16_kernel? {
        switch self {
        case .bf16AVX512: CK_BF16_AVX512
        case .bf16AMX: CK_BF16_AMX
        case .bf16AMXModel: CK_BF16_AMX_MODEL
        case .fp32BLAS, .fp32AVX512: nil
        }
    }
}

/// bf16 rounding as the kernels do it (`ck_bf16_round`: nearest, ties to even; NaN stays NaN;
/// subnormals to ±0), for tests and for callers that want to see what the GEMM sees.
public enum BFloat16 {
    public static func round(_ x: Float) -> UInt16 { ck_bf16_round(x) }
    public static func float(_ bits: UInt16) -> Float { ck_bf16_to_float(bits) }
    /// `round` over a buffer with the hardware instruction (vcvtneps2bf16); nil where the CPU has none.
    public static func roundWithHardware(_ x: [Float]) -> [UInt16]? {
        guard InferenceKernel.bf16AVX512.runsHere else { return nil }
        var out = [UInt16](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { ck_bf16_round_hardware(xp.baseAddress!, $0.baseAddress!, x.count) } }
        return out
    }
}
