import Checkpoint
import Tensor

/// `train-step --hash-after N`: N steps from the fixed start, then the SHA-256 of every checkpoint
/// tensor (names, shapes and float bits, in order). Two settings that claim the same arithmetic
/// (e.g. `--compare-prefetch-c`'s on and off, or a fused kernel against the passes it replaces) must
/// print the same hash; run the binary once per setting.
func parameterHash(_ parameters: ParameterList) -> String {
    var sha = SHA256()
    for (name, p) in parameters.entries {
        sha.update(Array(name.utf8))
        sha.update(p.value.shape.flatMap { withUnsafeBytes(of: Int64($0).littleEndian, Array.init) })
        p.value.withPointer { sha.update(UnsafeRawBufferPointer(start: $0, count: p.value.count * MemoryLayout<Float>.size)) }
    }
    return SHA256.hex(sha.finish())
}
