/// `X-Request-Id`: a client's id is echoed only when short and plain, so it is safe in logs and headers.
enum RequestID {
    static let maxLength = 128

    static func sanitized(_ value: String?) -> String? {
        guard let value, (1...maxLength).contains(value.utf8.count),
              value.utf8.allSatisfy(isAllowed) else { return nil }
        return value
    }

    @inline(__always) static func isAllowed(_ b: UInt8) -> Bool {
        switch b {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
             UInt8(ascii: ":"): true
        default: false
        }
    }

    /// 32 hex digits from a per-queue generator (unique, not secret).
    static func generate(_ rng: inout SplitMix64) -> String {
        let digits = Array("0123456789abcdef".utf8)
        return String(unsafeUninitializedCapacity: 32) { out in
            for half in 0..<2 {
                var x = rng.next()
                for i in 0..<16 {
                    out[half * 16 + 15 - i] = digits[Int(x & 15)]
                    x >>= 4
                }
            }
            return 32
        }
    }
}

struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
