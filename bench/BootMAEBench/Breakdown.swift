import Foundation
import Tensor
import ViT

/// Where one transformer block's time goes, op by op, at a given model shape and batch: the
/// block's public pieces are called in the order `Block` calls them (the training forward and
/// backward when `backward`, else the inference path), each timed separately (wall and CPU ms,
/// medians over repeated runs).
func blockBreakdown(name: String, config c: ViTConfig, batch: Int, tokens: Int, backward: Bool, seconds: Double) {
    var params = ParameterList()
    let block = Block(dim: c.embedDim, heads: c.numHeads, mlpHidden: c.mlpHidden, bias: c.qkvBias,
                      eps: Float(c.layerNormEps), name: "b", into: &params)
    var rng = SeededRandom(seed: 2)
    WeightInit.initialize(block, style: .mae, rng: &rng)
    let x = Tensor(shape: [batch, tokens, c.embedDim], data: (0..<(batch * tokens * c.embedDim)).map { _ in rng.normal() })
    let heads = c.numHeads

    var stages: [(String, () -> Void)] = []
    // Forward, stage by stage, keeping what backward needs.
    let (n1, c1) = block.norm1.forward(x)
    let qkv = block.attn.qkv.forward(n1)
    let (ctx, saved) = AttentionOp.selfForward(qkv: qkv, heads: heads)
    let x1 = block.attn.proj.forward(ctx, adding: x)
    let (n2, c2) = block.norm2.forward(x1)
    let h = block.mlp.fc1.forward(n2)
    let (g, derivative) = GELUOp.forwardWithDerivative(h)

    stages.append(("fwd norm1", { _ = block.norm1.forward(x) }))
    stages.append(("fwd qkv linear", { _ = block.attn.qkv.forward(n1) }))
    if backward {
        stages.append(("fwd attention", { _ = AttentionOp.selfForward(qkv: qkv, heads: heads) }))
    } else {
        stages.append(("fwd attention", { _ = AttentionOp.selfInfer(qkv: qkv, heads: heads) }))
    }
    stages.append(("fwd proj + residual", { _ = block.attn.proj.forward(ctx, adding: x) }))
    stages.append(("fwd norm2", { _ = block.norm2.forward(x1) }))
    stages.append(("fwd fc1 linear", { _ = block.mlp.fc1.forward(n2) }))
    if backward {
        stages.append(("fwd gelu + derivative", { _ = GELUOp.forwardWithDerivative(h) }))
    } else {
        stages.append(("fwd gelu", { _ = GELUOp.forward(h) }))
    }
    stages.append(("fwd fc2 + residual", { _ = block.mlp.fc2.forward(g, adding: x1) }))
    if backward {
        let dy = x
        let dg = block.mlp.fc2.backward(dy, input: g)
        let dh = GELUOp.backward(dg, derivative: derivative)
        let dn2 = block.mlp.fc1.backward(dh, input: n2)
        let dCtx = block.attn.proj.backward(dy, input: ctx)
        let dqkv = AttentionOp.selfBackward(dCtx, qkv: qkv, saved: saved, heads: heads)
        let dn1 = block.attn.qkv.backward(dqkv, input: n1)
        stages.append(("bwd fc2 linear", { _ = block.mlp.fc2.backward(dy, input: g) }))
        stages.append(("bwd gelu", { _ = GELUOp.backward(dg, derivative: derivative) }))
        stages.append(("bwd fc1 linear", { _ = block.mlp.fc1.backward(dh, input: n2) }))
        stages.append(("bwd norm2 + residual", { _ = block.norm2.backward(dn2, cache: c2, adding: dy) }))
        stages.append(("bwd proj linear", { _ = block.attn.proj.backward(dy, input: ctx) }))
        stages.append(("bwd attention", { _ = AttentionOp.selfBackward(dCtx, qkv: qkv, saved: saved, heads: heads) }))
        stages.append(("bwd qkv linear", { _ = block.attn.qkv.backward(dqkv, input: n1) }))
        stages.append(("bwd norm1 + residual", { _ = block.norm1.backward(dn1, cache: c1, adding: dy) }))
    }
    let perStage = seconds / Double(stages.count)
    let times = stages.map { (label, body) in (label, timeMedians(seconds: perStage, minRuns: 5, body)) }
    let wallTotal = times.reduce(0) { $0 + $1.1.wall }, cpuTotal = times.reduce(0) { $0 + $1.1.cpu }
    print("block breakdown \(name), batch \(batch), \(tokens) tokens (ms per block; share of wall)")
    for (label, t) in times {
        print(String(format: "  %-22@ wall %8.3f  cpu %8.3f  %5.1f%%", label as NSString, t.wall * 1e3, t.cpu * 1e3, 100 * t.wall / wallTotal))
    }
    print(String(format: "  %-22@ wall %8.3f  cpu %8.3f", "total" as NSString, wallTotal * 1e3, cpuTotal * 1e3))
}

/// `only`: run just the cases whose name contains it.
func breakdowns(seconds: Double, only: String?) {
    let tiny128 = ViTConfig(imgSize: 28, patchSize: 4, inChans: 1, embedDim: 128, depth: 6, numHeads: 4, qkvBias: .qv,
                            mean: [0.5], std: [0.5], posEmbed: .sincosBootMAE)
    if only.map({ "finetune".contains($0) }) ?? true {
        blockBreakdown(name: "finetune tiny 128x6", config: tiny128, batch: 256, tokens: 50, backward: true, seconds: seconds)
    }
    for c in benchmarkCases where only.map({ c.name.contains($0) }) ?? true {
        blockBreakdown(name: c.name, config: c.config, batch: 8, tokens: c.config.numTokens, backward: false, seconds: seconds)
    }
}
