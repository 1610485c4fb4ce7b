import Foundation
import Tensor
import ViT
import Objectives

/// One pretraining step (forward + backward, no optimizer) of MAE and BootMAE on random weights
/// and images: img/s, and the time share of each phase for BootMAE.
func trainStepRates(seconds: Double) {
    let encoder = ViTConfig(imgSize: 28, patchSize: 4, inChans: 1, embedDim: 128, depth: 6, numHeads: 4, mlpRatio: 4,
                            qkvBias: .qv, layerNormEps: 1e-6, globalPool: .cls, mean: [0.5], std: [0.5], posEmbed: .sincosBootMAE)
    var maeEncoder = encoder
    maeEncoder.qkvBias = .qkv
    maeEncoder.posEmbed = .sincosMAE
    let boot = BootMAE(encoder: encoder, settings: .init(decoderEmbedDim: 64, decoderDepth: 2, featureDecoderDepth: 2,
                                                         featureLayers: [0, 5], numMask: 37))
    let mae = MAE(encoder: maeEncoder, settings: .init(decoderEmbedDim: 64, decoderDepth: 2, decoderNumHeads: 2, maskRatio: 0.75,
                                                       normPixLoss: true))
    var rng = SeededRandom(seed: 5)
    boot.initialize(rng: &rng)
    mae.initialize(rng: &rng)
    let batch = 256
    let images = Tensor(shape: [batch, 1, 28, 28], data: (0..<(batch * 784)).map { _ in rng.normal() })
    func measure(_ name: String, _ body: () -> Void) {
        body()
        var times: [Double] = []
        let start = Date()
        while Date().timeIntervalSince(start) < seconds || times.count < 3 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        let t = median(times)
        print(String(format: "train step %-28@ batch %d  %7.1f img/s  %6.1f ms", name as NSString, batch, Double(batch) / t, t * 1000))
    }
    let blocks = BlockMasking.scaled(grid: 7)
    measure("bootmae tiny 128x6 28px") {
        var r = SeededRandom(seed: 1)
        let plan = blocks.plan(batch: batch, grid: 7, rng: &r)
        boot.parameters.zeroGrads()
        _ = boot.step(images, plan: plan, weights: plan.neighbourhoodWeights(grid: 7), featureWeight: 1)
    }
    measure("mae tiny 128x6 28px") {
        var r = SeededRandom(seed: 1)
        let plan = RandomMasking(ratio: 0.75).plan(batch: batch, numPatches: 49, rng: &r)
        mae.parameters.zeroGrads()
        _ = mae.step(images, plan: plan)
    }
    measure("momentum encoder forward") { _ = boot.momentum.lastBlockOutput(images) }
}
