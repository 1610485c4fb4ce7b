import XCTest
import Tensor
import ViT
import Objectives

/// A data-parallel step must give the whole batch's losses and gradients: the same masks, the
/// losses averaged over the whole batch, the shards' gradients summed.
final class DataParallelStepTests: XCTestCase {
    let encoder = ViTConfig(imgSize: 8, patchSize: 2, inChans: 1, embedDim: 16, depth: 2, numHeads: 2, mlpRatio: 2,
                            qkvBias: .qv, layerNormEps: 1e-6, globalPool: .cls, mean: [0.5], std: [0.5])

    /// The first step of a one-epoch run: BootMAE's λ is its full weight there.
    let clock = TrainingClock(step: 0, stepsPerEpoch: 10, epochs: 1)

    func compare(_ config: PretrainingConfig, options: any ObjectiveOptions, batch: Int, shards: Int, views: Int = 1) {
        let single = PretrainingNetwork(config: config), sharded = PretrainingNetwork(config: config)
        single.initialize(seed: 4)
        sharded.initialize(seed: 4)
        var rng = SeededRandom(seed: 8)
        let images = PretrainingBatch(groups: [.init(views: views, images: Tensor(shape: [views * batch, 1, 8, 8],
                                                                                  data: (0..<(views * batch * 64)).map { _ in rng.normal() }))])

        let savedWorkers = Parallel.workers
        Parallel.workers = 2
        defer { Parallel.workers = savedWorkers }
        var r1 = SeededRandom(seed: 1), r2 = SeededRandom(seed: 1)
        single.parameters.zeroGrads()
        let expected = single.trainStep(images, rng: &r1, options: options, clock: clock)
        let step = DataParallelStep(network: sharded, shards: shards)
        for _ in 0..<2 {  // twice: replica gradients must start from zero again
            sharded.parameters.zeroGrads()
            r2 = SeededRandom(seed: 1)
            let got = step.trainStep(images, rng: &r2, options: options, clock: clock)
            XCTAssertEqual(got.losses.map(\.name), expected.losses.map(\.name))
            for (a, b) in zip(got.losses, expected.losses) {
                XCTAssertEqual(a.value, b.value, accuracy: 1e-5 * max(1, abs(b.value)), a.name)
            }
            XCTAssertEqual(got.schedule, expected.schedule)
            for (a, b) in zip(got.sums, expected.sums) {
                XCTAssertEqual(a.name, b.name)
                for (x, y) in zip(a.values, b.values) { XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(y)), a.name) }
            }
            for ((name, a), (_, b)) in zip(single.parameters.entries, sharded.parameters.entries) where a.trainable {
                let scale = a.grad.data.map { abs($0) }.max() ?? 0
                for i in 0..<a.grad.count {
                    XCTAssertEqual(b.grad.data[i], a.grad.data[i], accuracy: 1e-5 * max(scale, 1e-3), "\(name)[\(i)]")
                }
            }
        }
        XCTAssertEqual(r1.next(), r2.next(), "both steps must draw the same masks from the generator")
    }

    func testBootMAEShardsMatchTheWholeBatch() {
        let config = PretrainingConfig(BootMAE.self, encoder: encoder, settings: .init(decoderEmbedDim: 8, decoderDepth: 1,
                                       featureDecoderDepth: 1, featureLayers: [0, 1], numMask: 10))
        let options = BootMAE.Options(masking: .block, ema: EMASchedule(rampEpochs: 0), featureWeight: 0.5, weightMask: true)
        compare(config, options: options, batch: 5, shards: 2)
        compare(config, options: options, batch: 6, shards: 3)
    }

    /// Two global crops per image: shards take every view of their images.
    func testIBOTShardsMatchTheWholeBatch() {
        var ibotEncoder = encoder
        ibotEncoder.qkvBias = .qkv
        let config = PretrainingConfig(IBOT.self, encoder: ibotEncoder, settings: .init(outDim: 16, headHidden: 12, headBottleneck: 8))
        var options = IBOT.Options(warmupTeacherTempEpochs: 1)
        options.predRatio = [0.3]
        options.predRatioVar = [0.2]
        compare(config, options: options, batch: 5, shards: 2, views: 2)
    }

    func testMAEShardsMatchTheWholeBatch() {
        var maeEncoder = encoder
        maeEncoder.qkvBias = .qkv
        let config = PretrainingConfig(MAE.self, encoder: maeEncoder, settings: .init(decoderEmbedDim: 8, decoderDepth: 1,
                                       decoderNumHeads: 2, maskRatio: 0.75, normPixLoss: true))
        compare(config, options: MAE.Options(masking: .random), batch: 4, shards: 2)
    }
}

extension DataParallelStepTests {
    /// LoMaR's rows are windows: a shard keeps its images' rows, and the loss divides by the whole
    /// batch's masked window patches. Both pairings (the official one spreads an image's rows).
    func testLoMaRShardsMatchTheWholeBatch() {
        var lomarEncoder = encoder
        lomarEncoder.qkvBias = .qkv
        lomarEncoder.posEmbed = .absent
        lomarEncoder.relativePosition = .irpeProductK
        let config = PretrainingConfig(LoMaR.self, encoder: lomarEncoder, settings: .init(windowSize: 2, numWindow: 3))
        for pairing in WindowPairing.allCases {
            compare(config, options: LoMaR.Options(windowPairing: pairing), batch: 5, shards: 2)
        }
    }
}
