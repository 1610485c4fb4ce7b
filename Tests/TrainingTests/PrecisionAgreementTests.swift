import Foundation
import Tensor
import ViT
import XCTest
@testable import Training

/// `PrecisionAgreement` (behind `bootmae-train precision-check`) against cosines and predictions the
/// test computes itself from the two encoders' outputs.
final class PrecisionAgreementTests: XCTestCase {
    let config = ViTConfig(imgSize: 8, patchSize: 2, inChans: 3, embedDim: 32, depth: 2, numHeads: 2, mlpRatio: 2,
                           qkvBias: .qv, layerNormEps: 1e-6, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5],
                           labels: ["a", "b", "c"], posEmbed: .sincosBootMAE)
    let data = SyntheticDataset(count: 40)

    /// The same classifier every call (seeded), with a head large enough that predictions differ per image.
    func encoder() throws -> VisionTransformer {
        let model = Classifier(config: config, classes: ["a", "b", "c"])
        try model.initialize(from: nil, seed: 5)
        let head = model.model.head!.weight
        head.value = Tensor(shape: head.shape, data: head.value.data.map { $0 * 1000 })
        return model.model
    }

    /// The whole split as one batch, preprocessed as the measurement does.
    func allImages() throws -> Batch {
        try BatchLoader(dataset: data, batchSize: data.count, shuffle: false, dropLast: false, seed: 0, epoch: 0,
                        channels: 3, imageSize: 8, mean: config.mean, std: config.std, augment: nil, cropPct: 1).next()!
    }

    func testIdenticalModelsAgreeExactly() throws {
        let r = try PrecisionAgreement.measure(reference: try encoder(), candidate: try encoder(), dataset: data, batchSize: 16)
        XCTAssertEqual(r.images, 40)
        XCTAssertEqual(r.cosineMin, 1, accuracy: 1e-12)
        XCTAssertEqual(r.top1Agreement, 1)
        XCTAssertEqual(r.referenceTop1, r.candidateTop1)
        let top1 = try Evaluation.top1(Classifier(wrapping: try encoder(), classes: ["a", "b", "c"]), dataset: data, batchSize: 16, progress: nil)
        XCTAssertEqual(r.referenceTop1!, top1.top1, accuracy: 1e-12)
    }

    /// The bf16 tile kernel's C model (runs on every CPU): the reported statistics are those of the
    /// per-image cosines computed here in Double from one whole-batch forward of each encoder.
    func testBF16StatisticsMatchAnIndependentComputation() throws {
        let reference = try encoder(), candidate = try encoder()
        XCTAssertTrue(candidate.packForInference(releasingPlainValues: false, kernel: .bf16AMXModel))
        let r = try PrecisionAgreement.measure(reference: reference, candidate: candidate, dataset: data, batchSize: 16)

        let batch = try allImages()
        let a = reference.embed(batch.images).data, b = candidate.embed(batch.images).data
        let dim = config.embedDim
        let cosines = (0..<data.count).map { i -> Double in
            let x = a[(i * dim)..<((i + 1) * dim)].map(Double.init), y = b[(i * dim)..<((i + 1) * dim)].map(Double.init)
            let dot = zip(x, y).map(*).reduce(0, +)
            return dot / (x.map { $0 * $0 }.reduce(0, +) * y.map { $0 * $0 }.reduce(0, +)).squareRoot()
        }
        XCTAssertEqual(r.cosineMin, cosines.min()!, accuracy: 1e-9)
        XCTAssertEqual(r.cosineMean, cosines.reduce(0, +) / Double(cosines.count), accuracy: 1e-9)
        XCTAssertEqual(r.worstImage, cosines.firstIndex(of: cosines.min()!))
        // bf16 rounding moves embeddings a little, never a lot (≈ 2⁻⁹ relative per GEMM input).
        XCTAssertLessThan(r.cosineMin, 1 - 1e-9)
        XCTAssertGreaterThan(r.cosineMin, 0.999)
        XCTAssertEqual(r.kernel, "bf16-amx-model")

        let pa = CrossEntropy.argmax(reference.classify(reference.embed(batch.images))!)
        let pb = CrossEntropy.argmax(candidate.classify(candidate.embed(batch.images))!)
        XCTAssertEqual(r.top1Agreement!, Double(zip(pa, pb).filter { $0 == $1 }.count) / 40, accuracy: 1e-12)
        XCTAssertEqual(r.candidateTop1!, Double(zip(pb, batch.labels).filter { $0 == $1 }.count) / 40, accuracy: 1e-12)
    }

    /// A model that predicts differently shows up as disagreement; --limit counts the first images.
    func testDisagreementAndLimit() throws {
        let reference = try encoder(), candidate = try encoder()
        let head = candidate.head!.weight
        head.value = Tensor(shape: head.shape, data: head.value.data.map { -$0 })  // argmax becomes argmin
        let r = try PrecisionAgreement.measure(reference: reference, candidate: candidate, dataset: data, batchSize: 7, limit: 25)
        XCTAssertEqual(r.images, 25)
        XCTAssertLessThan(r.top1Agreement!, 1)
        XCTAssertEqual(r.cosineMin, 1, accuracy: 1e-12, "the head is not part of the embedding")
    }
}
