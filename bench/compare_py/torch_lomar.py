"""One LoMaR pretraining step in PyTorch, equivalent to ours (bootmae-bench train-step --objective lomar).

The network is the official junchen14/LoMaR `models_lomar.MaskedAutoencoderViT`, imported by
tools/reference/make_lomar_fixtures.py (the modules LoMaRTests check our network against), at the
tiny preset's sizes (ViT 128x6, 4 heads, patch 4, 28 px, 1 channel, iRPE on the keys; window 4 of the
7x7 grid, 4 windows per image, 12 of a window's 16 patches masked (mask ratio 0.75), standardized pixel target). A step
follows the official `forward(imgs, window_size, num_window, mask_ratio)`: the windows (one
`randperm` of tops and one of lefts for the whole batch) and each row's masked patches (argsort of
uniform noise) drawn inside the step, rows paired as the official code pairs them (row r: image
r mod N, window r mod M), patch embedding, mask token, encoder blocks, norm, `encoder_pred`, the
official `forward_loss`, backward, then torch.optim.AdamW as main_pretrain.py sets it up (betas
0.9/0.95, weight decay 0.05 except biases and 1-D tensors). LoMaR has no EMA.

`losses` takes the draws as arguments (so the same-loss check and torch.compile's can give them) and
writes out `forward_encoder` after its draws; `write_directory` checks it against the official
`forward` on the same random stream before anything is compared with ours.
"""

import argparse
import contextlib
import json
import os
import sys
from functools import partial
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "reference"))
# Importing the reference sets torch to one thread (the caller sets the threads afterwards).
import make_lomar_fixtures as ref  # noqa: E402

from models import SEED  # noqa: E402

# ModelPreset.tiny for 1-channel data with LoMaR's defaults (Sources/Objectives/LoMaR/LoMaRObjective.swift
# `configure`: window = half the 7x7 grid rounded = 4, 4 windows, norm_pix_loss) and the preset's mask
# ratio 0.75: int(16 * 0.75) = 12 masked patches per window, as many as the official 0.8 masks.
LOMAR_TINY = dict(img_size=28, patch_size=4, in_chans=1, embed_dim=128, depth=6, num_heads=4, mlp_ratio=4.0)
WINDOW, NUM_WINDOW, MASK_RATIO = 4, 4, 0.75
LR = 1e-4                     # fixed, small: many timed steps must not blow up random weights (same as ours)
BETAS, WEIGHT_DECAY = (0.9, 0.95), 0.05
CHECK_IMAGES = 8


def official_modules():
    """models_lomar from the official code at make_lomar_fixtures.LOMAR_COMMIT ($LOMAR_SRC: a checkout;
    else the git directory $LOMAR_GIT or the fixture script's default mirror)."""
    default_git = "/work/.mirror/junchen14+LoMaR/repo"
    args = argparse.Namespace(lomar_src=os.environ.get("LOMAR_SRC"), lomar_git=os.environ.get("LOMAR_GIT", default_git))
    if not args.lomar_src and not Path(args.lomar_git).exists():
        raise RuntimeError(f"the official LoMaR code is needed (junchen14/LoMaR at {ref.LOMAR_COMMIT}): set LOMAR_SRC to a "
                           f"checkout or LOMAR_GIT to a git directory holding that commit ({args.lomar_git} does not exist)")
    return ref.official_modules(args)[0]


def patchify(images, p):
    """models_lomar.py `patchify` for any number of channels (the official one reshapes to 3): each
    patch's pixels in (row, column, channel) order."""
    n, c, s, _ = images.shape
    h = s // p
    x = images.reshape(n, c, h, p, h, p)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(n, h * h, p * p * c)


class TorchLoMaRStep:
    def __init__(self, batch):
        c = LOMAR_TINY
        self.grid = c["img_size"] // c["patch_size"]
        self.masked = int(WINDOW * WINDOW * MASK_RATIO)
        lomar = official_modules()
        torch.manual_seed(SEED)
        self.model = lomar.MaskedAutoencoderViT(img_size=c["img_size"], patch_size=c["patch_size"], in_chans=c["in_chans"],
                                                embed_dim=c["embed_dim"], depth=c["depth"], num_heads=c["num_heads"],
                                                mlp_ratio=c["mlp_ratio"], norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                                                norm_pix_loss=True)
        self.model.patchify = lambda images: patchify(images, c["patch_size"])
        # Every tensor non-trivial (the official init leaves the iRPE tables at zero); the cost does not
        # depend on the values.
        ref.randomize(self.model)
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        no_decay = lambda n, p: p.ndim == 1 or n.endswith(".bias")  # noqa: E731  (timm optim_factory.add_weight_decay)
        self.opt = torch.optim.AdamW([{"params": [p for n, p in named if not no_decay(n, p)], "weight_decay": WEIGHT_DECAY},
                                      {"params": [p for n, p in named if no_decay(n, p)], "weight_decay": 0.0}],
                                     lr=LR, betas=BETAS)
        gen = torch.Generator().manual_seed(SEED + 7)
        self.images = torch.randn(batch, c["in_chans"], c["img_size"], c["img_size"], generator=gen)
        self.steps = 0

    def draw(self, n):
        """forward_encoder's and sample_patch_index's random choices, in their order: M window tops and
        M lefts for the batch, then per (image, window) the window patches to mask."""
        positions = self.grid - WINDOW + 1
        tops = torch.randperm(positions)[:NUM_WINDOW]
        lefts = torch.randperm(positions)[:NUM_WINDOW]
        patches = self.window_patches(tops, lefts)
        keep = torch.argsort(torch.rand(n, *patches.shape), dim=-1)[:, :, :self.masked]
        return tops, lefts, torch.gather(patches.expand(n, -1, -1), -1, keep)

    def window_patches(self, tops, lefts):
        """Each window's patch indices, row-major: (top + i) * W + left + j (generate_window_patches)."""
        r = torch.arange(WINDOW)
        return ((tops[:, None, None] + r[None, :, None]) * self.grid + lefts[:, None, None] + r[None, None, :]).reshape(len(tops), -1)

    def losses(self, images, tops, lefts, masked):
        """models_lomar.py `forward` with its draws given: `forward_encoder` after the draws (the
        window gather of `generate_window_patches`; the mask token put in with torch.where instead of
        boolean-index assignment, same values and gradients, no data-dependent shape for torch.compile),
        then the official `forward_loss`."""
        m = self.model
        x = m.patch_embed(images).float()
        n, _, d = x.shape
        rows = self.window_patches(tops, lefts).unsqueeze(0).expand(n, -1, -1).reshape(n * len(tops), -1)
        x = x.unsqueeze(0).repeat(len(tops), 1, 1, 1).view(n * len(tops), -1, d)     # row r: image r mod N
        x = torch.gather(x, 1, rows.unsqueeze(-1).repeat(1, 1, d))
        masked = masked.reshape(n * len(tops), -1)
        mask = (rows.unsqueeze(-1) == masked.unsqueeze(1)).sum(-1) == 1
        x = torch.where(mask.unsqueeze(-1), m.mask_token.to(x.dtype), x)
        x = torch.cat((m.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        for blk in m.blocks:
            x = blk(x)
        pred = m.encoder_pred(m.norm(x))[:, 1:, :]
        return {"loss": m.forward_loss(images, pred, mask, len(tops), rows)}

    def update(self):
        """AdamW (a method of its own: torch_compiled.py compiles it)."""
        self.opt.step()

    def step(self):
        draws = self.draw(self.images.shape[0])
        self.opt.zero_grad(set_to_none=True)
        loss = self.losses(self.images, *draws)["loss"]
        loss.backward()
        self.update()
        self.steps += 1
        if not torch.isfinite(loss):
            raise RuntimeError(f"the PyTorch LoMaR loss became {loss.item()} at step {self.steps}")

    def check_batch(self):
        """Arguments of `losses` for a full timed batch (torch_compiled.py's same-loss check)."""
        torch.manual_seed(SEED + 1)
        return (self.images, *self.draw(self.images.shape[0]))

    @contextlib.contextmanager
    def unchanged(self):
        """`losses` changes no state."""
        yield

    def write_directory(self, out_dir):
        """The network as a pretraining directory (config.json + model.safetensors: the official state
        dict) for `bootmae-bench train-step --objective lomar --model-dir`, and check.safetensors:
        images, each row's image, window and mask (as the LoMaR fixture stores them)."""
        from safetensors.torch import save_file
        c = LOMAR_TINY
        out_dir.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous() for k, v in self.model.state_dict().items()}, str(out_dir / "model.safetensors"))
        config = {"objective": "lomar", "img_size": c["img_size"], "patch_size": c["patch_size"], "in_chans": c["in_chans"],
                  "embed_dim": c["embed_dim"], "depth": c["depth"], "num_heads": c["num_heads"], "mlp_ratio": c["mlp_ratio"],
                  "qkv_bias": "qkv", "layer_norm_eps": 1e-6, "global_pool": "cls", "pos_embed": "none",
                  "relative_position": "irpe_product_k", "mean": [0.5], "std": [0.5], "window_size": WINDOW,
                  "num_window": NUM_WINDOW, "mask_ratio": MASK_RATIO, "norm_pix_loss": True}
        (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        images = self.images[:CHECK_IMAGES].clone()
        # Our `losses` against the official forward on the same random stream: the same draws, the same loss.
        with torch.no_grad():
            torch.manual_seed(SEED + 2)
            official = self.model(images, WINDOW, NUM_WINDOW, MASK_RATIO)[0]
            torch.manual_seed(SEED + 2)
            tops, lefts, masked = self.draw(CHECK_IMAGES)
            loss = self.losses(images, tops, lefts, masked)["loss"]
        if not torch.allclose(loss, official, rtol=1e-6, atol=0):
            raise RuntimeError(f"torch_lomar.py's step gives {loss.item()}, the official forward {official.item()}")
        rows = NUM_WINDOW * CHECK_IMAGES
        patches = self.window_patches(tops, lefts)                     # (M, K²)
        window = torch.arange(rows) % NUM_WINDOW
        flags = (patches[window].unsqueeze(-1) == masked.reshape(rows, 1, -1)).any(-1)
        save_file({"images": images.contiguous(), "row_image": torch.arange(rows) % CHECK_IMAGES,
                   "row_top": tops[window].contiguous(), "row_left": lefts[window].contiguous(),
                   "mask": flags.to(torch.int64).contiguous()}, str(out_dir / "check.safetensors"))
        return {"loss": loss.item(), "official_forward_loss": official.item()}
