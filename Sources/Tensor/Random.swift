import Foundation

/// A small, fast, seedable generator (xoshiro256**, seeded through SplitMix64) with the
/// distributions initialisation and masking need. Its state is four words, easy to checkpoint.
public struct SeededRandom: RandomNumberGenerator, Sendable, Codable, Equatable {
    public var state: [UInt64]

    public init(seed: UInt64) {
        var s = seed
        func splitMix() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = [splitMix(), splitMix(), splitMix(), splitMix()]
    }

    /// An independent stream for (seed, stream): e.g. the masks of training step `stream`, so a
    /// resumed run draws exactly what an uninterrupted one would without saving generator state.
    public init(seed: UInt64, stream: UInt64) {
        self.init(seed: seed ^ (stream &* 0x9E37_79B9_7F4A_7C15 &+ 0x2545_F491_4F6C_DD1D))
    }

    public mutating func next() -> UInt64 {
        @inline(__always) func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
        let result = rotl(state[1] &* 5, 7) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]; state[3] ^= state[1]; state[1] ^= state[2]; state[0] ^= state[3]
        state[2] ^= t
        state[3] = rotl(state[3], 45)
        return result
    }

    /// Uniform in [0, 1) with 24 bits of precision.
    public mutating func uniform() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// Standard normal (Box–Muller).
    public mutating func normal() -> Float {
        let u1 = Double(next() >> 11) * 0x1p-53, u2 = Double(next() >> 11) * 0x1p-53
        return Float((-2 * log(max(u1, 1e-300))).squareRoot() * cos(2 * Double.pi * u2))
    }

    /// Normal(0, std²) truncated to [lo, hi] by rejection.
    public mutating func truncatedNormal(std: Float, lo: Float, hi: Float) -> Float {
        while true {
            let v = normal() * std
            if v >= lo && v <= hi { return v }
        }
    }
}
