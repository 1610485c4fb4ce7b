#!/usr/bin/env python3
"""Reference fixtures for the MAE and BootMAE pretraining networks (losses and all gradients).

Usage (from the repository root):
    tools/reference/setup_venv.sh && .venv-ref/bin/python tools/reference/make_pretrain_fixtures.py

Writes Tests/Fixtures/pretrain/{mae_tiny,bootmae_tiny}/{config.json,model.safetensors,io.safetensors}
and, by running tools/convert_checkpoint.py on .pth files saved from those two models,
Tests/Fixtures/pretrain/{converted_mae,converted_bootmae}/{config.json,model.safetensors}.

The modules are written here after the official code, not copied from it: MAE's models_mae.py, and
BootMAE's models/modeling_pretrain_bootmae.py with the masks, targets and losses of run_pretraining.py
(train_one_epoch) and utils.py (mask_to_index); MAE blocks are timm's `Block` (what MAE itself uses).
Seeded, float32, one thread, sorted safetensors metadata: a re-run rewrites byte-identical files.
Masks are inputs of the fixture (ids_shuffle), not drawn inside the network.

Widths are smaller than first specified (see the README "pretrain" section): the specified
64-wide, 3-deep networks come to ~0.9 MB (MAE) and ~2 MB (BootMAE, with its momentum encoder) of
weights alone, before gradients and the converted copies, against a budget of ~600 KB per directory
and 1.5 MB in total; and a BootMAE pixel decoder of width 50 cannot have a 2-D sin-cos table
(official build_2d_sincos_position_embedding asserts width % 4 == 0). The A != width quirk (BootMAE's
decoder blocks take the encoder's head count) is exercised instead with 3 heads: pixel decoder width
20 -> head_dim 6, A = 18.
"""

import json
import math
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402  (common imports timm, sets one thread and float32)
    ROOT, FixtureWriter, Mlp, PatchEmbed, QVAttention, QVBlock, TimmBlock, cross_attention_from_q_kv, rand,
    randomize_, seed, sincos_bootmae, sincos_mae,
)

SCRIPT = "tools/reference/make_pretrain_fixtures.py"
CONVERTER = ROOT / "tools" / "convert_checkpoint.py"
WRITER = FixtureWriter(SCRIPT, max_file_bytes=400 * 1024, max_total_bytes=1536 * 1024)
save = WRITER.save
write_json = WRITER.write_json

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
EPS = 1e-6
BATCH = 2

# ------------------------------------------------------------------------------------------------
# sizes
# ------------------------------------------------------------------------------------------------
MAE = dict(img_size=32, patch_size=4, in_chans=3, embed_dim=16, depth=3, num_heads=4, mlp_ratio=4.0,
           decoder_embed_dim=16, decoder_depth=2, decoder_num_heads=2, mask_ratio=0.75)
BOOT = dict(img_size=32, patch_size=4, in_chans=3, embed_dim=24, depth=3, num_heads=3, mlp_ratio=4.0,
            decoder_embed_dim=20, decoder_depth=2, feature_decoder_depth=2, feature_layers=[0, 2],
            num_mask=48)
BOOT_LAMBDA = 0.37
BOOT_ROLL = 2
BOOT_BLOCK_PATCHES = 39           # 120/196 of the 64 patches
BOOT_BLOCK_MIN, BOOT_BLOCK_MAX = 5, 20   # BEiT's 16 / 60 of 196, scaled to 64
EMA_NOISE = 0.01


# ------------------------------------------------------------------------------------------------
# MAE (models_mae.py: forward_encoder, random_masking, forward_decoder, forward_loss)
# ------------------------------------------------------------------------------------------------
def timm_block(dim, heads, mlp_ratio):
    return TimmBlock(dim=dim, num_heads=heads, mlp_ratio=mlp_ratio, qkv_bias=True,
                     norm_layer=partial(nn.LayerNorm, eps=EPS))


class MAEPretrain(nn.Module):
    def __init__(self, c):
        super().__init__()
        D, w, g = c["embed_dim"], c["decoder_embed_dim"], c["img_size"] // c["patch_size"]
        self.p, self.C, self.g = c["patch_size"], c["in_chans"], g
        self.patch_embed = PatchEmbed(c["in_chans"], D, c["patch_size"])
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(sincos_mae(D, g), requires_grad=False)
        self.blocks = nn.ModuleList([timm_block(D, c["num_heads"], c["mlp_ratio"]) for _ in range(c["depth"])])
        self.norm = nn.LayerNorm(D, eps=EPS)
        self.decoder_embed = nn.Linear(D, w)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, w))
        self.decoder_pos_embed = nn.Parameter(sincos_mae(w, g), requires_grad=False)
        self.decoder_blocks = nn.ModuleList([timm_block(w, c["decoder_num_heads"], c["mlp_ratio"])
                                             for _ in range(c["decoder_depth"])])
        self.decoder_norm = nn.LayerNorm(w, eps=EPS)
        self.decoder_pred = nn.Linear(w, c["patch_size"] ** 2 * c["in_chans"])

    def patchify(self, imgs):
        """(B,C,H,W) -> (B,N,p*p*C) in (p, q, c) order (MAE: einsum 'nchpwq->nhwpqc')."""
        B, p, g, C = imgs.shape[0], self.p, self.g, self.C
        x = imgs.reshape(B, C, g, p, g, p)
        return torch.einsum("nchpwq->nhwpqc", x).reshape(B, g * g, p * p * C)

    def forward(self, imgs, ids_shuffle, len_keep):
        B, N = ids_shuffle.shape
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        # encoder: pos on patches, keep the first len_keep of the shuffle, then cls (+ its zero pos)
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:]
        D = x.shape[-1]
        x = torch.gather(x, 1, ids_shuffle[:, :len_keep, None].expand(-1, -1, D))
        mask = torch.ones(B, N)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(B, -1, -1)
        x = torch.cat([cls, x], dim=1)
        for blk in self.blocks:
            x = blk(x)
        latent = self.norm(x)
        # decoder: embed, append mask tokens, unshuffle, re-prepend cls, + pos on every token
        y = self.decoder_embed(latent)
        w = y.shape[-1]
        tokens = torch.cat([y[:, 1:], self.mask_token.expand(B, N - len_keep, -1)], dim=1)
        tokens = torch.gather(tokens, 1, ids_restore[..., None].expand(-1, -1, w))
        y = torch.cat([y[:, :1], tokens], dim=1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            y = blk(y)
        pred = self.decoder_pred(self.decoder_norm(y))[:, 1:]
        # loss: per-patch normalized target (unbiased var over all p*p*C values, eps 1e-6)
        target = self.patchify(imgs)
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1.0e-6) ** 0.5
        per_patch = ((pred - target) ** 2).mean(dim=-1)
        loss = (per_patch * mask).sum() / mask.sum()
        return dict(loss=loss, pred=pred, target=target, mask=mask, latent=latent)


# ------------------------------------------------------------------------------------------------
# BootMAE (models/modeling_pretrain_bootmae.py; run_pretraining.py train_one_epoch; utils.py mask_to_index)
# ------------------------------------------------------------------------------------------------
class CrossAttention(nn.Module):
    """c_attn: q from the decoder tokens (q_bias), k/v from the context (no k bias, v_bias)."""

    def __init__(self, dim, c_dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        A = dim // num_heads * num_heads
        self.q = nn.Linear(dim, A, bias=False)
        self.kv = nn.Linear(c_dim, 2 * A, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(A))
        self.v_bias = nn.Parameter(torch.zeros(A))
        self.proj = nn.Linear(A, dim)

    def forward(self, x, c):
        q = F.linear(x, self.q.weight, self.q_bias)
        kv = F.linear(c, self.kv.weight, torch.cat([torch.zeros_like(self.v_bias), self.v_bias]))
        return self.proj(cross_attention_from_q_kv(q, kv, self.num_heads))


class DecodeBlock(nn.Module):
    """x += SelfAttn(norm1 x); x += CrossAttn(norm3 x, norm4 c); x += MLP(norm2 x)."""

    def __init__(self, dim, c_dim, num_heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=EPS)
        self.attn = QVAttention(dim, num_heads)
        self.norm3 = nn.LayerNorm(dim, eps=EPS)
        self.norm4 = nn.LayerNorm(c_dim, eps=EPS)
        self.c_attn = CrossAttention(dim, c_dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x, c):
        x = x + self.attn(self.norm1(x))
        x = x + self.c_attn(self.norm3(x), self.norm4(c))
        return x + self.mlp(self.norm2(x))


class PatchDeEmbed(nn.Module):
    """(B,N,w) tokens -> (B,w,g,g) -> ConvTranspose2d(w, C, p, stride p) -> (B,C,H,W)."""

    def __init__(self, dim, chans, patch):
        super().__init__()
        self.proj = nn.ConvTranspose2d(dim, chans, kernel_size=patch, stride=patch)

    def forward(self, x):
        B, N, w = x.shape
        g = math.isqrt(N)
        return self.proj(x.transpose(1, 2).reshape(B, w, g, g))


class BootMAEEncoderPart(nn.Module):
    """The encoder tensors (online and momentum): patch_embed, cls_token, pos_embed, blocks, norm."""

    def __init__(self, c):
        super().__init__()
        D, g = c["embed_dim"], c["img_size"] // c["patch_size"]
        self.patch_embed = PatchEmbed(c["in_chans"], D, c["patch_size"])
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(sincos_bootmae(D, g), requires_grad=False)
        self.blocks = nn.ModuleList([QVBlock(D, c["num_heads"], c["mlp_ratio"], EPS) for _ in range(c["depth"])])
        self.norm = nn.LayerNorm(D, eps=EPS)

    def tokens(self, imgs):
        x = self.patch_embed(imgs)
        return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed

    def full_image_target(self, imgs):
        """Momentum target: last block output on all tokens, no final norm, patch tokens only."""
        x = self.tokens(imgs)
        for blk in self.blocks:
            x = blk(x)
        return x[:, 1:]


class BootMAEPretrain(BootMAEEncoderPart):
    def __init__(self, c):
        super().__init__(c)
        D, w, H, g = c["embed_dim"], c["decoder_embed_dim"], c["num_heads"], c["img_size"] // c["patch_size"]
        self.fea_list = list(c["feature_layers"])
        self.de_pos_embed = nn.Parameter(sincos_bootmae(w, g), requires_grad=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, w))
        self.mask_token_1 = nn.Parameter(torch.zeros(1, 1, D))
        # pixel decoder (width w, the encoder's heads, context = block fea_list[0] output, width D)
        self.down = nn.Linear(D, w)
        self.decode_blocks = nn.ModuleList([DecodeBlock(w, D, H, c["mlp_ratio"]) for _ in range(c["decoder_depth"])])
        self.decode_norm = nn.LayerNorm(w, eps=EPS)
        self.lm_head = PatchDeEmbed(w, c["in_chans"], c["patch_size"])
        # feature decoder (width D, context = block fea_list[-1] output)
        self.down_1 = nn.Linear(D, D)
        self.decode_blocks_1 = nn.ModuleList([DecodeBlock(D, D, H, c["mlp_ratio"])
                                              for _ in range(c["feature_decoder_depth"])])
        self.decode_norm_1 = nn.LayerNorm(D, eps=EPS)
        self.lm_head_1 = nn.Linear(D, D)

    @staticmethod
    def _decoder(z, down, mask_token, table, blocks, norm, context, mask_idx, inv):
        """down(z) ++ (mask_token + table[mask_idx]), unshuffled to original order (cls at 0)."""
        y = down(z)
        B, w = y.shape[0], y.shape[-1]
        mtok = mask_token + torch.gather(table.expand(B, -1, -1), 1, mask_idx[..., None].expand(-1, -1, w))
        s = torch.gather(torch.cat([y, mtok], dim=1), 1, inv[..., None].expand(-1, -1, w))
        for blk in blocks:
            s = blk(s, context)
        return norm(s)

    def forward(self, imgs, ids_shuffle, num_mask):
        B, N = ids_shuffle.shape
        V = N - num_mask
        idx = torch.cat([torch.zeros(B, 1, dtype=torch.int64), ids_shuffle + 1], dim=1)   # cls stays first
        inv = torch.argsort(idx, dim=1)
        x = self.tokens(imgs)
        D = x.shape[-1]
        x = torch.gather(x, 1, idx[:, :1 + V, None].expand(-1, -1, D))
        feats = {}
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i in self.fea_list:
                feats[i] = x
        z = self.norm(x)
        mask_idx = idx[:, 1 + V:]
        s = self._decoder(z, self.down, self.mask_token, self.de_pos_embed, self.decode_blocks, self.decode_norm,
                          feats[self.fea_list[0]], mask_idx, inv)
        pixel_pred = self.lm_head(s[:, 1:])
        s1 = self._decoder(z, self.down_1, self.mask_token_1, self.pos_embed, self.decode_blocks_1,
                           self.decode_norm_1, feats[self.fea_list[-1]], mask_idx, inv)
        feature_pred = self.lm_head_1(s1[:, 1:])
        return dict(latent=z, pixel_pred=pixel_pred, feature_pred=feature_pred, pixel_tokens=s[:, 1:], inv=inv)


def bootmae_masks(ids_shuffle, num_mask, grid):
    """Appendix A: loss mask in original order and the --weight_mask neighbourhood weights."""
    B, N = ids_shuffle.shape
    V = N - num_mask
    base = torch.cat([torch.zeros(B, V), torch.ones(B, num_mask)], dim=1)
    loss_mask = torch.gather(base, 1, torch.argsort(ids_shuffle, dim=1))
    pooled = F.avg_pool2d(loss_mask.reshape(B, 1, grid, grid), 3, stride=1, padding=1, count_include_pad=True)
    weight = loss_mask * pooled.reshape(B, N) + loss_mask
    return loss_mask, weight


def pixel_target(imgs, p):
    """Per patch and channel: (x - mean) / sqrt(biased var + 1e-5), in image layout."""
    B, C, H, W = imgs.shape
    g = H // p
    x = imgs.reshape(B, C, g, p, g, p)
    mean = x.mean(dim=(3, 5), keepdim=True)
    var = x.var(dim=(3, 5), unbiased=False, keepdim=True)
    return ((x - mean) / (var + 1e-5).sqrt()).reshape(B, C, H, W)


def bootmae_losses(out, target_pix, target_feat, loss_mask, weight, p, lam):
    B, N = loss_mask.shape
    g = math.isqrt(N)
    w_pix = weight.reshape(B, 1, g, g).repeat_interleave(p, dim=2).repeat_interleave(p, dim=3)
    loss_pixel = (w_pix * (out["pixel_pred"] - target_pix) ** 2).mean() / loss_mask.mean()
    D = target_feat.shape[-1]
    ln0 = lambda t: F.layer_norm(t, (D,), eps=1e-6)  # noqa: E731
    loss_feature = (weight[..., None] * (ln0(target_feat) - ln0(out["feature_pred"])) ** 2).mean() / loss_mask.mean()
    return loss_pixel, loss_feature, loss_pixel + lam * loss_feature


def block_mask(rng, grid, count, min_patches, max_patches, min_aspect=0.3):
    """A BEiT-style block mask with exactly `count` ones (BootMAE masking_generator.py, scaled to the grid).

    Rectangles of random area in [min, cap] and log-uniform aspect in [0.3, 1/0.3] are added until
    `count` patches are covered; a rectangle must add at least one new patch and at most the
    remainder (cap = min(remainder, max_patches)).
    """
    mask = np.zeros((grid, grid), dtype=np.int64)
    lo_r, hi_r = math.log(min_aspect), math.log(1 / min_aspect)
    while mask.sum() < count:
        cap = min(count - int(mask.sum()), max_patches)
        while True:
            area = rng.uniform(min(min_patches, cap), cap)
            aspect = math.exp(rng.uniform(lo_r, hi_r))
            h = int(round(math.sqrt(area * aspect)))
            w = int(round(math.sqrt(area / aspect)))
            if not (1 <= h < grid and 1 <= w < grid):
                continue
            top = int(rng.integers(0, grid - h + 1))
            left = int(rng.integers(0, grid - w + 1))
            new = int((1 - mask[top:top + h, left:left + w]).sum())
            if 0 < new <= cap:
                mask[top:top + h, left:left + w] = 1
                break
    assert mask.sum() == count
    return mask


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def trainable_grads(model):
    return {"grad." + n: p.grad for n, p in model.named_parameters() if p.requires_grad}


def assert_nonzero_grads(model, label):
    zero = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().max() > 0)]
    assert not zero, f"{label}: zero or missing gradients for {zero}"
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert all(p.grad is None for n, p in model.named_parameters() if not p.requires_grad), frozen
    mags = sorted((p.grad.abs().max().item(), n) for n, p in model.named_parameters() if p.requires_grad)
    print(f"{label}: gradient max-abs per tensor from {mags[0][0]:.2e} ({mags[0][1]}) to {mags[-1][0]:.2e} "
          f"({mags[-1][1]}); frozen: {', '.join(frozen)}")
    return frozen


def float64_discrepancy(run32, run64, grads32, grads64):
    """Max relative errors of the float32 reference against the same computation in float64."""
    loss_err = max(abs(run32[k].item() - run64[k].item()) / abs(run64[k].item()) for k in run32)
    grad_err, worst = 0.0, None
    for k in grads32:
        g64 = grads64[k]
        e = ((grads32[k].double() - g64).abs().max() / g64.abs().max()).item()
        if e > grad_err:
            grad_err, worst = e, k
    return loss_err, grad_err, worst


def state_dict_of(model):
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------------
def mae_tiny():
    s = seed(401)
    c = MAE
    N = (c["img_size"] // c["patch_size"]) ** 2
    len_keep = int(N * (1 - c["mask_ratio"]))
    model = MAEPretrain(c)
    randomize_(model)
    assert torch.equal(model.pos_embed, sincos_mae(c["embed_dim"], c["img_size"] // c["patch_size"]))
    images = rand(BATCH, c["in_chans"], c["img_size"], c["img_size"])
    ids_shuffle = torch.stack([torch.randperm(N) for _ in range(BATCH)]).to(torch.int64)

    out = model(images, ids_shuffle, len_keep)
    out["loss"].backward()
    frozen = assert_nonzero_grads(model, "mae_tiny")
    assert frozen == ["pos_embed", "decoder_pos_embed"], frozen
    grads = trainable_grads(model)

    P = c["patch_size"] ** 2 * c["in_chans"]
    assert out["latent"].shape == (BATCH, 1 + len_keep, c["embed_dim"])
    assert out["pred"].shape == out["target"].shape == (BATCH, N, P)
    assert out["mask"].shape == (BATCH, N) and out["mask"].sum() == BATCH * (N - len_keep)
    # independent check of the loss: sum over removed patches / (count * P)
    ref = ((out["pred"] - out["target"]) ** 2).sum(-1)[out["mask"].bool()].sum() / (BATCH * (N - len_keep) * P)
    print(f"mae_tiny: loss {out['loss'].item():.9g} (direct sum form differs by {abs(ref - out['loss']).item():.2e})")

    # float64 replay
    m64 = MAEPretrain(c).double()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    o64 = m64(images.double(), ids_shuffle, len_keep)
    o64["loss"].backward()
    le, ge, worst = float64_discrepancy({"loss": out["loss"]}, {"loss": o64["loss"]}, grads, trainable_grads(m64))
    print(f"mae_tiny: float32 vs float64: loss rel {le:.2e}, worst grad rel-to-max {ge:.2e} ({worst})")

    name = "pretrain/mae_tiny"
    cfg = {"objective": "mae", "img_size": c["img_size"], "patch_size": c["patch_size"], "in_chans": c["in_chans"],
           "embed_dim": c["embed_dim"], "depth": c["depth"], "num_heads": c["num_heads"], "mlp_ratio": c["mlp_ratio"],
           "qkv_bias": "qkv", "layer_norm_eps": EPS, "global_pool": "cls", "pos_embed": "sincos_mae",
           "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "decoder_embed_dim": c["decoder_embed_dim"],
           "decoder_depth": c["decoder_depth"], "decoder_num_heads": c["decoder_num_heads"],
           "mask_ratio": c["mask_ratio"], "norm_pix_loss": True}
    write_json(f"{name}/config.json", cfg)
    sd = state_dict_of(model)
    save(f"{name}/model.safetensors", sd, seed=s)
    io = dict(images=images, ids_shuffle=ids_shuffle, mask=out["mask"], latent=out["latent"], pred=out["pred"],
              target=out["target"], loss=out["loss"].reshape(1), **grads)
    save(f"{name}/io.safetensors", io, seed=s,
         meta={"len_keep": str(len_keep), "norm_pix_loss": "true", "norm_pix_eps": "1e-06",
               "norm_pix_var": "unbiased", "patch_order": "p,q,c", "mask": "1 = removed"})
    return model, cfg, s


def bootmae_tiny():
    s = seed(402)
    c = BOOT
    g = c["img_size"] // c["patch_size"]
    N, M, p, D = g * g, c["num_mask"], c["patch_size"], c["embed_dim"]
    V = N - M
    model = BootMAEPretrain(c)
    randomize_(model)
    assert torch.equal(model.pos_embed, sincos_bootmae(D, g))
    assert torch.equal(model.de_pos_embed, sincos_bootmae(c["decoder_embed_dim"], g))
    # momentum encoder: the online encoder plus noise (frozen tables unchanged)
    ema = BootMAEEncoderPart(c)
    with torch.no_grad():
        own = dict(model.named_parameters())
        for n, q in ema.named_parameters():
            q.copy_(own[n])
            if q.requires_grad:
                q.add_(torch.randn_like(q) * EMA_NOISE)
    for q in ema.parameters():
        q.requires_grad_(False)
    ema.eval()

    images = rand(BATCH, c["in_chans"], c["img_size"], c["img_size"])
    # masking (utils.py mask_to_index): block mask, key = mask - U[0,1), argsort, roll by r (one r for the batch)
    rng = np.random.default_rng(s)
    blk = torch.from_numpy(np.stack([block_mask(rng, g, BOOT_BLOCK_PATCHES, BOOT_BLOCK_MIN, BOOT_BLOCK_MAX).reshape(-1)
                                     for _ in range(BATCH)]).astype(np.float32))
    noise = torch.rand(BATCH, N)
    ids_shuffle = torch.argsort(blk - noise, dim=1).roll(BOOT_ROLL, dims=1).to(torch.int64)
    for b in range(BATCH):
        vis_in_block = int(blk[b, ids_shuffle[b, :V]].sum())
        assert vis_in_block == BOOT_ROLL, vis_in_block
    loss_mask, weight = bootmae_masks(ids_shuffle, M, g)
    scattered = torch.zeros(BATCH, N).scatter_(1, ids_shuffle[:, V:], 1.0)
    assert torch.equal(loss_mask, scattered)
    # weights from the definition: 1 + (masked patches in the zero-padded 3x3 neighbourhood)/9
    lm = loss_mask.reshape(BATCH, g, g)
    for b in range(BATCH):
        for i in range(g):
            for j in range(g):
                nb = lm[b, max(i - 1, 0):i + 2, max(j - 1, 0):j + 2].sum()
                expect = (1 + nb / 9) * lm[b, i, j]
                assert abs(weight[b, i * g + j] - expect) < 1e-6

    target_pix = pixel_target(images, p)
    with torch.no_grad():
        target_feat = ema.full_image_target(images)

    out = model(images, ids_shuffle, M)
    loss_pixel, loss_feature, loss_total = bootmae_losses(out, target_pix, target_feat, loss_mask, weight, p,
                                                          BOOT_LAMBDA)
    loss_total.backward()
    frozen = assert_nonzero_grads(model, "bootmae_tiny")
    assert frozen == ["pos_embed", "de_pos_embed"], frozen
    grads = trainable_grads(model)

    with torch.no_grad():
        # unweighted variant (no --weight_mask): weight = loss_mask
        lp_u, lf_u, lt_u = bootmae_losses(out, target_pix, target_feat, loss_mask, loss_mask, p, BOOT_LAMBDA)
        # check the unshuffle elementwise: decoder token 0 = down(z) of cls, token 1+n = down(z) of
        # visible patch n (no decoder position), or mask_token + de_pos_embed[1+n] for a masked n
        y = model.down(out["latent"])
        mt = model.mask_token + torch.gather(model.de_pos_embed.expand(BATCH, -1, -1), 1,
                                             (ids_shuffle[:, V:] + 1)[..., None].expand(-1, -1, y.shape[-1]))
        s0 = torch.gather(torch.cat([y, mt], dim=1), 1, out["inv"][..., None].expand(-1, -1, y.shape[-1]))
        for b in range(BATCH):
            assert torch.equal(s0[b, 0], y[b, 0])
            for k in range(N):
                n = int(ids_shuffle[b, k])
                want = y[b, 1 + k] if k < V else model.mask_token[0, 0] + model.de_pos_embed[0, 1 + n]
                assert torch.equal(s0[b, 1 + n], want), (b, k, n)
        # check: pixel loss on (c, p, q) patch vectors with the ConvTranspose (PatchDeEmbed) as a Linear
        Wt, bt = model.lm_head.proj.weight, model.lm_head.proj.bias
        W_lin = Wt.reshape(Wt.shape[0], -1).t()                      # [(c,p,q), k] = Wt[k,c,p,q]
        b_lin = bt.repeat_interleave(p * p)
        P_vec = out["pixel_tokens"] @ W_lin.t() + b_lin              # (B, N, C*p*p)
        cpq = lambda im: im.reshape(BATCH, -1, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(BATCH, N, -1)  # noqa
        layout_err = (P_vec - cpq(out["pixel_pred"])).abs().max().item()
        T_vec = cpq(target_pix)
        # the target from (c,p,q) patch vectors directly: per (patch, channel) group of p*p values
        tv = cpq(images).reshape(BATCH, N, -1, p * p)
        tv = ((tv - tv.mean(-1, keepdim=True)) / (tv.var(-1, unbiased=False, keepdim=True) + 1e-5).sqrt())
        target_err = (tv.reshape(BATCH, N, -1) - T_vec).abs().max().item()
        lp_vec = (weight[..., None] * (P_vec - T_vec) ** 2).sum() / (BATCH * M * T_vec.shape[-1])
        print(f"bootmae_tiny: pixel loss image layout {loss_pixel.item():.9g}, (c,p,q)-vector Linear form "
              f"{lp_vec.item():.9g}, difference {abs(lp_vec - loss_pixel).item():.2e} "
              f"(prediction layouts differ by {layout_err:.2e}, targets by {target_err:.2e})")
        assert abs(lp_vec - loss_pixel).item() <= 1e-6 * loss_pixel.item()
        lf_sum = (weight[..., None] * (F.layer_norm(target_feat, (D,), eps=1e-6)
                                       - F.layer_norm(out["feature_pred"], (D,), eps=1e-6)) ** 2).sum() / (BATCH * M * D)
        assert abs(lf_sum - loss_feature).item() <= 1e-6 * loss_feature.item()

    # float64 replay (online model, EMA target, losses, gradients)
    m64 = BootMAEPretrain(c).double()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    e64 = BootMAEEncoderPart(c).double()
    e64.load_state_dict({k: v.double() for k, v in ema.state_dict().items()})
    with torch.no_grad():
        tf64 = e64.full_image_target(images.double())
    o64 = m64(images.double(), ids_shuffle, M)
    l64 = bootmae_losses(o64, pixel_target(images.double(), p), tf64, loss_mask.double(), weight.double(), p,
                         BOOT_LAMBDA)
    l64[2].backward()
    le, ge, worst = float64_discrepancy(dict(p=loss_pixel, f=loss_feature, t=loss_total),
                                        dict(p=l64[0], f=l64[1], t=l64[2]), grads, trainable_grads(m64))
    print(f"bootmae_tiny: float32 vs float64: worst loss rel {le:.2e}, worst grad rel-to-max {ge:.2e} ({worst})")
    print(f"bootmae_tiny: loss_pixel {loss_pixel.item():.9g}, loss_feature {loss_feature.item():.9g}, "
          f"loss_total {loss_total.item():.9g}; unweighted {lp_u.item():.9g}, {lf_u.item():.9g}, {lt_u.item():.9g}")

    # shapes
    H = c["img_size"]
    assert out["latent"].shape == (BATCH, 1 + V, D)
    assert out["pixel_pred"].shape == target_pix.shape == (BATCH, c["in_chans"], H, H)
    assert out["feature_pred"].shape == target_feat.shape == (BATCH, N, D)
    assert loss_mask.shape == weight.shape == (BATCH, N)

    name = "pretrain/bootmae_tiny"
    cfg = {"objective": "bootmae", "img_size": c["img_size"], "patch_size": p, "in_chans": c["in_chans"],
           "embed_dim": D, "depth": c["depth"], "num_heads": c["num_heads"], "mlp_ratio": c["mlp_ratio"],
           "qkv_bias": "qv", "layer_norm_eps": EPS, "global_pool": "cls", "pos_embed": "sincos_bootmae",
           "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "decoder_embed_dim": c["decoder_embed_dim"],
           "decoder_depth": c["decoder_depth"], "decoder_num_heads": c["num_heads"],
           "feature_decoder_depth": c["feature_decoder_depth"], "feature_layers": c["feature_layers"],
           "num_mask": M}
    write_json(f"{name}/config.json", cfg)
    sd = state_dict_of(model)
    ema_sd = state_dict_of(ema)
    full = dict(sd)
    full.update({"model_ema." + k: v for k, v in ema_sd.items()})
    save(f"{name}/model.safetensors", full, seed=s, meta={"ema_noise_std": repr(EMA_NOISE)})
    io = dict(images=images, ids_shuffle=ids_shuffle, block_mask=blk, mask_noise=noise, loss_mask=loss_mask,
              loss_weight=weight, latent=out["latent"], pixel_pred=out["pixel_pred"], pixel_target=target_pix,
              feature_pred=out["feature_pred"], feature_target=target_feat, loss_pixel=loss_pixel.reshape(1),
              loss_feature=loss_feature.reshape(1), loss_total=loss_total.reshape(1),
              loss_pixel_unweighted=lp_u.reshape(1), loss_feature_unweighted=lf_u.reshape(1),
              loss_total_unweighted=lt_u.reshape(1), **grads)
    save(f"{name}/io.safetensors", io, seed=s,
         meta={"lambda": repr(BOOT_LAMBDA), "roll": str(BOOT_ROLL), "num_mask": str(M),
               "block_patches": str(BOOT_BLOCK_PATCHES), "pixel_target_eps": "1e-05", "feature_ln_eps": "1e-06",
               "weight_mask": "loss_mask * (1 + avgpool3x3(loss_mask, zero pad, /9))",
               "feature_layers": json.dumps(c["feature_layers"])})
    return model, ema, cfg, s


# ------------------------------------------------------------------------------------------------
# converter round trip
# ------------------------------------------------------------------------------------------------
def run_converter(args, expect_ok=True):
    r = subprocess.run([sys.executable, str(CONVERTER)] + [str(a) for a in args], capture_output=True, text=True)
    if expect_ok and r.returncode != 0:
        raise RuntimeError(f"converter failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    if not expect_ok:
        assert r.returncode != 0, f"converter accepted {args}"
        msg = r.stderr.strip().splitlines()[-1]
        assert msg.startswith("error: ") and "Traceback" not in r.stderr, r.stderr
        return msg
    return r


def check_converted(out_dir, expected_tensors, expected_cfg, label):
    got = load_file(str(out_dir / "model.safetensors"))
    assert sorted(got) == sorted(expected_tensors), (label, set(got) ^ set(expected_tensors))
    for k, v in expected_tensors.items():
        assert got[k].dtype == torch.float32 and torch.equal(got[k], v), (label, k)
    cfg = json.loads((out_dir / "config.json").read_text())
    assert cfg == expected_cfg, (label, cfg, expected_cfg)
    print(f"converter {label}: {len(got)} tensors identical, config identical")


def converter_round_trip(mae_model, mae_cfg, boot_model, ema, boot_cfg):
    import argparse
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # BootMAE: a training checkpoint with the online model, a full-network EMA (as timm ModelEma
        # saves it: encoder + decoders), optimizer placeholder and the argparse Namespace
        boot_sd = state_dict_of(boot_model)
        ema_full = dict(boot_sd)
        ema_full.update(state_dict_of(ema))
        torch.save({"model": boot_sd, "model_ema": ema_full, "epoch": 3, "optimizer": {"state": {}, "param_groups": []},
                    "args": argparse.Namespace(model="bootmae_tiny", mask_num=boot_cfg["num_mask"])},
                   tmp / "bootmae_tiny.pth")
        mae_sd = state_dict_of(mae_model)
        torch.save({"model": mae_sd, "epoch": 3, "args": argparse.Namespace(model="mae_tiny")}, tmp / "mae_tiny.pth")

        out_b = WRITER.out / "pretrain" / "converted_bootmae"
        out_m = WRITER.out / "pretrain" / "converted_mae"
        print(run_converter([tmp / "bootmae_tiny.pth", out_b, "--num-heads", boot_cfg["num_heads"]]).stdout.strip())
        print(run_converter([tmp / "mae_tiny.pth", out_m, "--num-heads", mae_cfg["num_heads"],
                             "--decoder-num-heads", mae_cfg["decoder_num_heads"]]).stdout.strip())
        expected_b = dict(boot_sd)
        expected_b.update({"model_ema." + k: v for k, v in state_dict_of(ema).items()})
        check_converted(out_b, expected_b, boot_cfg, "converted_bootmae")
        check_converted(out_m, mae_sd, mae_cfg, "converted_mae")
        fixture = load_file(str(WRITER.out / "pretrain" / "bootmae_tiny" / "model.safetensors"))
        assert sorted(fixture) == sorted(expected_b) and all(torch.equal(fixture[k], expected_b[k]) for k in fixture)
        for d in (out_b, out_m):
            WRITER.written += [d / "config.json", d / "model.safetensors"]

        # other layouts (temporary only): bare state dict, 'module' key with a DDP prefix, encoder-only
        # MAE release (keys 'model' with encoder tensors only), --objective check, error messages
        enc_keys = [k for k in mae_sd if k.startswith(("cls_token", "pos_embed", "patch_embed.", "blocks.", "norm."))]
        torch.save({k: mae_sd[k] for k in enc_keys}, tmp / "bare_encoder.pth")
        run_converter([tmp / "bare_encoder.pth", tmp / "enc", "--num-heads", mae_cfg["num_heads"]])
        enc_cfg = json.loads((tmp / "enc" / "config.json").read_text())
        expect_enc = {k: v for k, v in mae_cfg.items() if k in (
            "img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads", "mlp_ratio", "qkv_bias",
            "layer_norm_eps", "global_pool", "pos_embed", "mean", "std")}
        assert enc_cfg == expect_enc, (enc_cfg, expect_enc)
        check_converted(tmp / "enc", {k: mae_sd[k] for k in enc_keys}, expect_enc, "bare encoder-only MAE")
        torch.save({"module": {"module." + k: v for k, v in boot_sd.items()}}, tmp / "ds.pth")
        run_converter([tmp / "ds.pth", tmp / "ds", "--num-heads", boot_cfg["num_heads"]])
        check_converted(tmp / "ds", boot_sd, boot_cfg, "'module' + DDP prefix, no EMA")
        run_converter([tmp / "bootmae_tiny.pth", tmp / "noema", "--num-heads", boot_cfg["num_heads"], "--no-ema"])
        check_converted(tmp / "noema", boot_sd, boot_cfg, "--no-ema")
        (tmp / "junk.pth").write_bytes(b"this is not a checkpoint\n" * 4)
        errors = [
            run_converter([tmp / "junk.pth", tmp / "x"], expect_ok=False),
            run_converter([tmp / "missing.pth", tmp / "x"], expect_ok=False),
            run_converter([tmp / "bootmae_tiny.pth", tmp / "x"], expect_ok=False),          # 24 wide: no default heads
            run_converter([tmp / "bootmae_tiny.pth", tmp / "x", "--num-heads", "4"], expect_ok=False),  # q_bias check
            run_converter([tmp / "mae_tiny.pth", tmp / "x", "--objective", "bootmae", "--num-heads", "3"],
                          expect_ok=False),
        ]
        torch.save({"optimizer": {"state": {}}, "epoch": 1}, tmp / "noweights.pth")
        errors.append(run_converter([tmp / "noweights.pth", tmp / "x"], expect_ok=False))
        for e in errors:
            print(f"converter error check: {e}")


def main():
    mae_model, mae_cfg, _ = mae_tiny()
    boot_model, ema, boot_cfg, _ = bootmae_tiny()
    converter_round_trip(mae_model, mae_cfg, boot_model, ema, boot_cfg)
    sizes = {}
    for path in WRITER.written:
        d = path.parent.name
        sizes[d] = sizes.get(d, 0) + path.stat().st_size
    total = WRITER.check(max_keys=12)
    for d, n in sorted(sizes.items()):
        print(f"  {d:24s} {n / 1024:7.1f} KiB")
    # budget: ~600 KiB per directory (bootmae_tiny, with its momentum encoder, is ~700), 1.5 MiB in all
    assert all(n < 720 * 1024 for n in sizes.values()), sizes
    assert total < 1536 * 1024, total


if __name__ == "__main__":
    main()
