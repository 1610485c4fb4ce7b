"""One PeCo stage-2 pretraining step in PyTorch, equivalent to ours (bootmae-bench train-step --objective peco).

Stage 2 is BEiT's masked image modeling with a frozen tokenizer's codes as targets. The network is
the reference `MaskedImageModel` of tools/reference/make_peco_fixtures.py (written after the
official microsoft/unilm beit/ code; PeCoParityTests check our network against it) at the tiny
preset's sizes with PeCo's defaults (ViT 128x6, 4 heads, patch 4, 28 px, 1 channel, q/v biases,
layer scale 0.1, learned positions; lm_head to K = 512 codes), initialised as BEiT initialises it
(`beit_init_`). A step follows beit/engine_for_pretraining.py `train_one_epoch`: the frozen
tokenizer's codes of the batch under `torch.no_grad()` (as `d_vae.get_codebook_indices`), the
forward with the masked patches replaced by the mask token, `lm_head` on the masked positions only,
cross-entropy against their codes and the arg-max accuracy (`mlm_acc`), backward, then
torch.optim.AdamW as run_beit_pretraining.py sets it up (betas 0.9/0.98, weight decay 0.05 except
biases, 1-D tensors, pos_embed and cls_token; no gradient clipping, no EMA). The BEiT block masks
(20 of 49 patches: PeCo's default ratio 0.4, smallest block 4) are drawn before the timed steps, as
BEiT's data loader draws them in its workers; ours draws them inside the step.

The tokenizer is the part of our PeCoTokenizer that stage 2 runs (Sources/Objectives/PeCo/
PeCoTokenizer.swift `codes`), with `bootmae-train pretrain --objective peco-tokenizer --preset tiny`'s
sizes: MAE's ViT encoder (fixed sin-cos positions, timm `Block`s with a qkv bias, 128 wide, 4 blocks,
final norm), `quant_proj` to 32, and the nearest of 512 codes, found as taming-transformers'
`VectorQuantizer` (VQGAN, the tokenizer family PeCo builds on) finds it: |z|^2 + |e|^2 - 2 z.e by one
matrix product, then argmin. The weights are random and the codebook is drawn from the encodings of
other random images (the data initialisation ours starts from); its decoder is written only so that
the directory is a complete tokenizer export (stage 2 never runs it).
"""

import contextlib
import json
import math
import os
import random
import sys
from functools import partial
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "reference"))
# Importing the reference sets torch to one thread (the caller sets the threads afterwards).
import make_peco_fixtures as ref  # noqa: E402
from common import PatchEmbed, TimmBlock, randomize_, sincos_mae  # noqa: E402

from models import SEED  # noqa: E402

# ModelPreset.tiny for 1-channel data with PeCo's defaults (Sources/Objectives/PeCo/PeCoObjective.swift
# `configure`; the vocabulary is the tokenizer's codebook).
PECO_TINY = dict(img_size=28, patch_size=4, in_chans=1, embed_dim=128, depth=6, num_heads=4, mlp_ratio=4.0, vocab_size=512)
# PeCoTokenizer.configure's defaults at the same preset: --tokenizer-depth 4, --codebook-size 512, --code-dim 32.
TOKENIZER_TINY = dict(embed_dim=128, depth=4, num_heads=4, mlp_ratio=4.0, codebook_size=512, code_dim=32,
                      decoder_embed_dim=128, decoder_depth=4, decoder_num_heads=4)
MASK_RATIO = 0.4                                                    # PeCo.defaultMaskRatio
NUM_MASK = round(MASK_RATIO * (PECO_TINY["img_size"] // PECO_TINY["patch_size"]) ** 2)   # 20 of 49
MIN_BLOCK = max(1, round(16 * 49 / 196))                            # BEiT's 16 of 196 as the same share: 4
LR = 1e-4                     # fixed, small: many timed steps must not blow up random weights (same as ours)
BETAS, WEIGHT_DECAY = (0.9, 0.98), 0.05
NO_DECAY = {"pos_embed", "cls_token"}                               # modeling_pretrain.py `no_weight_decay`
CHECK_IMAGES = 8
EPS = 1e-6


class TokenizerEncoder(nn.Module):
    """What stage 2 runs of our tokenizer: patch_embed, cls_token, MAE's fixed sin-cos pos_embed, blocks,
    norm, quant_proj on the patch tokens, and the nearest code of the codebook (our tensor names)."""

    def __init__(self, c, t):
        super().__init__()
        d, grid = t["embed_dim"], c["img_size"] // c["patch_size"]
        self.patch_embed = PatchEmbed(c["in_chans"], d, c["patch_size"])
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.register_buffer("pos_embed", sincos_mae(d, grid))
        self.blocks = nn.ModuleList([TimmBlock(d, t["num_heads"], mlp_ratio=t["mlp_ratio"], qkv_bias=True,
                                               norm_layer=partial(nn.LayerNorm, eps=EPS)) for _ in range(t["depth"])])
        self.norm = nn.LayerNorm(d, eps=EPS)
        self.quant_proj = nn.Linear(d, t["code_dim"])
        self.register_buffer("codebook", torch.zeros(t["codebook_size"], t["code_dim"]))

    def encode(self, images):
        """z_e: (B * N, code_dim)."""
        x = self.patch_embed(images)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        z = self.quant_proj(self.norm(x)[:, 1:])
        return z.reshape(-1, z.shape[-1])

    def distances(self, z):
        """Squared distance of every row to every code (taming-transformers VectorQuantizer)."""
        e = self.codebook
        return z.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * z @ e.t()

    @torch.no_grad()
    def codes(self, images):
        """(B, N) code grid of each image."""
        return self.distances(self.encode(images)).argmin(1).reshape(images.shape[0], -1)


class TokenizerDecoder(nn.Module):
    """The rest of a tokenizer export (post_quant, decoder blocks, norm, pixel head), under our names."""

    def __init__(self, c, t):
        super().__init__()
        d = t["decoder_embed_dim"]
        self.post_quant = nn.Linear(t["code_dim"], d)
        self.decoder_blocks = nn.ModuleList([TimmBlock(d, t["decoder_num_heads"], mlp_ratio=t["mlp_ratio"], qkv_bias=True,
                                                       norm_layer=partial(nn.LayerNorm, eps=EPS)) for _ in range(t["decoder_depth"])])
        self.decoder_norm = nn.LayerNorm(d, eps=EPS)
        self.decoder_pred = nn.Linear(d, c["patch_size"] ** 2 * c["in_chans"])


class TorchPeCoStep:
    def __init__(self, batch, pool_batches=4):
        c, t = PECO_TINY, TOKENIZER_TINY
        self.grid = c["img_size"] // c["patch_size"]
        torch.manual_seed(SEED)
        self.model = ref.MaskedImageModel(c)
        self.model.beit_init_()
        self.tokenizer = TokenizerEncoder(c, t)
        randomize_(self.tokenizer)
        self.tokenizer.requires_grad_(False).eval()
        gen = torch.Generator().manual_seed(SEED + 7)
        self.images = torch.randn(batch, c["in_chans"], c["img_size"], c["img_size"], generator=gen)
        with torch.no_grad():   # the codebook from other images' encodings, as ours starts from the first batch's
            other = torch.randn(max(batch, 16), c["in_chans"], c["img_size"], c["img_size"], generator=gen)
            z = self.tokenizer.encode(other)
            self.tokenizer.codebook.copy_(z[torch.randperm(z.shape[0], generator=gen)[:t["codebook_size"]]])
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        no_decay = lambda n, p: p.ndim == 1 or n.endswith(".bias") or n in NO_DECAY  # noqa: E731 (get_parameter_groups)
        self.opt = torch.optim.AdamW([{"params": [p for n, p in named if not no_decay(n, p)], "weight_decay": WEIGHT_DECAY},
                                      {"params": [p for n, p in named if no_decay(n, p)], "weight_decay": 0.0}],
                                     lr=LR, betas=BETAS, eps=1e-8)
        rng = random.Random(SEED)
        self.mask_pool = [torch.stack([ref.block_mask(rng, self.grid, self.grid, NUM_MASK, MIN_BLOCK) for _ in range(batch)])
                          for _ in range(pool_batches)]
        self.steps = 0

    def losses(self, images, masks):
        """engine_for_pretraining.py: the codes under no_grad, the masked prediction, its loss and accuracy."""
        labels = self.tokenizer.codes(images)[masks]
        logits = self.model(images, masks)
        return {"loss": F.cross_entropy(logits, labels), "mlm_acc": (logits.argmax(-1) == labels).float().mean()}

    def update(self):
        """AdamW (a method of its own: torch_compiled.py compiles it)."""
        self.opt.step()

    def step(self):
        masks = self.mask_pool[self.steps % len(self.mask_pool)]
        self.opt.zero_grad(set_to_none=True)
        loss = self.losses(self.images, masks)["loss"]
        loss.backward()
        self.update()
        self.steps += 1
        if not torch.isfinite(loss):
            raise RuntimeError(f"the PyTorch PeCo loss became {loss.item()} at step {self.steps}")

    def check_batch(self):
        """Arguments of `losses` for a full timed batch (torch_compiled.py's same-loss check)."""
        return self.images, self.mask_pool[0]

    @contextlib.contextmanager
    def unchanged(self):
        """`losses` changes no state."""
        yield

    def write_tokenizer(self, out_dir):
        """The tokenizer as an export of `bootmae-train pretrain --objective peco-tokenizer` (pixel-only:
        lambda_perceptual 0, so it names no perceptual network) that `--tokenizer` loads."""
        from safetensors.torch import save_file
        c, t = PECO_TINY, TOKENIZER_TINY
        out_dir.mkdir(parents=True, exist_ok=True)
        decoder = TokenizerDecoder(c, t)
        randomize_(decoder)
        tensors = {k: v for k, v in self.tokenizer.state_dict().items() if k != "codebook"}
        tensors.update(decoder.state_dict())
        k = t["codebook_size"]
        tensors.update({"quantizer.codebook": self.tokenizer.codebook, "quantizer.usage": torch.ones(k),
                        "quantizer.sums": self.tokenizer.codebook.clone(), "quantizer.health": torch.zeros(2)})
        save_file({n: v.detach().contiguous() for n, v in tensors.items()}, str(out_dir / "model.safetensors"))
        config = {"objective": "peco-tokenizer", "img_size": c["img_size"], "patch_size": c["patch_size"],
                  "in_chans": c["in_chans"], "embed_dim": t["embed_dim"], "depth": t["depth"], "num_heads": t["num_heads"],
                  "mlp_ratio": t["mlp_ratio"], "qkv_bias": "qkv", "layer_norm_eps": EPS, "global_pool": "cls",
                  "mean": [0.5], "std": [0.5], "pos_embed": "sincos_mae", "codebook_size": k, "code_dim": t["code_dim"],
                  "decoder_embed_dim": t["decoder_embed_dim"], "decoder_depth": t["decoder_depth"],
                  "decoder_num_heads": t["decoder_num_heads"], "lambda_perceptual": 0.0}
        (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    def write_directory(self, out_dir):
        """The tokenizer (`out_dir/tokenizer`), the stage-2 network as a pretraining directory naming it
        (config.json + model.safetensors) for `bootmae-train-step --objective peco --model-dir`, and
        check.safetensors: images, masks and this tokenizer's codes. The loss of the untouched
        network must be near ln K (BEiT's init makes the logits nearly equal)."""
        from safetensors.torch import save_file
        c = PECO_TINY
        tokenizer_dir = out_dir / "tokenizer"
        self.write_tokenizer(tokenizer_dir)
        save_file({k: v.detach().contiguous() for k, v in self.model.state_dict().items()}, str(out_dir / "model.safetensors"))
        config = {"objective": "peco", "img_size": c["img_size"], "patch_size": c["patch_size"], "in_chans": c["in_chans"],
                  "embed_dim": c["embed_dim"], "depth": c["depth"], "num_heads": c["num_heads"], "mlp_ratio": c["mlp_ratio"],
                  "qkv_bias": "qv", "layer_norm_eps": EPS, "global_pool": "cls", "mean": [0.5], "std": [0.5],
                  "pos_embed": "checkpoint", "layer_scale_init": ref.LAYER_SCALE, "vocab_size": c["vocab_size"],
                  "num_mask_patches": NUM_MASK, "tokenizer": os.path.abspath(tokenizer_dir)}
        (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        images, masks = self.images[:CHECK_IMAGES].clone(), self.mask_pool[0][:CHECK_IMAGES]
        with torch.no_grad():
            out = self.losses(images, masks)
            distances = self.tokenizer.distances(self.tokenizer.encode(images))
        codes = distances.argmin(1)
        # How far the second-nearest code is behind the nearest, relative to the distance: engines that sum in
        # different orders pick the same codes when this is far above float32's rounding (~1e-6).
        two = distances.topk(2, dim=1, largest=False).values
        margin = float(((two[:, 1] - two[:, 0]) / two[:, 1].abs().clamp_min(1e-12)).min())
        ln_k = math.log(c["vocab_size"])
        if abs(out["loss"].item() - ln_k) > 0.05:
            raise RuntimeError(f"the PeCo loss at BEiT's init is {out['loss'].item():.4f}, not near ln K = {ln_k:.4f}")
        save_file({"images": images.contiguous(), "masks": masks.to(torch.int64).contiguous(),
                   "codes": codes.reshape(CHECK_IMAGES, -1).to(torch.int64).contiguous()}, str(out_dir / "check.safetensors"))
        return {"loss": out["loss"].item(), "mlm_acc": out["mlm_acc"].item(), "ln_k": ln_k, "code_margin": margin,
                "codes_used": int(codes.unique().numel())}
