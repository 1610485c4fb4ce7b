/// Per-output filter taps for resizing one axis with Pillow's BICUBIC filter.
///
/// Pillow's algorithm: output pixel i is centred at input coordinate (i + 0.5) * scale. When
/// downscaling, the cubic kernel is stretched by the scale factor (support 2 * scale) so every input
/// pixel contributes (antialiasing); when upscaling the support stays 2. Taps outside the image are
/// dropped and the remaining weights renormalised to sum to 1, then stored in fixed point.
struct BicubicWeights {
    /// 32 bits minus 8 for the pixel value minus 2 of headroom for kernel overshoot.
    static let precisionBits: Int32 = 22

    /// First input index read by each output.
    let first: [Int]
    /// Number of inputs read by each output.
    let count: [Int]
    /// Distance between consecutive outputs' taps in `coefficients`.
    let stride: Int
    /// Fixed-point weights, `stride` per output, `count[i]` of them used.
    let coefficients: [Int32]

    /// Weights for the outputs in `outputs` (a sub-range of 0..<outputSize) only.
    init(inputSize: Int, outputSize: Int, outputs: Range<Int>) {
        precondition(inputSize > 0 && outputSize > 0)
        if inputSize == outputSize {  // a single weight of 1: an exact copy
            first = Array(outputs)
            count = Array(repeating: 1, count: outputs.count)
            stride = 1
            coefficients = Array(repeating: 1 << BicubicWeights.precisionBits, count: outputs.count)
            return
        }
        let scale = Double(inputSize) / Double(outputSize)
        let filterScale = max(scale, 1)
        let support = 2 * filterScale
        let inverseFilterScale = 1 / filterScale
        let stride = Int(support.rounded(.up)) * 2 + 1
        let one = Double(1 << BicubicWeights.precisionBits)

        var first = [Int](), count = [Int]()
        first.reserveCapacity(outputs.count)
        count.reserveCapacity(outputs.count)
        var coefficients = [Int32](repeating: 0, count: outputs.count * stride)
        var weights = [Double](repeating: 0, count: stride)
        for (n, i) in outputs.enumerated() {
            let center = (Double(i) + 0.5) * scale
            let lo = max(Int(center - support + 0.5), 0)           // Int() truncates, like a C cast
            let hi = min(Int(center + support + 0.5), inputSize)
            var sum = 0.0
            for j in 0..<(hi - lo) {
                weights[j] = BicubicWeights.cubic((Double(lo + j) - center + 0.5) * inverseFilterScale)
                sum += weights[j]
            }
            for j in 0..<(hi - lo) {
                let w = sum != 0 ? weights[j] / sum : weights[j]
                // Round half away from zero, then truncate.
                coefficients[n * stride + j] = Int32(w < 0 ? w * one - 0.5 : w * one + 0.5)
            }
            first.append(lo)
            count.append(hi - lo)
        }
        self.first = first
        self.count = count
        self.stride = stride
        self.coefficients = coefficients
    }

    /// Keys' cubic convolution kernel with a = -0.5 (Pillow's BICUBIC), support [-2, 2].
    @inline(__always)
    private static func cubic(_ t: Double) -> Double {
        let a = -0.5
        let x = abs(t)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }

    /// Fixed-point sum back to a byte: drop the fraction bits (the sum started at +0.5), clamp.
    @inline(__always)
    static func clampToByte(_ sum: Int32) -> UInt8 {
        let value = sum >> precisionBits
        return value < 0 ? 0 : value > 255 ? 255 : UInt8(truncatingIfNeeded: value)
    }

    /// The fixed-point 0.5 every sum starts from, so the final shift rounds.
    static let half: Int32 = 1 << (precisionBits - 1)
}
