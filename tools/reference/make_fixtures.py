#!/usr/bin/env python3
"""Generate the PyTorch reference fixtures that the Swift tests compare against.

Usage (from the repository root):
    tools/reference/setup_venv.sh && .venv-ref/bin/python tools/reference/make_fixtures.py

Writes safetensors files under Tests/Fixtures/{ops,blocks,encoders/<name>}/ (see
Tests/Fixtures/README.md). Everything is float32 (index tensors int64), single-threaded and seeded
per fixture, so re-running reproduces the files.

Conventions:
  * every gradient is the result of `y.backward(dy)` with a random upstream gradient `dy` saved in
    the same file (for the weighted-MSE loss the upstream gradient is 1);
  * scalar parameters are stored as strings in the safetensors metadata (e.g. {"eps": "1e-06"});
  * BootMAE-style modules (q_bias/v_bias attention, BootMAE sin-cos table) are written here after
    BootMAE's models/modeling_pretrain_bootmae.py (Attention, Block,
    build_2d_sincos_position_embedding) with its key names, not copied from it. timm modules are
    used as-is (timm==1.0.31) for the timm fixtures.
"""

import math
import sys
from functools import partial
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402  (common imports timm, sets one thread and float32)
    BootMAEEncoder, FixtureWriter, PatchEmbed, QVBlock, TimmBlock, TimmViT, cross_attention_from_q_kv,
    leaf, rand, randomize_, seed, self_attention_from_qkv, sincos_bootmae, sincos_mae, state_dict_f32,
)

SCRIPT = "tools/reference/make_fixtures.py"
MAX_FILE_BYTES = 300 * 1024
MAX_TOTAL_BYTES = 3 * 1024 * 1024
WRITER = FixtureWriter(SCRIPT, max_file_bytes=MAX_FILE_BYTES, max_total_bytes=MAX_TOTAL_BYTES)
save = WRITER.save
write_json = WRITER.write_json


# --------------------------------------------------------------------------------------------------
# ops fixtures
# --------------------------------------------------------------------------------------------------
def op_linear():
    s = seed(101)
    x = leaf(rand(2, 7, 12, scale=1.5))
    lin = nn.Linear(12, 16)
    with torch.no_grad():
        lin.weight.normal_(0, 0.3)
        lin.bias.normal_(0, 0.5)
    dy = rand(2, 7, 16)
    y = lin(x)
    y.backward(dy)
    save("ops/linear.safetensors", dict(x=x, weight=lin.weight, bias=lin.bias, dy=dy, y=y, dx=x.grad,
                                        dweight=lin.weight.grad, dbias=lin.bias.grad), seed=s)


def op_layernorm():
    s = seed(102)
    eps = 1e-6
    # rows with non-zero means and different spreads
    x = leaf(rand(2, 7, 24, scale=2.0) * torch.rand(2, 7, 1).add(0.25) + rand(2, 7, 1, scale=3.0))
    ln = nn.LayerNorm(24, eps=eps)
    with torch.no_grad():
        ln.weight.normal_(1.0, 0.3)
        ln.bias.normal_(0.0, 0.2)
    dy = rand(2, 7, 24)
    y = ln(x)
    y.backward(dy)
    save("ops/layernorm.safetensors", dict(x=x, weight=ln.weight, bias=ln.bias, dy=dy, y=y, dx=x.grad,
                                           dweight=ln.weight.grad, dbias=ln.bias.grad),
         meta={"eps": repr(eps)}, seed=s)


def op_layernorm_noaffine():
    s = seed(103)
    eps = 1e-6
    x = leaf(rand(3, 5, 24) * torch.rand(3, 5, 1).mul(3).add(0.1) + rand(3, 5, 1, scale=2.0))
    ln = nn.LayerNorm(24, eps=eps, elementwise_affine=False)
    dy = rand(3, 5, 24)
    y = ln(x)
    y.backward(dy)
    save("ops/layernorm_noaffine.safetensors", dict(x=x, dy=dy, y=y, dx=x.grad),
         meta={"eps": repr(eps)}, seed=s)


def op_gelu():
    s = seed(104)
    x = torch.empty(4, 96)
    x[0] = torch.linspace(-6.0, 6.0, 96)
    x[1] = rand(96)
    x[2] = rand(96, scale=2.0)
    x[3] = rand(96, scale=3.0).clamp(-6.5, 6.5)
    x = leaf(x)
    dy = rand(4, 96)
    y = nn.GELU()(x)
    y.backward(dy)
    save("ops/gelu.safetensors", dict(x=x, dy=dy, y=y, dx=x.grad), meta={"approximate": "none"}, seed=s)


def op_softmax():
    s = seed(105)
    x = leaf(rand(3, 5, 9, scale=3.0))
    dy = rand(3, 5, 9)
    y = x.softmax(dim=-1)
    y.backward(dy)
    save("ops/softmax.safetensors", dict(x=x, dy=dy, y=y, dx=x.grad), meta={"dim": "-1"}, seed=s)


def op_attention_self():
    s = seed(106)
    A, H = 24, 4
    qkv = leaf(rand(2, 9, 3 * A, scale=1.5))
    dy = rand(2, 9, A)
    out = self_attention_from_qkv(qkv, H)
    out.backward(dy)
    save("ops/attention_self.safetensors", dict(qkv=qkv, dy=dy, out=out, dqkv=qkv.grad),
         meta={"heads": str(H), "head_dim": str(A // H), "scale": repr((A // H) ** -0.5)}, seed=s)


def op_attention_cross():
    s = seed(107)
    A, H = 24, 4
    q = leaf(rand(2, 9, A, scale=1.5))
    kv = leaf(rand(2, 5, 2 * A, scale=1.5))
    dy = rand(2, 9, A)
    out = cross_attention_from_q_kv(q, kv, H)
    out.backward(dy)
    save("ops/attention_cross.safetensors", dict(q=q, kv=kv, dy=dy, out=out, dq=q.grad, dkv=kv.grad),
         meta={"heads": str(H), "head_dim": str(A // H), "scale": repr((A // H) ** -0.5)}, seed=s)


def op_qkv_linear_qv():
    s = seed(108)
    C, A = 16, 16
    x = leaf(rand(2, 7, C))
    weight = leaf(rand(3 * A, C, scale=0.25))
    q_bias = leaf(rand(A, scale=0.5))
    v_bias = leaf(rand(A, scale=0.5))
    dy = rand(2, 7, 3 * A)
    y = F.linear(x, weight, torch.cat([q_bias, torch.zeros(A), v_bias]))
    y.backward(dy)
    save("ops/qkv_linear_qv.safetensors", dict(x=x, weight=weight, q_bias=q_bias, v_bias=v_bias, dy=dy,
                                               y=y, dx=x.grad, dweight=weight.grad, dq_bias=q_bias.grad,
                                               dv_bias=v_bias.grad), seed=s)


def op_gather_tokens():
    s = seed(109)
    B, N, C, K = 2, 10, 6, 4
    x = leaf(rand(B, N, C))
    index = torch.stack([torch.randperm(N)[:K] for _ in range(B)]).to(torch.int64)
    dy = rand(B, K, C)
    y = torch.gather(x, 1, index[..., None].expand(-1, -1, C))
    y.backward(dy)
    save("ops/gather_tokens.safetensors", dict(x=x, index=index, dy=dy, y=y, dx=x.grad),
         meta={"dim": "1"}, seed=s)


def op_mean_tokens():
    s = seed(110)
    x = leaf(rand(2, 10, 6, scale=2.0))
    dy = rand(2, 6)
    y = x.mean(dim=1)
    y.backward(dy)
    save("ops/mean_tokens.safetensors", dict(x=x, dy=dy, y=y, dx=x.grad), meta={"dim": "1"}, seed=s)


def op_mse_weighted():
    s = seed(111)
    B, N, C, M = 2, 10, 12, 6
    pred = leaf(rand(B, N, C))
    target = rand(B, N, C, scale=1.3)
    weight = torch.zeros(B, N)
    for b in range(B):
        masked = torch.randperm(N)[:M]
        weight[b, masked] = 1.0 + torch.rand(M)
    normalizer = float(B * M * C)
    loss = ((weight[..., None] * (pred - target) ** 2).sum() / normalizer).reshape(1)
    loss.backward(torch.ones(1))
    save("ops/mse_weighted.safetensors", dict(pred=pred, target=target, weight=weight, loss=loss,
                                              dpred=pred.grad),
         meta={"normalizer": repr(normalizer), "masked_per_row": str(M)}, seed=s)


def _patch_embed(rel, in_chans, s):
    seed(s)
    images = leaf(rand(2, in_chans, 8, 8))
    pe = PatchEmbed(in_chans, 10, 4)
    with torch.no_grad():
        pe.proj.weight.normal_(0.0, 1.0 / math.sqrt(in_chans * 16))
        pe.proj.bias.normal_(0.0, 0.3)
    dy = rand(2, 4, 10)
    y = pe(images)
    y.backward(dy)
    save(rel, dict(images=images, weight=pe.proj.weight, bias=pe.proj.bias, dy=dy, y=y, dimages=images.grad,
                   dweight=pe.proj.weight.grad, dbias=pe.proj.bias.grad),
         meta={"patch_size": "4", "stride": "4"}, seed=s)


def op_patch_embed():
    _patch_embed("ops/patch_embed.safetensors", 3, 112)
    _patch_embed("ops/patch_embed_gray.safetensors", 1, 113)


def op_pos_embed():
    s = seed(114)
    t = {
        "bootmae": sincos_bootmae(16, 3),
        "mae": sincos_mae(16, 3),
        "bootmae_64": sincos_bootmae(64, 8),
        "mae_64": sincos_mae(64, 8),
    }
    # the two tables differ only by the order of their halves (row-first vs column-first)
    for a, b, d in (("bootmae", "mae", 16), ("bootmae_64", "mae_64", 64)):
        swapped = torch.cat([t[b][..., d // 2:], t[b][..., :d // 2]], dim=-1)
        assert (swapped - t[a]).abs().max() < 1e-5, a
        assert (t[a] - t[b]).abs().max() > 0.5, a
    save("ops/pos_embed_sincos.safetensors", t,
         meta={"embed_dim": "16", "grid": "3", "embed_dim_64": "64", "grid_64": "8",
               "temperature": "10000.0", "cls_token": "true"}, seed=s)


# --------------------------------------------------------------------------------------------------
# blocks
# --------------------------------------------------------------------------------------------------
def _block_fixture(rel, block, s, dim=48):
    x = leaf(rand(2, 17, dim, scale=1.5))
    dy = rand(2, 17, dim)
    y = block(x)
    y.backward(dy)
    t = dict(x=x, dy=dy, y=y, dx=x.grad)
    for n in block.state_dict():
        p = dict(block.named_parameters())[n]
        t["param." + n] = p
        t["grad." + n] = p.grad
    return t


def _fc1_range(block, x):
    with torch.no_grad():
        h = block.mlp.fc1(block.norm2(x + block.attn(block.norm1(x))))
    return float(h.min()), float(h.max())


def block_qkv():
    s = seed(201)
    block = TimmBlock(dim=48, num_heads=4, mlp_ratio=4, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6))
    randomize_(block)
    block.eval()
    t = _block_fixture("blocks/block_qkv.safetensors", block, s)
    lo, hi = _fc1_range(block, t["x"])
    save("blocks/block_qkv.safetensors", t,
         meta={"dim": "48", "heads": "4", "mlp_ratio": "4.0", "eps": "1e-06", "qkv_bias": "qkv",
               "module": "timm.models.vision_transformer.Block", "fc1_out_range": f"{lo:.3f},{hi:.3f}"}, seed=s)


def block_qv():
    s = seed(202)
    block = QVBlock(48, 4, 4.0, 1e-6)
    randomize_(block)
    block.eval()
    t = _block_fixture("blocks/block_qv.safetensors", block, s)
    lo, hi = _fc1_range(block, t["x"])
    # cross-check: the same weights in a timm Block with qkv.bias = cat(q_bias, 0, v_bias)
    tb = TimmBlock(dim=48, num_heads=4, mlp_ratio=4, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6))
    sd = {k: v for k, v in block.state_dict().items() if k not in ("attn.q_bias", "attn.v_bias")}
    sd["attn.qkv.bias"] = torch.cat([block.attn.q_bias, torch.zeros(48), block.attn.v_bias]).detach()
    tb.load_state_dict(sd)
    with torch.no_grad():
        err = (tb(t["x"]) - t["y"]).abs().max().item()
    assert err < 1e-5, f"QVBlock vs timm Block mismatch {err}"
    save("blocks/block_qv.safetensors", t,
         meta={"dim": "48", "heads": "4", "mlp_ratio": "4.0", "eps": "1e-06", "qkv_bias": "qv",
               "module": "BootMAE Block (models/modeling_pretrain_bootmae.py)", "fc1_out_range": f"{lo:.3f},{hi:.3f}"}, seed=s)


# --------------------------------------------------------------------------------------------------
# encoders
# --------------------------------------------------------------------------------------------------
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def timm_vit(**kw):
    args = dict(img_size=32, patch_size=8, in_chans=3, embed_dim=48, depth=2, num_heads=4, mlp_ratio=4.0,
                qkv_bias=True, class_token=True, norm_layer=partial(nn.LayerNorm, eps=1e-6))
    args.update(kw)
    m = TimmViT(**args)
    m.eval()
    return m


def base_config(**kw):
    c = {"img_size": 32, "patch_size": 8, "in_chans": 3, "embed_dim": 48, "depth": 2, "num_heads": 4,
         "mlp_ratio": 4.0, "qkv_bias": "qkv", "layer_norm_eps": 1e-6, "global_pool": "cls",
         "pos_embed": "checkpoint", "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    c.update(kw)
    return c


def _grads(model):
    return {"grad." + n: p.grad for n, p in model.named_parameters() if p.requires_grad}


def enc_timm_qkv_cls():
    s = seed(301)
    name = "encoders/timm_qkv_cls"
    m = timm_vit(num_classes=0, global_pool="token")
    randomize_(m)
    images = leaf(rand(3, 3, 32, 32))
    dtokens = rand(3, 17, 48)
    tokens = m.forward_features(images)
    tokens.backward(dtokens)
    io = dict(images=images, tokens=tokens, pooled_cls=tokens[:, 0], pooled_mean=tokens[:, 1:].mean(1),
              dtokens=dtokens, dimages=images.grad, **_grads(m))
    write_json(f"{name}/config.json", base_config())
    save(f"{name}/model.safetensors", state_dict_f32(m), seed=s)
    save(f"{name}/io.safetensors", io, seed=s)
    return m


def enc_timm_qkv_avg_head():
    s = seed(302)
    name = "encoders/timm_qkv_avg_head"
    m = timm_vit(num_classes=5, global_pool="avg")
    randomize_(m)
    keys = list(m.state_dict())
    assert not any(k.startswith("norm.") for k in keys), keys
    assert "fc_norm.weight" in keys and "head.weight" in keys, keys
    images = rand(3, 3, 32, 32)
    with torch.no_grad():
        tokens = m.forward_features(images)
        pooled = m.forward_head(tokens, pre_logits=True)
        logits = m.forward_head(tokens)
        assert torch.allclose(logits, m(images))
    write_json(f"{name}/config.json", base_config(global_pool="mean", labels=["a", "b", "c", "d", "e"]))
    save(f"{name}/model.safetensors", state_dict_f32(m), seed=s)
    # `tokens` (forward_features output, = last block output since norm is Identity) is an extra key
    save(f"{name}/io.safetensors", dict(images=images, tokens=tokens, pooled_mean=pooled, logits=logits), seed=s)


BOOTMAE_DIM = 32  # 64 (as first specified) made model+io 450+540 KiB; see README


def bootmae_encoder():
    m = BootMAEEncoder(32, 8, 3, BOOTMAE_DIM, 2, 4, 4.0, 1e-6)
    randomize_(m)
    m.eval()
    return m


def bootmae_config(**kw):
    return base_config(embed_dim=BOOTMAE_DIM, qkv_bias="qv", mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5], **kw)


def enc_bootmae_qv():
    s = seed(303)
    name = "encoders/bootmae_qv"
    m = bootmae_encoder()
    assert not m.pos_embed.requires_grad
    assert torch.equal(m.pos_embed, sincos_bootmae(BOOTMAE_DIM, 4))
    images = leaf(rand(3, 3, 32, 32))
    dtokens = rand(3, 17, BOOTMAE_DIM)
    # pos_embed is BootMAE's frozen sin-cos table, saved in the checkpoint: config says
    # "sincos_bootmae" and the loader must use the saved table and keep it frozen (no gradient).
    tokens = m.forward_features(images)
    tokens.backward(dtokens)
    io = dict(images=images, tokens=tokens, pooled_cls=tokens[:, 0], pooled_mean=tokens[:, 1:].mean(1),
              dtokens=dtokens, dimages=images.grad, **_grads(m))
    assert "grad.pos_embed" not in io
    write_json(f"{name}/config.json", bootmae_config(pos_embed="sincos_bootmae"))
    save(f"{name}/model.safetensors", state_dict_f32(m), seed=s)
    save(f"{name}/io.safetensors", io, seed=s)
    return m, s


def enc_bootmae_qv_sincos(m, s):
    name = "encoders/bootmae_qv_sincos"
    seed(304)
    images = rand(3, 3, 32, 32)
    with torch.no_grad():
        tokens = m.forward_features(images)
    sd = state_dict_f32(m, drop=("pos_embed",))
    assert "pos_embed" not in sd
    write_json(f"{name}/config.json", bootmae_config(pos_embed="sincos_bootmae"))
    save(f"{name}/model.safetensors", sd, meta={"weights_from_seed": str(s)}, seed=s)
    save(f"{name}/io.safetensors", dict(images=images, tokens=tokens), seed=304)


def enc_mae_gray_sincos():
    s = seed(305)
    name = "encoders/mae_gray_sincos"
    m = timm_vit(in_chans=1, depth=1, num_classes=0, global_pool="token")
    with torch.no_grad():
        m.pos_embed.copy_(sincos_mae(48, 4))
    m.pos_embed.requires_grad_(False)
    randomize_(m)  # skips the frozen pos_embed
    assert torch.equal(m.pos_embed.detach(), sincos_mae(48, 4))
    images = rand(2, 1, 32, 32)
    with torch.no_grad():
        tokens = m.forward_features(images)
    sd = state_dict_f32(m, drop=("pos_embed",))
    write_json(f"{name}/config.json", base_config(in_chans=1, depth=1, pos_embed="sincos_mae",
                                                  mean=[0.5], std=[0.5]))
    save(f"{name}/model.safetensors", sd, seed=s)
    save(f"{name}/io.safetensors", dict(images=images, tokens=tokens), seed=s)


def main():
    for fn in (op_linear, op_layernorm, op_layernorm_noaffine, op_gelu, op_softmax, op_attention_self,
               op_attention_cross, op_qkv_linear_qv, op_gather_tokens, op_mean_tokens, op_mse_weighted,
               op_patch_embed, op_pos_embed, block_qkv, block_qv, enc_timm_qkv_cls, enc_timm_qkv_avg_head):
        fn()
    m, s = enc_bootmae_qv()
    enc_bootmae_qv_sincos(m, s)
    enc_mae_gray_sincos()
    WRITER.check()


if __name__ == "__main__":
    main()
