"""One iBOT pretraining step in PyTorch, equivalent to ours (bootmae-bench train-step --objective ibot).

The modules and the loss are the reference ones of tools/reference/make_ibot_fixtures.py (written
after the official bytedance/ibot code; IBOTParityTests check our network against them), at the
tiny preset's sizes (ViT 128x6, 4 heads, patch 4, 28 px, 1 channel; head 512/256 -> 1024 prototypes,
last layer's g frozen at 1). A step follows main_ibot.py `train_one_epoch` with iBOT's default
options for a 100-epoch run, at the start of epoch 1 (past the first epoch's frozen last layer):
teacher forward on the 2 global crops (no grad), student forward on the crops with their masks,
iBOTLoss (cross-view [CLS] + masked-patch terms, teacher temperatures of epoch 1 of the 30-epoch
warm-up, centre update inside the loss), backward, per-tensor gradient clip at 3 (utils.py
`clip_gradients`, as torch._foreach ops), torch.optim.AdamW with the official parameter groups
(utils.py `get_params_groups`: biases and 1-D tensors without decay, the rest with the cosine
schedule's decay), EMA of the teacher over the names both share (cosine momentum from 0.996).
The block masks are drawn before the timed steps, as the official data loader (loader.py
`ImageFolderMask`) does in its workers; our step draws its masks inside the timed step.
"""

import contextlib
import json
import math
import random
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "reference"))
# Importing the reference sets torch to one thread (the caller sets the threads afterwards).
import make_ibot_fixtures as ref  # noqa: E402
from common import randomize_  # noqa: E402

from models import SEED  # noqa: E402

# ModelPreset.tiny for 1-channel data with iBOT's default head (Sources/Objectives/IBOT/IBOT.swift Settings).
IBOT_TINY = dict(img_size=28, patch_size=4, in_chans=1, embed_dim=128, depth=6, num_heads=4, mlp_ratio=4.0,
                 out_dim=1024, head_hidden_dim=512, head_bottleneck_dim=256)
LR = 1e-4                     # fixed, small: many timed steps must not blow up random weights (same as ours)
GLOBAL_CROPS = 2
# Default options for a 100-epoch run (IBOT.options): schedules over epochs and iterations. The
# timed steps sit at the start of epoch 1 of a run of 1e6 iterations per epoch (as ours).
EPOCHS, ITERS_PER_EPOCH, EPOCH = 100, 1_000_000, 1
WARMUP_TEACHER_TEMP, TEACHER_TEMP = 0.04, 0.04   # [CLS]: main_ibot.py's default (cosine last layer), as ours
WARMUP_TEACHER_PATCH_TEMP, TEACHER_PATCH_TEMP = 0.04, 0.07
WARMUP_TEACHER_TEMP_EPOCHS = 30
MOMENTUM_TEACHER = 0.996
WEIGHT_DECAY, WEIGHT_DECAY_END = 0.04, 0.4
CLIP_GRAD = 3.0
PRED_RATIO, PRED_RATIO_VAR = [0.0, 0.3], [0.0, 0.2]
CHECK_IMAGES = 8


def cosine(base, final, iteration):
    """utils.py `cosine_scheduler(base, final, EPOCHS, ITERS_PER_EPOCH)[iteration]` (no warmup), without
    building its array of 1e8 entries."""
    return final + 0.5 * (base - final) * (1 + math.cos(math.pi * iteration / (EPOCHS * ITERS_PER_EPOCH)))


def teacher_temps(warmup, final):
    """main_ibot.py `iBOTLoss.__init__`: linear warm-up over the first epochs, then constant (per epoch)."""
    return np.concatenate((np.linspace(warmup, final, WARMUP_TEACHER_TEMP_EPOCHS),
                           np.ones(EPOCHS - WARMUP_TEACHER_TEMP_EPOCHS) * final))


def pred_ratio(rng):
    """loader.py `ImageFolderMask.get_pred_ratio`: one share drawn around each candidate, then one candidate."""
    shares = [rng.uniform(m - v, m + v) if v > 0 else m for m, v in zip(PRED_RATIO, PRED_RATIO_VAR)]
    return rng.choice(shares)


class TorchIBOTStep:
    def __init__(self, batch, pool_batches=4):
        c = IBOT_TINY
        self.grid = c["img_size"] // c["patch_size"]
        torch.manual_seed(SEED)
        self.student, self.teacher = self.build(c)
        # The loss holds the centres as buffers and updates them in forward (as main_ibot.py).
        k = c["out_dim"]
        self.loss_fn = self.make_loss(torch.randn(1, k) * 0.05, torch.randn(1, 1, k) * 0.05)
        named = [(n, p) for n, p in self.student.named_parameters() if p.requires_grad]
        regularized = [p for n, p in named if not (n.endswith(".bias") or p.ndim == 1)]
        others = [p for n, p in named if n.endswith(".bias") or p.ndim == 1]
        self.opt = torch.optim.AdamW([{"params": regularized}, {"params": others, "weight_decay": 0.0}], lr=LR)
        self.params = [p for _, p in named]
        own = dict(self.student.named_parameters())
        pairs = [(q, own[n]) for n, q in self.teacher.named_parameters() if n in own]
        self.ema_teacher, self.ema_student = [q for q, _ in pairs], [p for _, p in pairs]
        gen = torch.Generator().manual_seed(SEED + 7)
        self.crops = list(torch.randn(GLOBAL_CROPS * batch, c["in_chans"], c["img_size"], c["img_size"],
                                      generator=gen).chunk(GLOBAL_CROPS))
        rng = random.Random(SEED)
        self.mask_pool = [[torch.from_numpy(np.stack([ref.block_mask(rng, self.grid, self.grid, pred_ratio(rng))
                                                      for _ in range(batch)])) for _ in range(GLOBAL_CROPS)]
                          for _ in range(pool_batches)]
        self.steps = 0

    @staticmethod
    def build(c):
        """Student with random weights (as the fixture's: every tensor non-trivial), teacher = student
        plus a little noise, so the same-loss check compares distinct distributions. A step's cost
        does not depend on the values."""
        student = ref.Network(c, student=True, norm_last_layer=True)
        teacher = ref.Network(c, student=False, norm_last_layer=True)
        student.backbone.masked_embed.requires_grad_(False)
        randomize_(student.backbone)
        randomize_(student.head.mlp)
        with torch.no_grad():
            student.backbone.masked_embed.normal_(0.0, 0.2)
            student.head.last_layer.weight_v.normal_(0.0, 1.0 / math.sqrt(c["head_bottleneck_dim"]))
            student.backbone.masked_embed.requires_grad_(True)
            own = dict(student.named_parameters())
            for n, q in teacher.named_parameters():
                q.copy_(own[n])
                if not n.endswith("weight_g"):
                    q.add_(torch.randn_like(q) * 0.02)
        for q in teacher.parameters():
            q.requires_grad_(False)
        return student, teacher

    @staticmethod
    def make_loss(center, center2):
        loss = ref.IBOTLossRef(center.shape[-1], center, center2)
        loss.temp = teacher_temps(WARMUP_TEACHER_TEMP, TEACHER_TEMP)
        loss.temp2 = teacher_temps(WARMUP_TEACHER_PATCH_TEMP, TEACHER_PATCH_TEMP)
        return loss

    def clip_gradients(self):
        """utils.py `clip_gradients`: each tensor's gradient scaled to norm <= CLIP_GRAD (x clip / (norm + 1e-6))."""
        grads = [p.grad for p in self.params if p.grad is not None]
        norms = torch.stack(torch._foreach_norm(grads))
        torch._foreach_mul_(grads, (CLIP_GRAD / (norms + 1e-6)).clamp(max=1.0).tolist())

    def losses(self, crops, masks):
        """Teacher and student forward and the loss (which moves the centres, as main_ibot.py's)."""
        with torch.no_grad():
            t_out = self.teacher(crops)
        out = self.loss_fn(self.student(crops, masks=masks), t_out, None, masks, EPOCH)
        return {"loss": out["loss"], "cls_loss": out["cls"], "patch_loss": out["patch"]}

    def update(self, momentum):
        """Clip, AdamW and the teacher's EMA (a method of its own: torch_compiled.py compiles it)."""
        self.clip_gradients()
        # cancel_gradients_last_layer: nothing from epoch 1 on (freeze_last_layer 1)
        self.opt.step()
        with torch.no_grad():
            torch._foreach_mul_(self.ema_teacher, momentum)
            torch._foreach_add_(self.ema_teacher, self.ema_student, alpha=1 - momentum)

    def schedule(self):
        """This step's weight decay and teacher momentum (cosine schedules over the run's iterations)."""
        iteration = EPOCH * ITERS_PER_EPOCH + self.steps
        return cosine(WEIGHT_DECAY, WEIGHT_DECAY_END, iteration), cosine(MOMENTUM_TEACHER, 1.0, iteration)

    def step(self):
        masks = self.mask_pool[self.steps % len(self.mask_pool)]
        weight_decay, momentum = self.schedule()
        self.opt.param_groups[0]["weight_decay"] = weight_decay
        self.opt.zero_grad(set_to_none=True)
        loss = self.losses(self.crops, masks)["loss"]
        loss.backward()
        self.update(momentum)
        self.steps += 1
        if not torch.isfinite(loss):
            raise RuntimeError(f"the PyTorch iBOT loss became {loss.item()} at step {self.steps}")

    def check_batch(self):
        """Arguments of `losses` for a full timed batch (torch_compiled.py's same-loss check)."""
        return self.crops, self.mask_pool[0]

    @contextlib.contextmanager
    def unchanged(self):
        """Puts the loss's centres back after the block (a check must not move them)."""
        center, center2 = self.loss_fn.center, self.loss_fn.center2
        try:
            yield
        finally:
            self.loss_fn.center, self.loss_fn.center2 = center, center2

    def write_directory(self, out_dir):
        """The network as a pretraining directory (config.json + model.safetensors: student, `teacher.*`,
        `ibot_loss.center*`) for `bootmae-bench train-step --objective ibot --model-dir`, and
        check.safetensors: crops, masks and the losses of this untouched network."""
        from safetensors.torch import save_file
        c, k = IBOT_TINY, IBOT_TINY["out_dim"]
        out_dir.mkdir(parents=True, exist_ok=True)
        tensors = self.student.our_state()
        tensors.update({"teacher." + n: v for n, v in self.teacher.our_state().items()})
        tensors["ibot_loss.center"] = self.loss_fn.center.reshape(1, k).contiguous()
        tensors["ibot_loss.center2"] = self.loss_fn.center2.reshape(1, k).contiguous()
        save_file(tensors, str(out_dir / "model.safetensors"))
        config = {"objective": "ibot", "img_size": c["img_size"], "patch_size": c["patch_size"], "in_chans": c["in_chans"],
                  "embed_dim": c["embed_dim"], "depth": c["depth"], "num_heads": c["num_heads"], "mlp_ratio": c["mlp_ratio"],
                  "qkv_bias": "qkv", "layer_norm_eps": 1e-6, "global_pool": "cls", "pos_embed": "checkpoint",
                  "mean": [0.5], "std": [0.5], "out_dim": k, "head_hidden_dim": c["head_hidden_dim"],
                  "head_bottleneck_dim": c["head_bottleneck_dim"], "norm_last_layer": True}
        (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        crops = [crop[:CHECK_IMAGES] for crop in self.crops]
        masks = [m[:CHECK_IMAGES] for m in self.mask_pool[0]]
        if not any(bool(m.any()) for m in masks):
            raise RuntimeError("the check's masks hide no patch: the patch loss would not be compared")
        loss_fn = self.make_loss(self.loss_fn.center, self.loss_fn.center2)   # a copy: the check moves no centre
        with torch.no_grad():
            out = loss_fn(self.student(crops, masks=masks), self.teacher(crops), None, masks, EPOCH)
        save_file({"images": torch.cat(crops).contiguous(), "masks": torch.stack(masks).to(torch.int64).contiguous()},
                  str(out_dir / "check.safetensors"))
        return {"loss": out["loss"].item(), "cls_loss": out["cls"].item(), "patch_loss": out["patch"].item(),
                "teacher_temp": float(out["temp"]), "teacher_patch_temp": float(out["temp2"])}
