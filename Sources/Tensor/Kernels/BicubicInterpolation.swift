/// PyTorch's `F.interpolate(x, scale_factor: s, mode: "bicubic", align_corners: False)` on a
/// channels-last grid (H, W, C), forward and backward (ATen UpSample.h, UpSampleBicubic2d.cpp):
///   - the output has ⌊in · s⌋ entries per axis;
///   - output i reads the source coordinate x = (i + 0.5) / s − 0.5, with 1 / s itself (not in / out)
///     as the step: a scale factor given without `recompute_scale_factor` is used as given
///     (PyTorch ≥ 1.6; checked against torch 2.13 by tools/reference/make_ibot_fixtures.py);
///   - x is not clamped at 0 (cubic); i₀ = min(⌊x⌋, in − 1), t = clamp(x − i₀, 0, 1);
///   - taps i₀ − 1 … i₀ + 2, each clamped into 0..<in (the border repeats), with Keys' cubic
///     convolution weights for a = −0.75.
/// The arithmetic is float32 as ATen's (`1.0 / s` in double, then rounded).
public enum BicubicInterpolation {
    /// The cubic convolution parameter PyTorch uses (OpenCV's; Pillow uses −0.5).
    public static let a: Float = -0.75

    /// One axis: which 4 source entries each output reads, and with which weights.
    public struct Axis: Sendable, Equatable {
        public let inputSize: Int
        public let outputSize: Int
        /// 4 per output, already clamped into 0..<inputSize.
        public let taps: [Int]
        public let weights: [Float]

        public init(inputSize: Int, scaleFactor: Double) {
            precondition(inputSize > 0 && scaleFactor > 0, "bicubic interpolation: input \(inputSize), scale factor \(scaleFactor)")
            self.inputSize = inputSize
            outputSize = Int(Double(inputSize) * scaleFactor)
            precondition(outputSize > 0, "bicubic interpolation: scale factor \(scaleFactor) leaves no output of \(inputSize)")
            let step = Float(1.0 / scaleFactor)
            var taps: [Int] = [], weights: [Float] = []
            for i in 0..<outputSize {
                let x = step * (Float(i) + 0.5) - 0.5
                let i0 = min(Int(x.rounded(.down)), inputSize - 1)
                let t = min(max(x - Float(i0), 0), 1)
                weights += BicubicInterpolation.weights(t)
                taps += (-1...2).map { min(max(i0 + $0, 0), inputSize - 1) }
            }
            self.taps = taps
            self.weights = weights
        }
    }

    /// Keys' weights of the taps at distances 1 + t, t, 1 − t, 2 − t (ATen `get_cubic_upsample_coefficients`).
    static func weights(_ t: Float) -> [Float] {
        func near(_ x: Float) -> Float { ((a + 2) * x - (a + 3)) * x * x + 1 }            // |x| ≤ 1
        func far(_ x: Float) -> Float { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }       // 1 < |x| < 2
        return [far(t + 1), near(t), near(1 - t), far(2 - t)]
    }

    /// Calls `body(output pixel, input pixel, weight)` for the 16 taps of every output pixel, pixels
    /// numbered row-major: the one enumeration the forward and its adjoint share.
    @inline(__always)
    static func forEachTap(rows: Axis, columns: Axis, _ body: (_ output: Int, _ input: Int, _ weight: Float) -> Void) {
        for y in 0..<rows.outputSize { for x in 0..<columns.outputSize {
            for j in 0..<4 { for i in 0..<4 {
                body(y * columns.outputSize + x, rows.taps[4 * y + j] * columns.inputSize + columns.taps[4 * x + i],
                     rows.weights[4 * y + j] * columns.weights[4 * x + i])
            } }
        } }
    }

    /// (H, W, C) → (H', W', C): out[y, x] = Σⱼ Σᵢ wyⱼ · wxᵢ · in[tapyⱼ, tapxᵢ].
    public static func forward(_ input: Tensor, rows: Axis, columns: Axis) -> Tensor {
        let c = input.lastDim
        precondition(input.count == rows.inputSize * columns.inputSize * c, "bicubic interpolation: \(input.shape) is not "
                     + "\(rows.inputSize)×\(columns.inputSize)×C")
        var output = Tensor(zeros: [rows.outputSize, columns.outputSize, c])
        output.withMutablePointer { out in
            input.withPointer { src in
                forEachTap(rows: rows, columns: columns) { o, i, w in
                    for k in 0..<c { out[o * c + k] += w * src[i * c + k] }
                }
            }
        }
        return output
    }

    /// The adjoint: d output (H', W', C) → d input (H, W, C), each output's gradient spread over
    /// its 16 taps with the forward's weights (a clamped tap collects several).
    public static func backward(_ dOutput: Tensor, rows: Axis, columns: Axis) -> Tensor {
        let c = dOutput.lastDim
        precondition(dOutput.count == rows.outputSize * columns.outputSize * c, "bicubic interpolation backward: \(dOutput.shape) "
                     + "is not \(rows.outputSize)×\(columns.outputSize)×C")
        var dInput = Tensor(zeros: [rows.inputSize, columns.inputSize, c])
        dInput.withMutablePointer { out in
            dOutput.withPointer { g in
                forEachTap(rows: rows, columns: columns) { o, i, w in
                    for k in 0..<c { out[i * c + k] += w * g[o * c + k] }
                }
            }
        }
        return dInput
    }
}
