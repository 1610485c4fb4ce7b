import Tensor

// What the ranks of a distributed job share once, before the first step: rank 0 holds the run
// (fresh weights, or the checkpoint it read) and every other rank takes its state, so only rank 0
// needs the run folder and the other ranks start bit for bit where it does.

extension Collective {
    /// Rank 0's values of every tensor in `parameters` on every rank.
    func shareValues(_ parameters: ParameterList) {
        guard isDistributed else { return }
        for (_, p) in parameters.entries {
            let count = p.value.count
            p.value.withMutablePointer { broadcast(UnsafeMutableBufferPointer(start: $0, count: count)) }
        }
    }

    /// Rank 0's integer on every rank.
    func share(_ value: Int) -> Int {
        guard isDistributed else { return value }
        var v = [Int64(value)]
        v.withUnsafeMutableBytes { broadcast($0, from: 0) }
        return Int(v[0])
    }

    /// Rank 0's double on every rank.
    func share(_ value: Double) -> Double {
        guard isDistributed else { return value }
        var v = [value]
        v.withUnsafeMutableBytes { broadcast($0, from: 0) }
        return v[0]
    }
}

extension AdamW {
    /// Rank 0's step count and moments on every rank.
    mutating func share(over collective: any Collective) {
        guard collective.isDistributed else { return }
        steps = collective.share(steps)
        for k in m.indices {
            m[k].withUnsafeMutableBufferPointer { collective.broadcast($0) }
            v[k].withUnsafeMutableBufferPointer { collective.broadcast($0) }
        }
    }
}
