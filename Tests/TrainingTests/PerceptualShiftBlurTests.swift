import XCTest
import Foundation
import Tensor
import ViT
import Checkpoint
import Training
import Objectives
import TestSupport

/// PeCo's motivating check (its Fig. 1; seeds §3.5 check 4) with the shipped BootMAE encoder as the
/// perceptual network: for Fashion-MNIST test images shifted by one pixel and blurred to the same
/// pixel MSE, the perceptual loss ranks the shift as closer more often than not (pixel MSE cannot
/// tell them apart, by construction).
final class PerceptualShiftBlurTests: TrainingTestCase {
    func testShiftIsCloserThanBlurOfTheSameMSE() throws {
        let model = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("models/bootmae-vit-tiny-fmnist")
        let network = try ModelDirectory.loadEncoder(model)
        let loss = PerceptualLoss(network: network, layers: PerceptualLoss.defaultLayers(depth: network.config.depth),
                                  inputMean: network.config.mean, inputStd: network.config.std)
        let data = try Datasets.open(Self.fashionMNIST, split: .test)
        let (count, side) = (32, 28)
        let mean = network.config.mean[0], std = network.config.std[0]
        var original = [Float](), shifted = [Float](), blurred = [Float]()
        for i in 0..<count {
            let pixels = try data.image(at: i * 311).pixels.map { (Float($0) / 255 - mean) / std }
            let background = (0 - mean) / std
            // One pixel to the right; the new left column is background.
            let shift = (0..<(side * side)).map { k in k % side == 0 ? background : pixels[k - 1] }
            // A 3×3 binomial blur (edges replicated), its change scaled to the shift's pixel MSE.
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
        let (x, xs, xb) = (Tensor(shape: shape, data: original), Tensor(shape: shape, data: shifted), Tensor(shape: shape, data: blurred))
        let shiftCloser = zip(loss.distances(xs, x), loss.distances(xb, x)).filter { $0 < $1 }.count
        print("shift closer than an equal-MSE blur for \(shiftCloser) of \(count) images")
        XCTAssertGreaterThan(shiftCloser, count / 2)
    }
}
