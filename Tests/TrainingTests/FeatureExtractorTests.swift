import Foundation
import Tensor
import ViT
import XCTest
@testable import Training

final class FeatureExtractorTests: XCTestCase {
    private let config = ViTConfig(imgSize: 28, patchSize: 7, inChans: 1, embedDim: 16, depth: 2, numHeads: 2,
                                   mean: [0.5], std: [0.5], posEmbed: .sincosBootMAE)

    /// A random encoder; the LayerNorm weights are drawn too, so the final norm matters.
    private func model(parts: VisionTransformer.Parts = .init()) -> VisionTransformer {
        let m = VisionTransformer(config: config, parts: parts)
        var rng = SeededRandom(seed: 21)
        WeightInit.initialize(m, style: .mae, rng: &rng)
        for (name, p) in m.parameters.entries where name.contains("norm") {
            for i in 0..<p.value.count { p.value.data[i] = (name.hasSuffix(".weight") ? 1 : 0) + 0.3 * rng.normal() }
        }
        return m
    }

    /// One image through the eval transform, as a (1, 1, 28, 28) tensor.
    private func input(_ data: any ImageDataset, _ index: Int) throws -> Tensor {
        let transform = SampleTransform(channels: 1, imageSize: 28, mean: [0.5], std: [0.5], augment: nil)
        var rng = SeededRandom(seed: 0)
        return Tensor(shape: [1, 1, 28, 28], data: transform.apply(try data.image(at: index), using: &rng))
    }

    private func assertClose(_ a: ArraySlice<Float>, _ b: [Float], _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, message, file: file, line: line)
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThan(worst, 1e-4, message, file: file, line: line)
    }

    func testPooledFeaturesMatchTheModelsEmbedding() throws {
        let data = try Datasets.open(datasetFixtures + "/idx-gz", split: .train)
        let encoder = model()
        for pooling in [ViTConfig.Pooling.cls, .mean] {
            // Batches of 8 over 20 images: two full batches and a partial one.
            let set = try FeatureExtractor(model: encoder, source: .pooled(pooling), batchSize: 8, workers: 1).extract(data)
            XCTAssertEqual(set.count, 20)
            XCTAssertEqual(set.dim, 16)
            XCTAssertEqual(set.features.count, 20 * 16)
            XCTAssertEqual(set.labels, (0..<20).map { 3 * $0 % 10 })
            XCTAssertEqual(set.indices, Array(0..<20))
            XCTAssertEqual(set.classes.count, 10)
            XCTAssertEqual(set.source, .pooled(pooling))
            XCTAssertEqual(set.layer, 2)
            XCTAssertEqual(set.skipped, 0)
            for i in [0, 9, 19] {
                let expected = encoder.embed(try input(data, i), pooling: pooling).data
                assertClose(set.features[(i * 16)..<((i + 1) * 16)], expected, "\(pooling) image \(i)")
            }
        }
        // A fine-tuned layout (no final norm, fc_norm): mean pooling goes through fc_norm.
        let tuned = model(parts: .init(norm: false, fcNorm: true, headClasses: 3))
        let set = try FeatureExtractor(model: tuned, source: .pooled(.mean), batchSize: 8, workers: 1).extract(data)
        let tokens = tuned.forward(try input(data, 4)).0
        let expected = try XCTUnwrap(tuned.fcNorm).forward(TokenOps.mean(tokens, from: 1)).0.data
        assertClose(set.features[(4 * 16)..<(5 * 16)], expected, "fc_norm(mean)")
    }

    /// Block features by hand: tokens after block 1, mean over the patch tokens, LayerNorm (1, 0, eps 1e-6).
    func testIntermediateBlockFeaturesByHand() throws {
        let data = try Datasets.open(datasetFixtures + "/idx-gz", split: .test)
        let encoder = model()
        for blocks in [1, 2] {
            let set = try FeatureExtractor(model: encoder, source: .block(blocks), batchSize: 4).extract(data)
            XCTAssertEqual(set.count, 6)
            XCTAssertEqual(set.dim, 16)
            XCTAssertEqual(set.labels, (100..<106).map { 3 * $0 % 10 })
            XCTAssertEqual(set.layer, blocks)
            for i in [0, 5] {
                let tokens = encoder.intermediateTokens(try input(data, i), blocks: blocks)
                XCTAssertEqual(tokens.shape, [1, 17, 16])
                var mean = [Double](repeating: 0, count: 16)
                for t in 1..<17 { for j in 0..<16 { mean[j] += Double(tokens.data[t * 16 + j]) / 16 } }
                let mu = mean.reduce(0, +) / 16
                let variance = mean.reduce(0) { $0 + ($1 - mu) * ($1 - mu) } / 16
                let expected = mean.map { Float(($0 - mu) / (variance + 1e-6).squareRoot()) }
                assertClose(set.features[(i * 16)..<((i + 1) * 16)], expected, "block \(blocks) image \(i)")
            }
        }
        // The final block's output differs from the pooled (normed) features.
        let pooled = try FeatureExtractor(model: encoder, source: .pooled(.mean)).extract(data)
        let block2 = try FeatureExtractor(model: encoder, source: .block(2)).extract(data)
        XCTAssertNotEqual(pooled.features, block2.features)
    }

    /// `pixels` features are the eval transform's output itself, and centring subtracts the train mean:
    /// by hand on the first images of the fixture, and the centred train mean is zero.
    func testPixelFeaturesAreTheNormalizedInputAndCentringRemovesTheMean() throws {
        let data = try Datasets.open(datasetFixtures + "/idx-gz", split: .train)
        let set = try FeatureExtractor(model: model(), source: .pixels, batchSize: 8, workers: 1).extract(data)
        XCTAssertEqual(set.dim, 784)
        XCTAssertEqual(set.layer, 0)
        for i in [0, 9, 19] {
            XCTAssertEqual(Array(set.features[(i * 784)..<((i + 1) * 784)]), try input(data, i).data, "image \(i)")
        }
        var expected = [Double](repeating: 0, count: 784)
        for i in 0..<set.count { for j in 0..<784 { expected[j] += Double(set.features[i * 784 + j]) / Double(set.count) } }
        let mean = set.mean
        XCTAssertLessThan(zip(mean, expected).map { abs(Double($0) - $1) }.max()!, 1e-6)
        let centred = set.centred(on: mean)
        XCTAssertLessThan(centred.mean.map { abs($0) }.max()!, 1e-5)
        XCTAssertEqual(centred.features[5] + mean[5], set.features[5], accuracy: 1e-6)
    }

    func testSourcesParseAndBadBlocksAreRejected() throws {
        XCTAssertEqual(FeatureSource("pixels"), .pixels)
        XCTAssertEqual(FeatureSource.pixels.description, "pixels")
        XCTAssertEqual(FeatureSource("cls"), .pooled(.cls))
        XCTAssertEqual(FeatureSource("mean"), .pooled(.mean))
        XCTAssertEqual(FeatureSource("block:10"), .block(10))
        XCTAssertEqual(FeatureSource("block3"), .block(3))
        XCTAssertNil(FeatureSource("block:0"))
        XCTAssertNil(FeatureSource("avg"))
        XCTAssertEqual(FeatureSource.block(10).description, "block:10")
        let json = try JSONEncoder().encode([FeatureSource.block(4), .pooled(.cls)])
        XCTAssertEqual(String(decoding: json, as: UTF8.self), #"["block:4","cls"]"#)
        XCTAssertEqual(try JSONDecoder().decode([FeatureSource].self, from: json), [.block(4), .pooled(.cls)])
        XCTAssertThrowsError(try FeatureExtractor(model: model(), source: .block(3))) { error in
            XCTAssertTrue("\(error)".contains("1...2"), "\(error)")
        }
    }

    /// Extracted features feed both evaluations end to end.
    func testEvaluationsRunOnExtractedFeatures() throws {
        let encoder = model()
        let extractor = try FeatureExtractor(model: encoder, source: .block(1), batchSize: 16)
        let train = try extractor.extract(datasetAt: datasetFixtures + "/idx-gz", split: .train)
        let test = try extractor.extract(datasetAt: datasetFixtures + "/idx-gz", split: .test)
        let knn = try KNNClassifier(k: 5).evaluate(train: train, test: test)
        XCTAssertEqual(knn.featureSource, "block:1")
        XCTAssertEqual(knn.layer, 1)
        XCTAssertEqual(knn.testCount, 6)
        XCTAssertEqual(knn.classes, 10)
        let probe = try LinearProbe(.init(epochs: 3, batchSize: 8)).fit(train: train, test: test)
        XCTAssertEqual(probe.result.featureSource, "block:1")
        XCTAssertEqual(probe.result.epochLosses.count, 3)
        XCTAssertEqual(probe.model.weight.shape, [10, 16])
    }
}
