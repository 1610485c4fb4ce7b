import Tensor

/// Fresh weights for a pretraining network, by parameter name, following the official code
/// (bootmae-spec §1.1, §1.2): Xavier-uniform linears (BootMAE computes it per q/k/v block for
/// every `qkv` weight), Xavier patch embedding, zero biases, LayerNorm 1/0, BootMAE's pixel head
/// with PyTorch's ConvTranspose default (U(±1/√(C·p·p)) for weight and bias), cls token
/// N(0, 0.02²) for MAE and N(0, 1e-6²) for BootMAE, mask tokens N(0, 0.02²) (MAE) or the same
/// truncated at ±1σ (BootMAE). Frozen tables keep their generated values.
public enum PretrainingInit {
    public static func initialize(_ parameters: ParameterList, objective: PretrainingConfig.Objective, rng: inout SeededRandom) {
        let bootmae = objective == .bootmae
        for (name, p) in parameters.entries where p.trainable {
            let shape = p.shape
            func fill(_ f: (inout SeededRandom) -> Float) { p.fill { f(&rng) } }
            func xavier(fanIn: Int, fanOut: Int) {
                let bound = (6 / Float(fanIn + fanOut)).squareRoot()
                fill { ($0.uniform() * 2 - 1) * bound }
            }
            if name == "cls_token" {
                let std: Float = bootmae ? 1e-6 : 0.02
                fill { $0.normal() * std }
            } else if name.hasPrefix("mask_token") {
                fill { bootmae ? $0.truncatedNormal(std: 0.02, lo: -0.02, hi: 0.02) : $0.normal() * 0.02 }
            } else if name == "pos_embed" {
                fill { $0.truncatedNormal(std: 0.02, lo: -0.04, hi: 0.04) }
            } else if name.hasPrefix("lm_head.proj") {
                let bound = 1 / Float(shape.count == 4 ? shape[1] * shape[2] * shape[3] : parameters["lm_head.proj.weight"]!.shape.dropFirst().reduce(1, *)).squareRoot()
                fill { ($0.uniform() * 2 - 1) * bound }
            } else if name == "patch_embed.proj.weight" {
                xavier(fanIn: shape.dropFirst().reduce(1, *), fanOut: shape[0])
            } else if shape.count == 2 {
                let perBlock = bootmae && name.contains("qkv")
                xavier(fanIn: shape[1], fanOut: perBlock ? shape[0] / 3 : shape[0])
            } else if shape.count == 1 && name.hasSuffix(".weight") {
                fill { _ in 1 }   // LayerNorm scale
            } else {
                fill { _ in 0 }   // biases, q_bias, v_bias
            }
        }
    }
}
