import Tensor

/// Fresh weights for a pretraining network, by parameter name, in the network's parameter order:
/// Xavier-uniform linears, Xavier patch embedding, zero biases, LayerNorm 1/0, a ConvTranspose pixel
/// head (`lm_head.proj`) with PyTorch's default U(±1/√(C·p·p)), position tables truncated N(0, 0.02²)
/// at ±2σ; the class and mask tokens and the q/k/v fan-out are the objective's choices. Frozen
/// tables keep their generated values. After LightDXY/BootMAE models/modeling_pretrain_bootmae.py
/// (`_init_weights`, its `trunc_normal_` with a=−std, b=std) and facebookresearch/mae models_mae.py
/// (`initialize_weights`).
public struct ParameterInit: Sendable {
    /// Standard deviation of `cls_token`'s normal init.
    public var classTokenStd: Float
    /// `mask_token*`: truncated at ±1σ (BootMAE's `trunc_normal_`) instead of a plain normal.
    public var truncatedMaskTokens: Bool
    /// Xavier fan-out of a `qkv` weight per q / k / v block (BootMAE) instead of the whole matrix.
    public var xavierPerQKVBlock: Bool

    public init(classTokenStd: Float, truncatedMaskTokens: Bool, xavierPerQKVBlock: Bool) {
        self.classTokenStd = classTokenStd
        self.truncatedMaskTokens = truncatedMaskTokens
        self.xavierPerQKVBlock = xavierPerQKVBlock
    }

    public func initialize(_ parameters: ParameterList, rng: inout SeededRandom) {
        for (name, p) in parameters.entries where p.trainable {
            let shape = p.shape
            func fill(_ f: (inout SeededRandom) -> Float) { p.fill { f(&rng) } }
            func xavier(fanIn: Int, fanOut: Int) {
                let bound = (6 / Float(fanIn + fanOut)).squareRoot()
                fill { ($0.uniform() * 2 - 1) * bound }
            }
            if name == "cls_token" {
                fill { $0.normal() * classTokenStd }
            } else if name.hasPrefix("mask_token") {
                fill { truncatedMaskTokens ? $0.truncatedNormal(std: 0.02, lo: -0.02, hi: 0.02) : $0.normal() * 0.02 }
            } else if name == "pos_embed" {
                fill { $0.truncatedNormal(std: 0.02, lo: -0.04, hi: 0.04) }
            } else if name.hasPrefix("lm_head.proj") {
                let bound = 1 / Float(shape.count == 4 ? shape[1] * shape[2] * shape[3] : parameters["lm_head.proj.weight"]!.shape.dropFirst().reduce(1, *)).squareRoot()
                fill { ($0.uniform() * 2 - 1) * bound }
            } else if name == "patch_embed.proj.weight" {
                xavier(fanIn: shape.dropFirst().reduce(1, *), fanOut: shape[0])
            } else if shape.count == 2 {
                let perBlock = xavierPerQKVBlock && name.contains("qkv")
                xavier(fanIn: shape[1], fanOut: perBlock ? shape[0] / 3 : shape[0])
            } else if shape.count == 1 && name.hasSuffix(".weight") {
                fill { _ in 1 }   // LayerNorm scale
            } else {
                // Biases, q_bias, v_bias, and the iRPE tables (irpe.py creates them as zeros and
                // passes no initializer).
                fill { _ in 0 }
            }
        }
    }
}
