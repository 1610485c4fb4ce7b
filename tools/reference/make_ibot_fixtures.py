#!/usr/bin/env python3
"""Reference fixtures for one iBOT training step (losses, every student gradient, centres and EMA teacher).

Usage (from the repository root):
    .venv-ref/bin/python tools/reference/make_ibot_fixtures.py

Writes Tests/Fixtures/pretrain/ibot_tiny/{config.json, model.safetensors, io.safetensors, io_free_g.safetensors,
io_local.safetensors, pos_interpolation.safetensors} (contents in Tests/Fixtures/README.md).

The networks and the loss are written here after the official code, bytedance/ibot at
da316d82636a7a7356835ef224b13d5f3ace0489, not copied from it:
  * backbone: models/vision_transformer.py `VisionTransformer` (Block with `(q @ k^T) * scale`, qkv
    bias, LayerNorm eps 1e-6, learned pos_embed, final norm, all tokens returned); a crop on another
    grid than the table's adds the table through `interpolate_pos_encoding` (the [CLS] row kept, the
    patch rows through `nn.functional.interpolate(mode='bicubic')` with scale_factor (w0 + 0.1) / sqrt(N),
    no size, align_corners and recompute_scale_factor left at their defaults); the student has
    `masked_embed` (1, D) and `prepare_tokens` / `mask_model` put it in place of the patch
    embeddings (conv output, bias included) of masked patches BEFORE cls and positions; the teacher
    has no `masked_embed`;
  * utils.py `MultiCropWrapper`: the global crops go through the backbone as one batch, then the head;
  * models/head.py `iBOTHead` (a `DINOHead`, nlayers 3, no norm, GELU, shared_head=True):
    mlp = Linear-GELU-Linear-GELU-Linear, F.normalize, `last_layer` = weight_norm(Linear(bottleneck,
    K, bias=False)) with weight_g filled with 1 and frozen when norm_last_layer; [CLS] through
    last_layer, patches through last_layer2 = the same module;
  * main_ibot.py `train_one_epoch`: the local crops go through the student with `masked_im_modeling`
    switched off (no mask) and only the head's [CLS] output is kept;
  * main_ibot.py `iBOTLoss.forward` / `update_center` (2 global crops, 0 or 2 local crops, student temp
    0.1, teacher temperatures from np.linspace(warmup, final, warmup_epochs) then constant, per
    epoch; cross-view [CLS] terms, same-view masked patch terms normalised by each image's masked
    count clamped at 1; centres updated after the loss with momentum 0.9 from ALL teacher tokens);
  * main_ibot.py `train_one_epoch`: the EMA over the names student and teacher share
    (`masked_embed` is the student's alone), momentum from utils.py `cosine_scheduler`;
  * loader.py `ImageFolderMask`: per crop a prediction ratio and a block mask (BEiT's loop with
    the float target high = ratio * H * W, low = (min(H, W) // 3) ** 2, 10 attempts), drawn here
    with Python's `random.Random(seed)`.

Deviations (none changes what is computed for the fixture's step): no drop path (the official
student uses 0.1, which is random; the teacher 0), no fp16, one
process (`dist.all_reduce` of the centre sums is the identity), and the block mask drawn with an own
`random.Random` instead of the loader's global `random` (the masks are inputs of the fixture).

Two cases share the images and masks: io.safetensors with norm_last_layer=True (the config in
config.json; weight_g = 1 and frozen, no gradient for it) and io_free_g.safetensors with
norm_last_layer=False and random g (student and teacher g given in the file; grad of weight_g).
io_local.safetensors adds 2 local crops of 8 pixels (a 2×2 grid: pos_embed interpolated from 4×4)
to the step of io.safetensors (same weights, global crops and masks): losses and every student
gradient, pos_embed's through the interpolation's backward; the centres after the step are those of
io.safetensors (the teacher never sees local crops). pos_interpolation.safetensors: the official
interpolation alone on random tables, forward and the gradient of sum(out * R), for grids 7 → 3
(28-pixel images, 12-pixel crops, patch 4), 7 → 5, 4 → 2 and 4 → 6 (upsampling).
"optimizer-free update": the EMA teacher and the centres after the step are computed from the
student as it is (no AdamW step in between), which is what `afterStep` does when called right after
the backward pass.

Seeded, float32, one thread, sorted safetensors metadata: a re-run rewrites byte-identical files.
Every loss and gradient is replayed in float64 from the same float32 parameters before writing.
"""

import math
import random
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FixtureWriter, Mlp, PatchEmbed, rand, randomize_, seed  # noqa: E402

SCRIPT = "tools/reference/make_ibot_fixtures.py"
WRITER = FixtureWriter(SCRIPT, max_file_bytes=100 * 1024, max_total_bytes=400 * 1024)
save = WRITER.save
write_json = WRITER.write_json

EPS = 1e-6
C = dict(img_size=16, patch_size=4, in_chans=3, embed_dim=16, depth=2, num_heads=2, mlp_ratio=3.0,
         out_dim=32, head_hidden_dim=24, head_bottleneck_dim=16)
BATCH = 3
NG = 2                           # global crops
NL = 2                           # local crops (io_local.safetensors only)
LOCAL_SIZE = 8
# loss and schedules (main_ibot.py argument names)
STUDENT_TEMP = 0.1
WARMUP_TEACHER_TEMP, TEACHER_TEMP = 0.04, 0.04              # [CLS]: the code default (constant)
WARMUP_TEACHER_PATCH_TEMP, TEACHER_PATCH_TEMP = 0.04, 0.07  # patches: warmed up
WARMUP_TEACHER_TEMP_EPOCHS = 30
EPOCHS = 100
ITERS_PER_EPOCH = 2
ITERATION = 21                   # global iteration: epoch 10
MOMENTUM_TEACHER = 0.99
CENTER_MOMENTUM = 0.9
PRED_RATIOS = [[0.3, 0.0, 0.5], [0.2, 0.4, 0.1]]   # per view, per image: image 1 of view 0 is unmasked
TEACHER_NOISE = 0.02


# --------------------------------------------------------------------------------------------------
# backbone (models/vision_transformer.py)
# --------------------------------------------------------------------------------------------------
class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, D = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, D))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=EPS)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Backbone(nn.Module):
    def __init__(self, c, masked_im_modeling):
        super().__init__()
        D, n = c["embed_dim"], (c["img_size"] // c["patch_size"]) ** 2
        self.patch_embed = PatchEmbed(c["in_chans"], D, c["patch_size"])   # proj: Conv2d, key patch_embed.proj.*
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, D))
        self.blocks = nn.ModuleList([Block(D, c["num_heads"], c["mlp_ratio"]) for _ in range(c["depth"])])
        self.norm = nn.LayerNorm(D, eps=EPS)
        self.masked_im_modeling = masked_im_modeling
        if masked_im_modeling:
            self.masked_embed = nn.Parameter(torch.zeros(1, D))

    def prepare_tokens(self, x, mask=None):
        B, _, w, h = x.shape
        x = self.patch_embed.proj(x)                       # (B, D, H, W), bias included
        if mask is not None:                               # mask_model: x.permute(0,2,3,1)[mask, :] = masked_embed
            x = x.permute(0, 2, 3, 1)
            x = torch.where(mask[..., None], self.masked_embed.to(x.dtype).expand_as(x), x)
            x = x.permute(0, 3, 1, 2)
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)
        return x + self.interpolate_pos_encoding(x, w, h)

    def interpolate_pos_encoding(self, x, w, h):
        """The table for x's grid: pos_embed itself on the model's grid, else resized bicubically."""
        return interpolate_pos_encoding(self.pos_embed, x.shape[1] - 1, w, h, self.patch_embed.proj.kernel_size[0])

    def forward(self, x, mask=None):
        x = self.prepare_tokens(x, mask if self.masked_im_modeling else None)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)                                # return_all_tokens=True


def interpolate_pos_encoding(pos_embed, npatch, w, h, patch):
    """models/vision_transformer.py `interpolate_pos_encoding` on a table (1, 1 + N, D) for a crop of
    w x h pixels with npatch patches: the same condition, the same +0.1 and the same interpolate call."""
    N = pos_embed.shape[1] - 1
    if npatch == N and w == h:
        return pos_embed
    dim = pos_embed.shape[-1]
    side = int(math.sqrt(N))
    w0, h0 = w // patch + 0.1, h // patch + 0.1        # the official offset against rounding down
    grid = pos_embed[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, scale_factor=(w0 / math.sqrt(N), h0 / math.sqrt(N)), mode="bicubic")
    assert int(w0) == grid.shape[-2] and int(h0) == grid.shape[-1]
    return torch.cat((pos_embed[:, 0].unsqueeze(0), grid.permute(0, 2, 3, 1).reshape(1, -1, dim)), dim=1)


# --------------------------------------------------------------------------------------------------
# head (models/head.py iBOTHead, shared_head=True)
# --------------------------------------------------------------------------------------------------
class Head(nn.Module):
    def __init__(self, c, norm_last_layer):
        super().__init__()
        D, h, b, K = c["embed_dim"], c["head_hidden_dim"], c["head_bottleneck_dim"], c["out_dim"]
        self.mlp = nn.Sequential(nn.Linear(D, h), nn.GELU(), nn.Linear(h, h), nn.GELU(), nn.Linear(h, b))
        self.last_layer = nn.utils.weight_norm(nn.Linear(b, K, bias=False))
        self.last_layer.weight_g.data.fill_(1)
        if norm_last_layer:
            self.last_layer.weight_g.requires_grad = False

    def forward(self, x):
        x = F.normalize(self.mlp(x), dim=-1, p=2)
        return self.last_layer(x[:, 0]), self.last_layer(x[:, 1:])   # last_layer2 is last_layer


class Network(nn.Module):
    """MultiCropWrapper(backbone, head): the global crops as one batch."""

    def __init__(self, c, student, norm_last_layer=True):
        super().__init__()
        self.backbone = Backbone(c, masked_im_modeling=student)
        self.head = Head(c, norm_last_layer)

    def forward(self, crops, masks=None):
        x = torch.cat(crops)
        m = torch.cat(masks) if masks is not None else None
        return self.head(self.backbone(x, m))

    def local_cls(self, crops):
        """train_one_epoch: `masked_im_modeling = False`, `student(images[ng:])[0]`."""
        self.backbone.masked_im_modeling = False
        out = self.head(self.backbone(torch.cat(crops)))[0]
        self.backbone.masked_im_modeling = True
        return out

    def our_state(self):
        """Our names: encoder keys at the top level (VisionTransformer's), `masked_embed`, `head.*`."""
        out = {}
        for k, v in self.state_dict().items():
            out[k[len("backbone."):] if k.startswith("backbone.") else k] = v.detach().clone().contiguous()
        return out

    def our_params(self):
        return [(n[len("backbone."):] if n.startswith("backbone.") else n, p) for n, p in self.named_parameters()]


# --------------------------------------------------------------------------------------------------
# loss (main_ibot.py iBOTLoss with ngcrops = 2, nlcrops = 0 or 2)
# --------------------------------------------------------------------------------------------------
class IBOTLossRef(nn.Module):
    def __init__(self, K, center, center2, temps=(WARMUP_TEACHER_TEMP, TEACHER_TEMP, WARMUP_TEACHER_PATCH_TEMP, TEACHER_PATCH_TEMP),
                 warmup_epochs=WARMUP_TEACHER_TEMP_EPOCHS, epochs=EPOCHS):
        """temps: (warmup_teacher_temp, teacher_temp, warmup_teacher_patch_temp, teacher_patch_temp); the
        schedules over `epochs` epochs, warmed up linearly over the first `warmup_epochs`."""
        super().__init__()
        self.register_buffer("center", center.clone())      # (1, K)
        self.register_buffer("center2", center2.clone())    # (1, 1, K)
        warm, final, warm2, final2 = temps
        self.temp = np.concatenate((np.linspace(warm, final, warmup_epochs), np.ones(epochs - warmup_epochs) * final))
        self.temp2 = np.concatenate((np.linspace(warm2, final2, warmup_epochs), np.ones(epochs - warmup_epochs) * final2))

    def forward(self, student_output, teacher_output, student_local_cls, student_mask, epoch):
        s_cls, s_patch = student_output
        t_cls, t_patch = teacher_output
        ncrops = NG
        if student_local_cls is not None:                   # every student [CLS], global then local
            s_cls = torch.cat([s_cls, student_local_cls])
            ncrops = NG + student_local_cls.shape[0] // t_cls.chunk(NG)[0].shape[0]
        s_cls_c = (s_cls / STUDENT_TEMP).chunk(ncrops)
        s_patch_c = (s_patch / STUDENT_TEMP).chunk(NG)
        temp, temp2 = self.temp[epoch], self.temp2[epoch]
        t_cls_c = F.softmax((t_cls - self.center) / temp, dim=-1).detach().chunk(NG)
        t_patch_c = F.softmax((t_patch - self.center2) / temp2, dim=-1).detach().chunk(NG)
        loss1, n1, loss2, n2 = 0, 0, 0, 0
        for q in range(len(t_cls_c)):
            for v in range(len(s_cls_c)):
                if v == q:
                    l2 = torch.sum(-t_patch_c[q] * F.log_softmax(s_patch_c[v], dim=-1), dim=-1)
                    m = student_mask[v].flatten(-2, -1)
                    l2 = torch.sum(l2 * m.to(l2.dtype), dim=-1) / m.sum(dim=-1).clamp(min=1.0)
                    loss2 = loss2 + l2.mean()
                    n2 += 1
                else:
                    l1 = torch.sum(-t_cls_c[q] * F.log_softmax(s_cls_c[v], dim=-1), dim=-1)
                    loss1 = loss1 + l1.mean()
                    n1 += 1
        loss1, loss2 = loss1 / n1, loss2 / n2            # lambda1 = lambda2 = 1
        self.update_center(t_cls, t_patch)
        return dict(cls=loss1, patch=loss2, loss=loss1 + loss2, temp=temp, temp2=temp2)

    @torch.no_grad()
    def update_center(self, t_cls, t_patch):
        cls_center = torch.sum(t_cls, dim=0, keepdim=True) / len(t_cls)                  # world size 1
        self.center = self.center * CENTER_MOMENTUM + cls_center * (1 - CENTER_MOMENTUM)
        patch_center = torch.sum(t_patch.mean(1), dim=0, keepdim=True) / len(t_patch)
        self.center2 = self.center2 * CENTER_MOMENTUM + patch_center * (1 - CENTER_MOMENTUM)


def cosine_scheduler(base_value, final_value, epochs, niter_per_ep, warmup_epochs=0, start_warmup_value=0):
    """utils.py `cosine_scheduler`: per iteration, a linear warmup (np.linspace from start_warmup_value
    over warmup_epochs * niter_per_ep iterations, empty without warmup), then a cosine over the rest."""
    warmup_iters = warmup_epochs * niter_per_ep
    warmup = np.linspace(start_warmup_value, base_value, warmup_iters) if warmup_epochs > 0 else np.array([])
    iters = np.arange(epochs * niter_per_ep - warmup_iters)
    schedule = final_value + 0.5 * (base_value - final_value) * (1 + np.cos(np.pi * iters / len(iters)))
    schedule = np.concatenate((warmup, schedule))
    assert len(schedule) == epochs * niter_per_ep
    return schedule


# --------------------------------------------------------------------------------------------------
# masks (loader.py ImageFolderMask, pred_shape 'block')
# --------------------------------------------------------------------------------------------------
def block_mask(rng, H, W, ratio, min_aspect=0.3):
    log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))
    high = ratio * H * W
    mask = np.zeros((H, W), dtype=bool)
    count = 0
    while count < high:
        max_mask = high - count
        delta = 0
        for _ in range(10):
            low = (min(H, W) // 3) ** 2
            area = rng.uniform(low, max_mask)
            aspect = math.exp(rng.uniform(*log_aspect))
            h = int(round(math.sqrt(area * aspect)))
            w = int(round(math.sqrt(area / aspect)))
            if w < W and h < H:
                top = rng.randint(0, H - h)
                left = rng.randint(0, W - w)
                covered = mask[top:top + h, left:left + w].sum()
                if 0 < h * w - covered <= max_mask:
                    for i in range(top, top + h):
                        for j in range(left, left + w):
                            if not mask[i, j]:
                                mask[i, j] = True
                                delta += 1
            if delta > 0:
                break
        if delta == 0:
            break
        count += delta
    return mask


# --------------------------------------------------------------------------------------------------
# one step
# --------------------------------------------------------------------------------------------------
def run_step(student, teacher, center, center2, crops, masks, epoch, momentum, local_crops=None):
    """Forward, loss, backward, then the centre update and the EMA (no optimizer step)."""
    loss_fn = IBOTLossRef(C["out_dim"], center, center2)
    student.zero_grad(set_to_none=True)
    with torch.no_grad():
        t_out = teacher(crops)
    s_out = student(crops, masks=masks)
    s_local = student.local_cls(local_crops) if local_crops else None
    out = loss_fn(s_out, t_out, s_local, masks, epoch)
    out["loss"].backward()
    # EMA over the common names (train_one_epoch: names_common)
    s_named = dict(student.named_parameters())
    after = {}
    with torch.no_grad():
        for n, pk in teacher.named_parameters():
            if n in s_named:
                after[n] = pk.detach().clone().mul_(momentum).add_((1 - momentum) * s_named[n].detach())
            else:
                after[n] = pk.detach().clone()
    out.update(center=loss_fn.center, center2=loss_fn.center2, teacher_after=after, s_out=s_out, t_out=t_out, s_local=s_local)
    return out


def student_grads(student):
    return {"grad." + n: p.grad for n, p in student.our_params() if p.requires_grad}


def build(norm_last_layer, base_student=None, g_seed=None):
    """Student (random), teacher = student + noise. With base_student, the same weights except g."""
    student = Network(C, student=True, norm_last_layer=norm_last_layer)
    teacher = Network(C, student=False)
    if base_student is None:
        student.backbone.masked_embed.requires_grad_(False)
        randomize_(student.backbone)
        randomize_(student.head.mlp)
        with torch.no_grad():
            student.backbone.masked_embed.normal_(0.0, 0.2)
            student.head.last_layer.weight_v.normal_(0.0, 1.0 / math.sqrt(C["head_bottleneck_dim"]))
        student.backbone.masked_embed.requires_grad_(True)
        with torch.no_grad():
            own = dict(student.named_parameters())
            for n, q in teacher.named_parameters():
                q.copy_(own[n])
                if not n.endswith("weight_g"):
                    q.add_(torch.randn_like(q) * TEACHER_NOISE)
    else:
        s0, t0 = base_student
        with torch.no_grad():
            own = dict(s0.named_parameters())
            for n, q in student.named_parameters():
                q.copy_(own[n])
            for n, q in teacher.named_parameters():
                q.copy_(dict(t0.named_parameters())[n])
            gen = torch.Generator().manual_seed(g_seed)
            K = C["out_dim"]
            student.head.last_layer.weight_g.copy_(torch.rand(K, 1, generator=gen) + 0.5)       # U(0.5, 1.5)
            teacher.head.last_layer.weight_g.copy_(student.head.last_layer.weight_g
                                                   + torch.randn(K, 1, generator=gen) * TEACHER_NOISE)
    for q in teacher.parameters():
        q.requires_grad_(False)
    return student, teacher


def float64_check(student, teacher, center, center2, crops, masks, epoch, momentum, out, label, local_crops=None):
    s64 = Network(C, student=True, norm_last_layer=not student.head.last_layer.weight_g.requires_grad).double()
    s64.load_state_dict({k: v.double() for k, v in student.state_dict().items()})
    t64 = Network(C, student=False).double()
    t64.load_state_dict({k: v.double() for k, v in teacher.state_dict().items()})
    for q in t64.parameters():
        q.requires_grad_(False)
    o64 = run_step(s64, t64, center.double(), center2.double(), [c.double() for c in crops], masks, epoch, momentum,
                   [c.double() for c in local_crops] if local_crops else None)
    loss_err = max(abs(out[k].item() - o64[k].item()) / abs(o64[k].item()) for k in ("cls", "patch", "loss"))
    g32, g64 = student_grads(student), student_grads(s64)
    assert sorted(g32) == sorted(g64)
    grad_err, worst = 0.0, None
    for k in g32:
        e = ((g32[k].double() - g64[k]).abs().max() / g64[k].abs().max()).item()
        if e > grad_err:
            grad_err, worst = e, k
    print(f"{label}: float32 vs float64: worst loss rel {loss_err:.2e}, worst grad rel-to-max {grad_err:.2e} ({worst})")
    assert loss_err < 1e-6 and grad_err < 1e-5, (loss_err, grad_err, worst)


def check_grads(student, label, expect_frozen):
    named = student.our_params()
    zero = [n for n, p in named if p.requires_grad and (p.grad is None or not p.grad.abs().max() > 0)]
    assert not zero, f"{label}: zero or missing gradients for {zero}"
    frozen = [n for n, p in named if not p.requires_grad]
    assert frozen == expect_frozen, (label, frozen)
    assert all(p.grad is None for _, p in named if not p.requires_grad)
    mags = sorted((p.grad.abs().max().item(), n) for n, p in named if p.requires_grad)
    print(f"{label}: {len(mags)} gradients, max-abs from {mags[0][0]:.2e} ({mags[0][1]}) to {mags[-1][0]:.2e} "
          f"({mags[-1][1]}); frozen: {frozen}")


def check_loss_by_hand(out, masks):
    """The loss again from the definition, row by row (no chunking, explicit sums)."""
    s_cls, s_patch = (t.detach().double() for t in out["s_out"])
    t_cls, t_patch = (t.detach().double() for t in out["t_out"])
    nl = 0
    if out["s_local"] is not None:                 # local crops: more student [CLS] rows, no patches
        nl = out["s_local"].shape[0] // BATCH
        s_cls = torch.cat([s_cls, out["s_local"].detach().double()])
    B = BATCH
    # centres before the step: recover from the update c_new = 0.9 c + 0.1 mean
    c = (out["center"].double() - 0.1 * t_cls.mean(0, keepdim=True)) / 0.9
    c2 = (out["center2"].double() - 0.1 * t_patch.mean(1).mean(0, keepdim=True)) / 0.9
    P_cls = F.softmax((t_cls - c) / out["temp"], -1)
    P_pat = F.softmax((t_patch - c2) / out["temp2"], -1)
    ls_cls = F.log_softmax(s_cls / STUDENT_TEMP, -1)
    ls_pat = F.log_softmax(s_patch / STUDENT_TEMP, -1)
    L1 = 0.0
    for q in range(NG):
        for v in range(NG + nl):
            if q == v:
                continue
            for b in range(B):
                L1 += -(P_cls[q * B + b] * ls_cls[v * B + b]).sum().item() / (NG * (NG + nl - 1) * B)
    L2 = 0.0
    for q in range(NG):
        for b in range(B):
            m = masks[q][b].flatten().double()
            per_token = -(P_pat[q * B + b] * ls_pat[q * B + b]).sum(-1)
            L2 += (per_token * m).sum().item() / max(1.0, m.sum().item()) / (NG * B)
    for name, ref, got in (("cls", L1, out["cls"].item()), ("patch", L2, out["patch"].item())):
        assert abs(ref - got) <= 2e-6 * abs(ref), (name, ref, got)
    print(f"loss from the definition: cls {L1:.9g} / {out['cls'].item():.9g}, patch {L2:.9g} / {out['patch'].item():.9g}")


def interpolation_cases():
    """The official interpolation alone: random tables, forward and backward, in float32 (checked in float64)."""
    seed(420)
    out = {}
    D = 5
    for G, g in ((7, 3), (7, 5), (4, 2), (4, 6)):
        table = torch.randn(1, 1 + G * G, D)
        weight = torch.randn(1, 1 + g * g, D)
        results = []
        for dtype in (torch.float32, torch.float64):
            t = table.detach().clone().to(dtype).requires_grad_(True)
            y = interpolate_pos_encoding(t, g * g, g * 4, g * 4, 4)
            (y * weight.to(dtype)).sum().backward()
            results.append((y.detach(), t.grad))
        (y32, d32), (y64, d64) = results
        assert y32.shape == (1, 1 + g * g, D) and torch.equal(y32[:, 0], table[:, 0])
        assert ((y32.double() - y64).abs().max() / y64.abs().max()) < 3e-6   # float32 coordinates
        assert ((d32.double() - d64).abs().max() / d64.abs().max()) < 3e-6
        key = f"{G}_to_{g}"
        out.update({f"table_{key}": table, f"out_{key}": y32, f"weight_{key}": weight, f"dtable_{key}": d32})
    return out


def main():
    s = seed(416)
    g = C["img_size"] // C["patch_size"]
    epoch = ITERATION // ITERS_PER_EPOCH
    momentum = float(cosine_scheduler(MOMENTUM_TEACHER, 1, EPOCHS, ITERS_PER_EPOCH)[ITERATION])

    student, teacher = build(norm_last_layer=True)
    K = C["out_dim"]
    center = torch.randn(1, K) * 0.05
    center2 = torch.randn(1, 1, K) * 0.05
    images = rand(NG * BATCH, C["in_chans"], C["img_size"], C["img_size"])      # view-major
    crops = list(images.chunk(NG))
    rng = random.Random(s)
    masks = [torch.from_numpy(np.stack([block_mask(rng, g, g, r) for r in view])) for view in PRED_RATIOS]
    counts = [[int(m.sum()) for m in view] for view in masks]
    print(f"masked patches per view and image: {counts}")
    assert counts[0][1] == 0 and sum(c > 0 for v in counts for c in v) == NG * BATCH - 1, counts

    # mask substitution check: masked patch embeddings equal masked_embed before the positions
    with torch.no_grad():
        tok = student.backbone.prepare_tokens(crops[0], masks[0]) - student.backbone.pos_embed
        emb = student.backbone.patch_embed(crops[0])
        m0 = masks[0].flatten(1)
        # (x + pos) - pos rounds: compare to 1e-6
        assert (tok[:, 1:][m0] - student.backbone.masked_embed).abs().max() < 1e-6
        assert (tok[:, 1:][~m0] - emb[~m0]).abs().max() < 1e-6
        assert (tok[:, 0] - student.backbone.cls_token[0]).abs().max() < 1e-6

    out = run_step(student, teacher, center, center2, crops, masks, epoch, momentum)
    check_grads(student, "ibot_tiny", ["head.last_layer.weight_g"])
    check_loss_by_hand(out, masks)
    float64_check(student, teacher, center, center2, crops, masks, epoch, momentum, out, "ibot_tiny")
    print(f"ibot_tiny: epoch {epoch}: teacher temps {out['temp']:.9g} / {out['temp2']:.9g}, momentum {momentum!r}; "
          f"cls {out['cls'].item():.9g}, patch {out['patch'].item():.9g}, total {out['loss'].item():.9g} "
          f"(ln K = {math.log(K):.4f})")
    # the EMA changed every common tensor but g (both 1), and left nothing else
    assert sorted(out["teacher_after"]) == sorted(n for n, _ in teacher.named_parameters())

    name = "pretrain/ibot_tiny"
    cfg = {"objective": "ibot", "img_size": C["img_size"], "patch_size": C["patch_size"], "in_chans": C["in_chans"],
           "embed_dim": C["embed_dim"], "depth": C["depth"], "num_heads": C["num_heads"], "mlp_ratio": C["mlp_ratio"],
           "qkv_bias": "qkv", "layer_norm_eps": EPS, "global_pool": "cls", "pos_embed": "checkpoint",
           "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "out_dim": K,
           "head_hidden_dim": C["head_hidden_dim"], "head_bottleneck_dim": C["head_bottleneck_dim"],
           "norm_last_layer": True}
    write_json(f"{name}/config.json", cfg)
    weights = dict(student.our_state())
    weights.update({"teacher." + k: v for k, v in teacher.our_state().items()})
    weights["ibot_loss.center"] = center
    weights["ibot_loss.center2"] = center2
    save(f"{name}/model.safetensors", weights, seed=s, meta={"teacher_noise_std": repr(TEACHER_NOISE)})

    mask_tensor = torch.stack(masks).to(torch.int64)        # (views, B, H, W), 1 = masked
    meta = {"epoch": str(epoch), "iteration": str(ITERATION), "iters_per_epoch": str(ITERS_PER_EPOCH),
            "epochs": str(EPOCHS), "warmup_teacher_temp_epochs": str(WARMUP_TEACHER_TEMP_EPOCHS),
            "warmup_teacher_temp": repr(WARMUP_TEACHER_TEMP), "teacher_temp": repr(TEACHER_TEMP),
            "warmup_teacher_patch_temp": repr(WARMUP_TEACHER_PATCH_TEMP), "teacher_patch_temp": repr(TEACHER_PATCH_TEMP),
            "student_temp": repr(STUDENT_TEMP), "momentum_teacher": repr(MOMENTUM_TEACHER),
            "center_momentum": repr(CENTER_MOMENTUM), "views": str(NG), "images_layout": "view-major (view * B + image)",
            "mask": "1 = masked, row-major patches", "pred_ratios": repr(PRED_RATIOS)}

    def step_tensors(o, st, only=None):
        t = {"loss_cls": o["cls"].detach().reshape(1), "loss_patch": o["patch"].detach().reshape(1),
             "loss_total": o["loss"].detach().reshape(1),
             "center_after": o["center"].reshape(1, K), "center2_after": o["center2"].reshape(1, K)}
        t.update(student_grads(st))
        t.update({"teacher_after." + (k[len("backbone."):] if k.startswith("backbone.") else k): v
                  for k, v in o["teacher_after"].items() if only is None or k in only})
        return t

    io = dict(images=images, masks=mask_tensor, **step_tensors(out, student))
    out_grads_globals = {k: v.clone() for k, v in student_grads(student).items()}
    save(f"{name}/io.safetensors", io, seed=s,
         meta=dict(meta, teacher_temp_cls=repr(float(out["temp"])), teacher_temp_patch=repr(float(out["temp2"])),
                   momentum=repr(momentum), norm_last_layer="true"))

    # norm_last_layer = False: the same weights and inputs, g trainable and random (student and teacher)
    seed(417)
    s2, t2 = build(norm_last_layer=False, base_student=(student, teacher), g_seed=418)
    out2 = run_step(s2, t2, center, center2, crops, masks, epoch, momentum)
    check_grads(s2, "ibot_tiny free g", [])
    check_loss_by_hand(out2, masks)
    float64_check(s2, t2, center, center2, crops, masks, epoch, momentum, out2, "ibot_tiny free g")
    print(f"ibot_tiny free g: cls {out2['cls'].item():.9g}, patch {out2['patch'].item():.9g}, "
          f"total {out2['loss'].item():.9g}")
    io2 = {"param.head.last_layer.weight_g": s2.head.last_layer.weight_g.detach(),
           "param.teacher.head.last_layer.weight_g": t2.head.last_layer.weight_g.detach()}
    # every other teacher tensor after the EMA is the same as in io.safetensors (same weights): only g here
    for k, v in out2["teacher_after"].items():
        if not k.endswith("weight_g"):
            assert torch.equal(v, out["teacher_after"][k]), k
    io2.update(step_tensors(out2, s2, only={"head.last_layer.weight_g"}))
    save(f"{name}/io_free_g.safetensors", io2, seed=418,
         meta=dict(meta, teacher_temp_cls=repr(float(out2["temp"])), teacher_temp_patch=repr(float(out2["temp2"])),
                   momentum=repr(momentum), norm_last_layer="false",
                   inputs="images and masks of io.safetensors; weights of model.safetensors except the two weight_g"))

    # local crops: the step of io.safetensors plus NL local crops of LOCAL_SIZE pixels
    seed(419)
    local_images = rand(NL * BATCH, C["in_chans"], LOCAL_SIZE, LOCAL_SIZE)    # view-major
    local_crops = list(local_images.chunk(NL))
    out3 = run_step(student, teacher, center, center2, crops, masks, epoch, momentum, local_crops=local_crops)
    check_grads(student, "ibot_tiny local", ["head.last_layer.weight_g"])
    check_loss_by_hand(out3, masks)
    float64_check(student, teacher, center, center2, crops, masks, epoch, momentum, out3, "ibot_tiny local", local_crops)
    assert torch.equal(out3["patch"], out["patch"]), "local crops add no patch term"
    assert torch.equal(out3["center"], out["center"]) and torch.equal(out3["center2"], out["center2"]), "teacher-only centres"
    for k, v in out3["teacher_after"].items():
        assert torch.equal(v, out["teacher_after"][k]), k
    pos_grad_globals_only = out_grads_globals["grad.pos_embed"]
    assert not torch.allclose(student.backbone.pos_embed.grad, pos_grad_globals_only), "locals reach pos_embed"
    print(f"ibot_tiny local ({NL} x {LOCAL_SIZE} px): cls {out3['cls'].item():.9g}, patch {out3['patch'].item():.9g}, "
          f"total {out3['loss'].item():.9g}")
    io3 = {"local_images": local_images, "loss_cls": out3["cls"].detach().reshape(1),
           "loss_patch": out3["patch"].detach().reshape(1), "loss_total": out3["loss"].detach().reshape(1)}
    io3.update(student_grads(student))
    save(f"{name}/io_local.safetensors", io3, seed=419,
         meta=dict(meta, teacher_temp_cls=repr(float(out3["temp"])), teacher_temp_patch=repr(float(out3["temp2"])),
                   momentum=repr(momentum), norm_last_layer="true", local_crops=str(NL), local_size=str(LOCAL_SIZE),
                   local_images_layout="view-major (local view * B + image)",
                   inputs="weights of model.safetensors, images and masks of io.safetensors; centres and teacher after the "
                          "step are those of io.safetensors"))

    save(f"{name}/pos_interpolation.safetensors", interpolation_cases(), seed=420,
         meta={"call": "interpolate_pos_encoding(table, g*g, g*p, g*p, p): F.interpolate(mode='bicubic', "
                       "scale_factor=((g + 0.1) / G, (g + 0.1) / G)), torch " + torch.__version__,
               "cases": "from_G_to_g: table (1, 1 + G*G, D), out (1, 1 + g*g, D), weight R like out, "
                        "dtable = d sum(out * R) / d table"})

    total = WRITER.check(max_keys=10)
    for path in WRITER.written:
        assert path.stat().st_size < 100 * 1024, path


if __name__ == "__main__":
    main()
