/// A parameter list that cannot follow another by exponential moving average.
public enum EMAError: Error, Equatable, CustomStringConvertible {
    /// The tensor `name` has a different shape in the two lists.
    case shapeMismatch(name: String, target: [Int], online: [Int])
    /// The tensor `name` holds only its packed inference copy, so it has no values to average.
    case packedOnly(name: String)

    public var description: String {
        switch self {
        case let .shapeMismatch(name, target, online):
            return "EMA: \(name) is \(target) in the averaged list but \(online) in the online one"
        case let .packedOnly(name):
            return "EMA: \(name) was packed for inference only and has no values to average"
        }
    }
}

extension ParameterList {
    /// The momentum (teacher) update θ_t ← m·θ_t + (1 − m)·θ_s for every tensor that `online`
    /// holds under the same name; tensors only one list holds are left alone. Matching by name is
    /// how iBOT builds its teacher (bytedance/ibot main_ibot.py: the EMA runs over the parameters
    /// student and teacher share by name). Every shape is checked before anything changes.
    ///
    /// The arithmetic per element is exactly `e = m * e + (1 - m) * o`, the order BootMAE's
    /// momentum update has always used, so switching it to this keeps runs bit-identical.
    /// Frozen tensors are averaged too (the online copy of a fixed table equals the average's).
    /// Returns how many tensors were updated.
    @discardableResult
    public func updateEMA(from online: ParameterList, decay m: Float) throws(EMAError) -> Int {
        var pairs: [(ema: Parameter, online: Parameter)] = []
        pairs.reserveCapacity(count)
        for (name, ema) in entries {
            guard let source = online[name] else { continue }
            if ema.isPackedOnly || source.isPackedOnly { throw .packedOnly(name: name) }
            guard ema.shape == source.shape else {
                throw .shapeMismatch(name: name, target: ema.shape, online: source.shape)
            }
            pairs.append((ema, source))
        }
        for (ema, source) in pairs where ema !== source {
            let n = ema.value.count
            source.value.withPointer { o in ema.value.withMutablePointer { e in
                for i in 0..<n { e[i] = m * e[i] + (1 - m) * o[i] }
            } }
        }
        return pairs.count
    }
}
