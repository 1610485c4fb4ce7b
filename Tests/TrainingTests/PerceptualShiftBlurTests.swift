import XCTest
import Foundation
import Tensor
import ViT
import Checkpoint
import Training
import Objectives
import TestSupport

/// PeCo's motivating check (its Fig. 1; seeds §3.5 check 4): for Fashion-MNIST test images
/// shifted by one pixel and blurred to the same pixel MSE (pixel MSE cannot tell them apart, by
/// construction), the perceptual loss ranks the shift as closer. Run with both shipped
/// self-supervised encoders as the perceptual network, each in the configuration a tokenizer
/// trained with `--perceptual-model` that encoder uses.
final class PerceptualShiftBlurTests: TrainingTestCase {
    static let models = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("models")
    static let count = 32

    /// The iBOT teacher: the perceptual network the PeCo tokenizer of docs/RESULTS.md trained with.
    func testIBOTTeacherRanksTheShiftCloser() throws {
        try check("ibot-vit-tiny-fmnist")
    }

    func testBootMAEEncoderRanksTheShiftCloser() throws {
        try check("bootmae-vit-tiny-fmnist")
    }

    /// The bound is every one of the 32 images, what both networks measure (printed, with the blur's
    /// distance over the shift's at its smallest and median: BootMAE 1.05 and 1.99, iBOT 1.14 and
    /// 1.45 on the EPYC, the same with OpenBLAS's Prescott fallback kernels). The closest call is
    /// 5% from a tie, far beyond the float32 rounding by which another BLAS kernel moves a distance;
    /// and it is the number the docs quote, which a majority bound (> 16, what the claim needs at
    /// the least) would let fall silently. An indifferent loss gives 32 of 32 with probability 2⁻³².
    func check(_ model: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (loss, normalization) = try tokenizerPerceptualLoss(Self.models.appendingPathComponent(model))
        XCTAssertEqual(loss.layers, [1, 3, 5], "the default taps of a depth-6 network (the PeCo tokenizer run's config names none)",
                       file: file, line: line)
        let (original, shifted, blurred) = try shiftAndBlur(count: Self.count, mean: normalization.mean, std: normalization.std)
        let ratios = zip(loss.distances(blurred, original), loss.distances(shifted, original)).map { $0 / $1 }.sorted()
        let closer = ratios.filter { $0 > 1 }.count
        print(String(format: "\(model) (blocks \(loss.layers)): shift closer than an equal-MSE blur for \(closer) of \(Self.count) images; "
                     + "blur/shift perceptual distance min %.2f, median %.2f", ratios[0], ratios[ratios.count / 2]))
        XCTAssertEqual(closer, Self.count, "\(model): the shift is not closer for every image", file: file, line: line)
    }

    /// The perceptual loss `bootmae-train pretrain --objective peco-tokenizer --preset tiny
    /// --perceptual-model DIR` trains with (its default blocks, the tokenizer's input
    /// normalization), built by the same calls, with the network's weights loaded as `initialize` does.
    func tokenizerPerceptualLoss(_ dir: URL) throws -> (PerceptualLoss, normalization: (mean: Float, std: Float)) {
        let flags = try ObjectiveFlagValues(parsing: ["--perceptual-model", dir.path], declared: PeCoTokenizer.flags,
                                            objective: PeCoTokenizer.name)
        let config = try ModelPreset.tiny.pretrainingConfig(PeCoTokenizer.self, channels: 1, maskRatio: 0, flags: flags)
        let tokenizer = PeCoTokenizer(encoder: config.encoder, settings: try XCTUnwrap(config.settings(of: PeCoTokenizer.self)))
        let loss = try XCTUnwrap(tokenizer.perceptual)
        try PeCoTokenizer.loadPerceptual(loss, from: dir)
        return (loss, (config.encoder.mean[0], config.encoder.std[0]))
    }

    /// `count` test images (every 311th), each shifted one pixel to the right (the new left column
    /// is background) and blurred by a 3×3 binomial kernel (edges replicated) whose change is
    /// scaled to the shift's pixel MSE; all normalized with `mean` / `std`.
    func shiftAndBlur(count: Int, mean: Float, std: Float) throws -> (original: Tensor, shifted: Tensor, blurred: Tensor) {
        let data = try Datasets.open(Self.fashionMNIST, split: .test)
        let side = 28
        var original = [Float](), shifted = [Float](), blurred = [Float]()
        for i in 0..<count {
            let pixels = try data.image(at: i * 311).pixels.map { (Float($0) / 255 - mean) / std }
            let background = (0 - mean) / std
            let shift = (0..<(side * side)).map { k in k % side == 0 ? background : pixels[k - 1] }
            func at(_ r: Int, _ c: Int) -> Float { pixels[min(max(r, 0), side - 1) * side + min(max(c, 0), side - 1)] }
            let weights: [Float] = [1, 2, 1]
            let blur = (0..<(side * side)).map { k -> Float in
                let (r, c) = (k / side, k % side)
                var sum: Float = 0
                for dr in -1...1 { for dc in -1...1 { sum += weights[dr + 1] * weights[dc + 1] * at(r + dr, c + dc) } }
                return sum / 16
            }
            let shiftMSE = zip(shift, pixels).map { ($0 - $1) * ($0 - $1) }.reduce(0, +)
            let blurMSE = zip(blur, pixels).map { ($0 - $1) * ($0 - $1) }.reduce(0, +)
            let scale = (shiftMSE / blurMSE).squareRoot()
            original += pixels
            shifted += shift
            blurred += zip(pixels, blur).map { $0 + scale * ($1 - $0) }
        }
        let shape = [count, 1, side, side]
        return (Tensor(shape: shape, data: original), Tensor(shape: shape, data: shifted), Tensor(shape: shape, data: blurred))
    }
}
