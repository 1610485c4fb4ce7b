#!/usr/bin/env python3
"""PyTorch fixtures for the encoder extensions that iBOT, LoMaR and BEiT-style objectives need.

Usage (from the repository root):
    .venv-ref/bin/python tools/reference/make_seam_fixtures.py

Writes (see Tests/Fixtures/README.md):
  ops/attention_bias_{per_head,per_image_head,per_image}.safetensors   self-attention + logit bias
  ops/token_windows.safetensors                                        K x K windows of the patch grid
  blocks/block_layer_scale.safetensors                                 BEiT-style block: q/v biases,
                                                                       gamma_1/gamma_2, relative bias
  encoders/masked_embed_{qkv,beit}/                                    all-token encoder with masked
                                                                       patches replaced by an embedding

The modules are written here from the published formulas, not copied:
  * attention logits S = (q * hd^-1/2) k^T + bias, bias broadcast over images and/or heads
    (microsoft/unilm beit/modeling_finetune.py `Attention`: relative_position_bias added per head;
    junchen14/LoMaR irpe.py: the contextual term q_i . r_b(i,j) is such a bias, per image and head);
  * layer scale x + gamma_1 * attn(norm1(x)); x + gamma_2 * mlp(norm2(x)) (beit/modeling_finetune.py
    `Block`, gamma = init_values * ones(dim));
  * mask substitution on the patch embeddings (conv output incl. bias) before cls and positions:
    x * (1 - w) + mask_token * w (beit/modeling_pretrain.py) = x[mask] = masked_embed
    (bytedance/ibot models/vision_transformer.py); the script checks that both give the same tensor;
  * LoMaR's windows (junchen14/LoMaR models_lomar.py `generate_window_patches`): window (top, left) of
    size K holds patches (top + i) * W + left + j in row-major order.

Seeded, float32, single-threaded; a re-run is byte-identical (REF_FIXTURES_OUT=/tmp/x redirects).
Every gradient comes from backward of sum(output * upstream) with random upstream tensors stored
next to it.
"""

import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FixtureWriter, Mlp, PatchEmbed, leaf, rand, randomize_, seed, state_dict_f32  # noqa: E402

SCRIPT = "tools/reference/make_seam_fixtures.py"
WRITER = FixtureWriter(SCRIPT, max_file_bytes=100 * 1024, max_total_bytes=600 * 1024)
save = WRITER.save
write_json = WRITER.write_json


# --------------------------------------------------------------------------------------------------
# formulas
# --------------------------------------------------------------------------------------------------
def biased_self_attention(qkv, heads, bias=None):
    """qkv (B,N,3A) -> (B,N,A); bias broadcastable to (B,H,N,N) is added to the scaled logits."""
    B, N, C3 = qkv.shape
    A = C3 // 3
    hd = A // heads
    q, k, v = qkv.reshape(B, N, 3, heads, hd).permute(2, 0, 3, 1, 4).unbind(0)
    logits = (q * hd ** -0.5) @ k.transpose(-2, -1)
    if bias is not None:
        logits = logits + bias
    return (logits.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, N, A)


class Attention(nn.Module):
    """qkv projection (mode "qkv": one bias, timm; "qv": q_bias / v_bias, BEiT) -> attention -> proj."""

    def __init__(self, dim, heads, mode):
        super().__init__()
        self.heads, self.mode = heads, mode
        self.qkv = nn.Linear(dim, 3 * dim, bias=mode == "qkv")
        if mode == "qv":
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, bias=None):
        if self.mode == "qv":
            qkv = F.linear(x, self.qkv.weight, torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias]))
        else:
            qkv = self.qkv(x)
        return self.proj(biased_self_attention(qkv, self.heads, bias))


class Block(nn.Module):
    """Pre-norm block, optional layer scale (gamma_1 / gamma_2) and attention-logit bias."""

    def __init__(self, dim, heads, mode, init_values=None, eps=1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, mode)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, 4 * dim)
        if init_values is not None:
            self.gamma_1 = nn.Parameter(init_values * torch.ones(dim))
            self.gamma_2 = nn.Parameter(init_values * torch.ones(dim))
        else:
            self.gamma_1 = self.gamma_2 = None

    def forward(self, x, bias=None):
        a = self.attn(self.norm1(x), bias)
        x = x + (a if self.gamma_1 is None else self.gamma_1 * a)
        m = self.mlp(self.norm2(x))
        return x + (m if self.gamma_2 is None else self.gamma_2 * m)


class MaskedEncoder(nn.Module):
    """patch_embed -> masked rows <- mask embedding -> [cls; x] (+ pos_embed) -> blocks -> norm."""

    def __init__(self, img, patch, in_chans, dim, depth, heads, mode, pos_embed, init_values, eps=1e-6):
        super().__init__()
        n = (img // patch) ** 2
        self.patch_embed = PatchEmbed(in_chans, dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + n, dim)) if pos_embed else None
        self.blocks = nn.ModuleList([Block(dim, heads, mode, init_values, eps) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, images, mask, mask_embed, taps=()):
        x = self.patch_embed(images)
        w = mask.unsqueeze(-1).to(x.dtype)
        blended = x * (1 - w) + mask_embed * w          # BEiT
        replaced = x.clone()
        replaced[mask] = mask_embed                       # iBOT
        assert torch.equal(blended, replaced), "BEiT blend and iBOT replacement differ"
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), blended], dim=1)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        features = {}
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i in taps:
                features[i] = x
        return self.norm(x), features


# --------------------------------------------------------------------------------------------------
# ops
# --------------------------------------------------------------------------------------------------
def op_attention_bias(name, s, bias_shape, broadcast):
    """broadcast: the stored bias -> a tensor broadcastable to (B,H,N,N)."""
    seed(s)
    A, H, B, N = 12, 3, 2, 7
    qkv = leaf(rand(B, N, 3 * A, scale=1.5))
    bias = leaf(rand(*bias_shape))
    dy = rand(B, N, A)
    out = biased_self_attention(qkv, H, broadcast(bias))
    out.backward(dy)
    assert bias.grad.abs().max() > 0
    save(f"ops/{name}.safetensors", dict(qkv=qkv, bias=bias, dy=dy, out=out, dqkv=qkv.grad, dbias=bias.grad),
         meta={"heads": str(H), "head_dim": str(A // H), "layout": name.removeprefix("attention_bias_")}, seed=s)


def ops():
    # one (H, N, N) bias for every image (BEiT relative position bias)
    op_attention_bias("attention_bias_per_head", 501, (3, 7, 7), lambda b: b.unsqueeze(0))
    # one (N, N) matrix per image and head (LoMaR's contextual iRPE term)
    op_attention_bias("attention_bias_per_image_head", 502, (2, 3, 7, 7), lambda b: b)
    # one (N, N) matrix per image, shared by the heads
    op_attention_bias("attention_bias_per_image", 503, (2, 7, 7), lambda b: b.unsqueeze(1))
    op_token_windows()


def op_token_windows():
    """Windows of a 4 x 5 grid (not square, so rows and columns cannot be swapped unnoticed); two
    windows of image 0 overlap, so the backward must add."""
    s = seed(504)
    H, W, K, D = 4, 5, 3, 3
    windows = torch.tensor([[0, 0, 0], [1, 1, 2], [0, 1, 1], [1, 0, 0]])  # (image, top, left)
    x = leaf(rand(2, H * W, D))
    index = torch.stack([(top + torch.arange(K))[:, None] * W + left + torch.arange(K)[None, :]
                         for _, top, left in windows.tolist()]).reshape(len(windows), K * K)
    y = x[windows[:, 0, None], index]  # (R, K*K, D)
    dy = rand(*y.shape)
    y.backward(dy)
    assert x.grad[0, (1 + 1) * W + 1 + 1].abs().sum() > 0  # a token both image-0 windows read
    save("ops/token_windows.safetensors", dict(x=x, windows=windows, dy=dy, y=y, dx=x.grad),
         meta={"grid_height": str(H), "grid_width": str(W), "size": str(K)}, seed=s)


# --------------------------------------------------------------------------------------------------
# block
# --------------------------------------------------------------------------------------------------
def block_layer_scale():
    s = seed(601)
    dim, H, B, N = 24, 3, 2, 7
    block = Block(dim, H, "qv", init_values=0.1)
    randomize_(block)
    block.eval()
    x = leaf(rand(B, N, dim, scale=1.5))
    bias = leaf(rand(H, N, N))
    dy = rand(B, N, dim)
    y = block(x, bias.unsqueeze(0))
    y.backward(dy)
    t = dict(x=x, bias=bias, dy=dy, y=y, dx=x.grad, dbias=bias.grad)
    params = dict(block.named_parameters())
    for n in block.state_dict():
        assert params[n].grad.abs().max() > 0, n
        t["param." + n] = params[n]
        t["grad." + n] = params[n].grad
    save("blocks/block_layer_scale.safetensors", t,
         meta={"dim": str(dim), "heads": str(H), "mlp_ratio": "4.0", "eps": "1e-06", "qkv_bias": "qv",
               "layer_scale": "gamma_1, gamma_2 (random values)", "bias_layout": "per_head"}, seed=s)


# --------------------------------------------------------------------------------------------------
# encoders
# --------------------------------------------------------------------------------------------------
IMG, PATCH, DIM, DEPTH, HEADS = 12, 4, 16, 2, 2


def config(**kw):
    c = {"img_size": IMG, "patch_size": PATCH, "in_chans": 3, "embed_dim": DIM, "depth": DEPTH, "num_heads": HEADS,
         "mlp_ratio": 4.0, "qkv_bias": "qkv", "layer_norm_eps": 1e-6, "global_pool": "cls",
         "pos_embed": "checkpoint", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    c.update(kw)
    return c


def masked_encoder(name, s, mode, pos_embed, init_values, cfg):
    seed(s)
    m = MaskedEncoder(IMG, PATCH, 3, DIM, DEPTH, HEADS, mode, pos_embed, init_values)
    randomize_(m)
    m.eval()
    n = (IMG // PATCH) ** 2
    mask_embed = leaf(rand(DIM, scale=0.2))
    images = leaf(rand(2, 3, IMG, IMG))
    mask = torch.zeros(2, n, dtype=torch.bool)
    for b, count in enumerate((4, 6)):
        mask[b, torch.randperm(n)[:count]] = True
    latent, features = m(images, mask, mask_embed, taps=(0,))
    dlatent, dfeature0 = rand(*latent.shape), rand(*features[0].shape)
    ((latent * dlatent).sum() + (features[0] * dfeature0).sum()).backward()
    # Masked patches reach nothing but the mask embedding: their pixels get no gradient.
    g = images.grad.unfold(2, PATCH, PATCH).unfold(3, PATCH, PATCH)  # (B, C, gh, gw, p, p)
    g = g.permute(0, 2, 3, 1, 4, 5).reshape(2, n, -1)
    assert torch.all(g[mask] == 0) and torch.all(g[~mask].abs().sum(-1) > 0)
    grads = {"grad." + k: p.grad for k, p in m.named_parameters()}
    assert all(v.abs().max() > 0 for v in grads.values())
    io = dict(images=images, mask=mask.to(torch.int64), mask_embed=mask_embed, latent=latent,
              feature0=features[0], dlatent=dlatent, dfeature0=dfeature0, dimages=images.grad,
              **grads, **{"grad.mask_embed": mask_embed.grad})
    write_json(f"encoders/{name}/config.json", cfg)
    save(f"encoders/{name}/model.safetensors", state_dict_f32(m), seed=s)
    save(f"encoders/{name}/io.safetensors", io, meta={"taps": "0"}, seed=s)


def encoders():
    # iBOT-style: timm qkv bias, learned absolute positions, no layer scale
    masked_encoder("masked_embed_qkv", 701, "qkv", True, None, config())
    # BEiT / LoMaR-style: q/v biases, no absolute positions, layer scale (random gammas in the weights)
    masked_encoder("masked_embed_beit", 702, "qv", False, 0.1,
                   config(qkv_bias="qv", pos_embed="none", layer_scale_init=0.1))


def main():
    ops()
    block_layer_scale()
    encoders()
    WRITER.check(max_keys=8)


if __name__ == "__main__":
    main()
