import Tensor

/// Fresh weights for training from scratch, following the official initialisations (BootMAE:
/// `models/modeling_pretrain_bootmae.py`, `VisionTransformerForMaskedImageModeling.__init__` and
/// `_init_weights`; MAE: `models_mae.py`, `initialize_weights` and `_init_weights`): Xavier-uniform
/// linears (computed per q/k/v block for BootMAE's qkv), zero biases, LayerNorm 1/0, cls token
/// N(0, 0.02²) for MAE and N(0, 1e-6²) for BootMAE.
public enum WeightInit {
    public enum Style: Sendable { case mae, bootmae }

    static func xavierUniform(_ p: Parameter, fanIn: Int, fanOut: Int, rng: inout SeededRandom) {
        let bound = (6 / Float(fanIn + fanOut)).squareRoot()
        p.fill { (rng.uniform() * 2 - 1) * bound }
    }

    public static func initialize(_ model: VisionTransformer, style: Style, rng: inout SeededRandom) {
        xavierUniform(model.patchEmbed.weight, fanIn: model.config.patchDim, fanOut: model.config.embedDim, rng: &rng)
        model.clsToken.fill { rng.normal() * (style == .mae ? 0.02 : 1e-6) }
        if model.posEmbed.trainable {
            model.posEmbed.fill { rng.truncatedNormal(std: 0.02, lo: -0.04, hi: 0.04) }
        }
        for block in model.blocks { initialize(block, style: style, rng: &rng) }
        if let head = model.head {
            head.weight.fill { rng.truncatedNormal(std: 2e-5, lo: -4e-5, hi: 4e-5) }
        }
    }

    public static func initialize(_ block: Block, style: Style, rng: inout SeededRandom) {
        let qkv = block.attn.qkv.weight
        let (out3, dim) = (qkv.shape[0], qkv.shape[1])
        // BootMAE treats q, k and v as three (A × dim) matrices; MAE as one (3A × dim).
        xavierUniform(qkv, fanIn: dim, fanOut: style == .bootmae ? out3 / 3 : out3, rng: &rng)
        for linear in [block.attn.proj, block.mlp.fc1, block.mlp.fc2] {
            xavierUniform(linear.weight, fanIn: linear.inFeatures, fanOut: linear.outFeatures, rng: &rng)
        }
    }
}
