"""One BootMAE pretraining step in PyTorch, equivalent to ours (bootmae-bench train-step).

The modules, masks and losses are the reference ones of tools/reference/make_pretrain_fixtures.py
(written after the official BootMAE code; the Swift tests check our network against them), so both sides
compute the same function. A step here: batch masks (argsort of block mask minus noise, one roll
per batch), pixel target, momentum target (no grad), forward of both decoders, weighted losses
(lambda 1), backward, torch.optim.AdamW (betas 0.9/0.95, weight decay 0.05 on matrices), EMA of
the momentum encoder. The BEiT block masks themselves are drawn beforehand, as the official
data loader does in its workers; our step draws its masks inside the timed step.
"""

import contextlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "reference"))
# Importing the reference sets torch to one thread and turns timm's fused attention off (neither
# matters here: no timm module is used, and the caller sets the threads afterwards).
import make_pretrain_fixtures as ref  # noqa: E402
from common import randomize_  # noqa: E402

from models import BOOTMAE_TINY, BOOTMAE_TINY_BLOCKS, SEED  # noqa: E402

LR = 1e-4          # fixed, small: many timed steps must not blow up random weights (same as ours)
EMA_DECAY = 0.999
LAMBDA = 1.0
NO_DECAY = {"cls_token", "pos_embed"}


class TorchBootMAEStep:
    def __init__(self, batch, pool_batches=4):
        c = BOOTMAE_TINY
        self.c = c
        self.grid = c["img_size"] // c["patch_size"]
        self.n = self.grid ** 2
        torch.manual_seed(SEED)
        self.model = ref.BootMAEPretrain(c)
        randomize_(self.model)
        # The momentum encoder starts as a copy of the online encoder (as ours does).
        self.ema = ref.BootMAEEncoderPart(c)
        self.ema.load_state_dict({k: v for k, v in self.model.state_dict().items() if k in self.ema.state_dict()})
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.ema.eval()
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        decay = [p for n, p in named if p.ndim >= 2 and n not in NO_DECAY and not n.endswith(".bias")]
        other = [p for n, p in named if not (p.ndim >= 2 and n not in NO_DECAY and not n.endswith(".bias"))]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": other, "weight_decay": 0.0}],
                                     lr=LR, betas=(0.9, 0.95))
        own = dict(self.model.named_parameters())
        self.ema_pairs = [(q, own[n]) for n, q in self.ema.named_parameters() if own[n].requires_grad]
        gen = torch.Generator().manual_seed(SEED + 7)
        self.images = torch.randn(batch, c["in_chans"], c["img_size"], c["img_size"], generator=gen)
        rng = np.random.default_rng(SEED)
        b = BOOTMAE_TINY_BLOCKS
        self.block_pool = [torch.from_numpy(np.stack([
            ref.block_mask(rng, self.grid, b["block_patches"], b["min_block"], b["max_block"]).reshape(-1)
            for _ in range(batch)]).astype(np.float32)) for _ in range(pool_batches)]
        self.steps = 0

    def ids_shuffle(self, blocks, roll):
        """Block-masked patches last, in random order, then one roll for the batch (BootMAE utils.py mask_to_index)."""
        return torch.argsort(blocks - torch.rand(blocks.shape), dim=1).roll(roll, dims=1)

    def losses(self, images, ids):
        c, p = self.c, self.c["patch_size"]
        loss_mask, weight = ref.bootmae_masks(ids, c["num_mask"], self.grid)
        target_pix = ref.pixel_target(images, p)
        with torch.no_grad():
            target_feat = self.ema.full_image_target(images)
        out = self.model(images, ids, c["num_mask"])
        pixel, feature, total = ref.bootmae_losses(out, target_pix, target_feat, loss_mask, weight, p, LAMBDA)
        return {"loss": total, "pixel_loss": pixel, "feature_loss": feature}

    def update(self):
        """AdamW, then the momentum encoder's EMA (a method of its own: torch_compiled.py compiles it)."""
        self.opt.step()
        with torch.no_grad():
            ema, online = [q for q, _ in self.ema_pairs], [p for _, p in self.ema_pairs]
            torch._foreach_lerp_(ema, online, 1.0 - EMA_DECAY)

    def step(self):
        blocks = self.block_pool[self.steps % len(self.block_pool)]
        ids = self.ids_shuffle(blocks, int(torch.randint(0, BOOTMAE_TINY_BLOCKS["max_roll"] + 1, ())))
        self.opt.zero_grad(set_to_none=True)
        total = self.losses(self.images, ids)["loss"]
        total.backward()
        self.update()
        self.steps += 1
        if not torch.isfinite(total):
            raise RuntimeError(f"the PyTorch loss became {total.item()} at step {self.steps}")

    def check_batch(self):
        """Arguments of `losses` for a full timed batch (torch_compiled.py's same-loss check)."""
        return self.images, self.ids_shuffle(self.block_pool[0], 2)

    @contextlib.contextmanager
    def unchanged(self):
        """`losses` changes no state here (the iBOT step's moves its centres)."""
        yield

    def write_directory(self, out_dir):
        """The network as a pretraining directory (config.json + model.safetensors with model_ema.*)
        for `bootmae-bench train-step --model-dir`, and check.safetensors: images, masks and the
        losses of this untouched network."""
        from safetensors.torch import save_file
        c = self.c
        out_dir.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous() for k, v in self.model.state_dict().items()}
        tensors.update({"model_ema." + k: v.detach().contiguous() for k, v in self.ema.state_dict().items()})
        save_file(tensors, str(out_dir / "model.safetensors"))
        config = {"objective": "bootmae", "img_size": c["img_size"], "patch_size": c["patch_size"],
                  "in_chans": c["in_chans"], "embed_dim": c["embed_dim"], "depth": c["depth"],
                  "num_heads": c["num_heads"], "mlp_ratio": c["mlp_ratio"], "qkv_bias": "qv",
                  "layer_norm_eps": 1e-6, "global_pool": "cls", "pos_embed": "sincos_bootmae",
                  "mean": [0.5], "std": [0.5], "decoder_embed_dim": c["decoder_embed_dim"],
                  "decoder_depth": c["decoder_depth"], "feature_decoder_depth": c["feature_decoder_depth"],
                  "feature_layers": c["feature_layers"], "num_mask": c["num_mask"]}
        (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        images = self.images[:8].clone()
        ids = self.ids_shuffle(self.block_pool[0][:8], 2)
        with torch.no_grad():
            losses = self.losses(images, ids)
        save_file({"images": images, "ids_shuffle": ids.to(torch.int64).contiguous()}, str(out_dir / "check.safetensors"))
        return {k: v.item() for k, v in losses.items()}
