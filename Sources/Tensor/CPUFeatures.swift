import CKernels

/// What this CPU runs, as `CKernels`' `ck_cpu_features()` reads it once from CPUID (a feature
/// counts when the CPU has it and the OS saves its registers). The one description of the machine
/// that kernel dispatch (`GEMMPath`) and reports (the bench's machine line) share.
public struct CPUFeatures: Sendable {
    /// "AMD EPYC", "Intel(R) Xeon(R) Platinum 8480+"; empty off x86.
    public let modelName: String
    public let vendor: String
    public let family: Int
    public let model: Int
    /// The ISA extensions present, by their usual names (`avx2`, `avx512f`, `amx_bf16`, …), in a fixed order.
    public let flags: [String]

    public static let current = CPUFeatures(ck_cpu_features().pointee)

    init(_ f: ck_cpu_features_t) {
        modelName = Self.string(f.model_name)
        vendor = Self.string(f.vendor)
        (family, model) = (Int(f.family), Int(f.model))
        let named: [(String, Bool)] = [
            ("sse3", f.sse3), ("ssse3", f.ssse3), ("sse4_1", f.sse4_1), ("sse4_2", f.sse4_2),
            ("avx", f.avx), ("avx2", f.avx2), ("fma", f.fma), ("f16c", f.f16c),
            ("avx512f", f.avx512f), ("avx512dq", f.avx512dq), ("avx512bw", f.avx512bw), ("avx512vl", f.avx512vl),
            ("avx512_vnni", f.avx512_vnni), ("avx512_bf16", f.avx512_bf16), ("avx512_fp16", f.avx512_fp16),
            ("avx_vnni", f.avx_vnni), ("amx_tile", f.amx_tile), ("amx_bf16", f.amx_bf16), ("amx_int8", f.amx_int8),
        ]
        flags = named.filter(\.1).map(\.0)
    }

    public func has(_ flag: String) -> Bool { flags.contains(flag) }

    /// One line for logs and reports: "AMD EPYC (family 25, model 17): sse3 … avx512_bf16".
    public var summary: String {
        "\(modelName.isEmpty ? "unknown CPU" : modelName) (family \(family), model \(model)): \(flags.joined(separator: " "))"
    }

    /// A fixed-size C char array (imported as a tuple) up to its NUL.
    private static func string<T>(_ tuple: T) -> String {
        withUnsafeBytes(of: tuple) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
