import Foundation

/// Fine-tuning hyperparameters, saved as recipe.json in the run folder (the fine-tune recipe of
/// BootMAE's `run_class_finetuning.py` with `scripts/finetune/bash_fine_BootMAE_Base_800.sh` and
/// MAE's `main_finetune.py` / `FINETUNE.md`, without mixup/cutmix/RandAugment/random erasing/drop path).
public struct FinetuneRecipe: Codable, Sendable, Equatable {
    public var data: String
    /// A pretraining run folder or model directory, or nil for training from scratch.
    public var initFrom: String?
    public var seed: UInt64
    public var epochs: Int
    public var batchSize: Int
    public var lr: Double
    public var minLR: Double
    public var warmupEpochs: Double
    public var weightDecay: Double
    public var layerDecay: Double
    public var labelSmoothing: Double
    public var cropScale: ClosedRange<Double>
    public var checkpointEvery: Int
    /// Train on only this many images (spread over the split); nil for all. The test split stays whole.
    public var subset: Int?
    /// Evaluate on only this many test images (spread over the split) after each epoch; nil for all.
    public var testSubset: Int?
    /// The share of each class held out as the test split of a labelled folder without test/ or val/
    /// (`HeldOutSplit`); nil (runs before it was recorded) is the default share.
    public var testShare: Double?

    public init(data: String, initFrom: String?, seed: UInt64, epochs: Int, batchSize: Int, lr: Double, minLR: Double = 1e-6,
                warmupEpochs: Double, weightDecay: Double = 0.05, layerDecay: Double, labelSmoothing: Double = 0.1,
                cropScale: ClosedRange<Double>, checkpointEvery: Int, subset: Int? = nil, testSubset: Int? = nil,
                testShare: Double? = nil) {
        self.data = data; self.initFrom = initFrom; self.seed = seed; self.epochs = epochs; self.batchSize = batchSize
        self.lr = lr; self.minLR = minLR; self.warmupEpochs = warmupEpochs; self.weightDecay = weightDecay
        self.layerDecay = layerDecay; self.labelSmoothing = labelSmoothing; self.cropScale = cropScale
        self.checkpointEvery = checkpointEvery
        self.subset = subset
        self.testSubset = testSubset
        self.testShare = testShare
    }
}

/// Layer-wise lr decay (BEiT/MAE `get_num_layer_for_vit`): cls_token, pos_embed and patch_embed are
/// layer 0, blocks.k is layer k + 1, everything else (fc_norm, head) is layer L + 1; a tensor of
/// layer i trains at lr · decay^(L + 1 − i).
public func layerDecayScale(_ name: String, depth: Int, decay: Double) -> Double {
    let layer: Int
    if name == "cls_token" || name == "pos_embed" || name.hasPrefix("patch_embed") || name.hasPrefix("mask_token") {
        layer = 0
    } else if name.hasPrefix("blocks.") {
        layer = Int(name.split(separator: ".")[1])! + 1
    } else {
        layer = depth + 1
    }
    return pow(decay, Double(depth + 1 - layer))
}
