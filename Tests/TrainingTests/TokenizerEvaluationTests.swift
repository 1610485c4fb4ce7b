import ImageKit
import Objectives
import Tensor
import ViT
import XCTest
@testable import Training

/// `tokenizer-eval`'s numbers on a tokenizer whose codes and decodings are known in closed form:
/// uniform gray images of three levels, one code per level for every patch, a decoder that always
/// answers mid-gray.
final class TokenizerEvaluationTests: XCTestCase {
    let config = ViTConfig(imgSize: 8, patchSize: 2, inChans: 1, embedDim: 16, depth: 1, numHeads: 2, mlpRatio: 2,
                           qkvBias: .qv, layerNormEps: 1e-6, mean: [0.5], std: [0.5], posEmbed: .sincosBootMAE)
    static let levels: [UInt8] = [0, 100, 200]

    /// Image i is uniform at level i mod 3, labelled i mod 3.
    struct Levels: ImageDataset {
        let count: Int
        let channels = 1
        var classes: [String] { ["black", "gray", "light"] }
        func label(at index: Int) -> Int? { index % 3 }
        func image(at index: Int) throws -> Image {
            Image(width: 8, height: 8, channels: 1, pixels: [UInt8](repeating: TokenizerEvaluationTests.levels[index % 3], count: 64))
        }
        func sampleName(at index: Int) -> String { "levels/\(index)" }
    }

    /// Code = the patch's level (0, 1, 2; code 3 never used); decodes to 0.5 in [0, 1] pixels (0 normalized).
    struct LevelTokenizer: ImageTokenizing {
        var codebookSize: Int { 4 }
        func codes(_ images: Tensor) -> [[Int]] {
            (0..<images.shape[0]).map { b in
                (0..<16).map { patch in
                    let (py, px) = (patch / 4, patch % 4)
                    let pixel = images.data[b * 64 + py * 2 * 8 + px * 2] * 0.5 + 0.5
                    return Int((pixel * 255 / 100).rounded())
                }
            }
        }
        func decode(_ codes: [[Int]]) -> Tensor { Tensor(zeros: [codes.count, 1, 8, 8]) }
    }

    func testMeasurementsAreTheClosedForms() throws {
        var evaluator = TokenizerEvaluator(tokenizer: LevelTokenizer(), config: config)
        evaluator.batchSize = 4   // 9 images: two whole batches and one of one
        let m = try evaluator.measure(Levels(count: 9), decode: true, label: "test")
        XCTAssertEqual(m.images, 9)
        XCTAssertEqual(m.usage, [48, 48, 48, 0])
        XCTAssertEqual(m.perplexity, 3, accuracy: 1e-12, "three codes used equally: exp(ln 3)")
        XCTAssertEqual(m.unusedShare, 0.25)
        let mse = Self.levels.map { pow(Double($0) / 255 - 0.5, 2) }.reduce(0, +) / 3
        XCTAssertEqual(m.squaredErrorSum / 9, mse, accuracy: 1e-6)
        XCTAssertEqual(m.psnr, 10 * log10(1 / mse), accuracy: 1e-4)
        // Histograms: each image's patches all have its level's code.
        XCTAssertEqual(m.histograms.dim, 4)
        XCTAssertEqual(m.histograms.labels, (0..<9).map { $0 % 3 })
        for i in 0..<9 {
            XCTAssertEqual(Array(m.histograms.features[(i * 4)..<(i * 4 + 4)]), (0..<4).map { $0 == i % 3 ? 1 : 0 }, "image \(i)")
        }
        // Without decoding, no error is measured.
        XCTAssertEqual(try evaluator.measure(Levels(count: 3), decode: false, label: "train").squaredErrorSum, 0)
        let result = TokenizerEvaluationResult(codebookSize: 4, test: m, probe: nil)
        XCTAssertEqual(result.mse, mse, accuracy: 1e-6)
        XCTAssertEqual(result.testImages, 9)
    }
}
