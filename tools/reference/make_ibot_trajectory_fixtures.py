#!/usr/bin/env python3
"""Reference fixture for five consecutive iBOT training iterations (a trajectory, not one step).

Usage (from the repository root):
    .venv-ref/bin/python tools/reference/make_ibot_trajectory_fixtures.py

Writes Tests/Fixtures/pretrain/ibot_tiny/{trajectory_init, trajectory, trajectory_free_g}.safetensors (contents in
Tests/Fixtures/README.md); the model is config.json of that folder (make_ibot_fixtures.py), with the official default
head (`--norm_last_layer true`: g frozen at 1) and, in trajectory_free_g, `--norm_last_layer false`.

A one-step check cannot see what goes wrong across steps: the teacher's EMA, the centres, the lr /
weight-decay / momentum / temperature schedules, AdamW's moments and per-tensor step counts, gradient
clipping and the frozen last layer. Here the networks, loss and masks are those of make_ibot_fixtures.py
(imported, not rewritten), and each iteration is composed as bytedance/ibot at
da316d82636a7a7356835ef224b13d5f3ace0489 composes it in main_ibot.py `train_one_epoch`:
  1. every optimizer param group gets lr_schedule[it], group 0 (the regularized one) wd_schedule[it]
     (`utils.cosine_scheduler`: lr with a linear warmup, weight decay and momentum without);
  2. teacher on the global crops, student on the masked global crops, `iBOTLoss` at the epoch's teacher
     temperatures (its forward also moves the centres, after the loss has used them);
  3. `optimizer.zero_grad()`, backward, `utils.clip_gradients` (per tensor: clip / (norm + 1e-6) when < 1),
     `utils.cancel_gradients_last_layer` (grad = None for "last_layer" tensors while epoch < freeze_last_layer:
     AdamW then skips them, moments, step count and decay included), `optimizer.step()`;
  4. the teacher's EMA with momentum_schedule[it] over the names student and teacher share
     (`param_k.mul_(m).add_((1 - m) * param_q)`).
The optimizer is main_ibot.py's `torch.optim.AdamW(utils.get_params_groups(student))`: biases and 1-D
tensors in group 1 with weight decay 0, everything else trainable (cls_token, pos_embed, masked_embed
included) in group 0; PyTorch's default betas (0.9, 0.999) and eps 1e-8. Teacher and student start equal
(`teacher_without_ddp.load_state_dict(student.module.state_dict())`), the centres at zero (the buffers'
init). The 5 iterations cross two boundaries: the lr warmup ends after iteration 1, and epoch 0
(iterations 0-1, last layer frozen) gives way to epoch 1 (iterations 2-3, last layer trained, teacher
temperatures warmer) and epoch 2 (iteration 4).

Deviations from the official run (the same as make_ibot_fixtures.py's): no drop path (officially 0.1 on the
student, random), float32 instead of fp16 autocast (`--use_fp16` defaults to true), one process; the crops
and masks are random tensors drawn here and stored, not loader output.

Every iteration is replayed in float64 from the same starting weights: the float32 trajectory's distance from
it (printed and bounded) is the drift that any float32 implementation, ours included, may show.
Seeded, float32, one thread, sorted safetensors metadata: a re-run rewrites byte-identical files.
"""

import random
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FixtureWriter, rand, seed  # noqa: E402
from make_ibot_fixtures import (BATCH, C, CENTER_MOMENTUM, NG, STUDENT_TEMP, IBOTLossRef, Network, block_mask,  # noqa: E402
                                build, cosine_scheduler)

SCRIPT = "tools/reference/make_ibot_trajectory_fixtures.py"
WRITER = FixtureWriter(SCRIPT, max_file_bytes=200 * 1024, max_total_bytes=400 * 1024)

STEPS = 5
EPOCHS, ITERS_PER_EPOCH = 3, 2          # 6 iterations in the schedules; 5 of them run
# main_ibot.py argument names
LR, MIN_LR, WARMUP_EPOCHS = 2e-3, 1e-4, 1
WEIGHT_DECAY, WEIGHT_DECAY_END = 0.04, 0.4
MOMENTUM_TEACHER = 0.8                  # low, so that 5 steps move the teacher visibly
CLIP_GRAD = 3.0                          # the official default; every iteration has tensors above and below it
FREEZE_LAST_LAYER = 1
TEMPS = (0.04, 0.05, 0.04, 0.07)        # warmup / final teacher temperature, [CLS] then patches
WARMUP_TEACHER_TEMP_EPOCHS = 3
PRED_RATIO_RANGE = (0.1, 0.5)           # a masked crop's share; about one crop in four is unmasked


# --------------------------------------------------------------------------------------------------
# utils.py (bytedance/ibot): the optimizer's groups and the gradient adjustments
# --------------------------------------------------------------------------------------------------
def get_params_groups(model):
    """utils.py `get_params_groups`: no decay on biases and 1-D tensors; frozen tensors left out."""
    regularized, not_regularized = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (not_regularized if name.endswith(".bias") or len(param.shape) == 1 else regularized).append(param)
    return [{"params": regularized}, {"params": not_regularized, "weight_decay": 0.0}]


def clip_gradients(model, clip):
    """utils.py `clip_gradients`: each tensor's gradient scaled to norm `clip` when above it. Returns
    how many tensors were clipped."""
    clipped = 0
    for _, p in model.named_parameters():
        if p.grad is not None:
            clip_coef = clip / (p.grad.data.norm(2) + 1e-6)
            if clip_coef < 1:
                p.grad.data.mul_(clip_coef)
                clipped += 1
    return clipped


def cancel_gradients_last_layer(epoch, model, freeze_last_layer):
    """utils.py `cancel_gradients_last_layer`."""
    if epoch >= freeze_last_layer:
        return
    for n, p in model.named_parameters():
        if "last_layer" in n:
            p.grad = None


# --------------------------------------------------------------------------------------------------
# main_ibot.py train_one_epoch, iteration by iteration
# --------------------------------------------------------------------------------------------------
def schedules():
    total = EPOCHS * ITERS_PER_EPOCH
    lr = cosine_scheduler(LR, MIN_LR, EPOCHS, ITERS_PER_EPOCH, warmup_epochs=WARMUP_EPOCHS)
    wd = cosine_scheduler(WEIGHT_DECAY, WEIGHT_DECAY_END, EPOCHS, ITERS_PER_EPOCH)
    momentum = cosine_scheduler(MOMENTUM_TEACHER, 1, EPOCHS, ITERS_PER_EPOCH)
    assert len(lr) == len(wd) == len(momentum) == total
    return lr, wd, momentum


def train(student, teacher, steps):
    """Runs `steps` (crops, masks) iterations from the networks' current weights and zero centres.
    Returns per iteration the losses and what was used, and the loss module (its centres)."""
    lr_schedule, wd_schedule, momentum_schedule = schedules()
    dtype = next(student.parameters()).dtype
    K = C["out_dim"]
    loss_fn = IBOTLossRef(K, torch.zeros(1, K, dtype=dtype), torch.zeros(1, 1, K, dtype=dtype), temps=TEMPS,
                          warmup_epochs=WARMUP_TEACHER_TEMP_EPOCHS, epochs=EPOCHS)
    optimizer = torch.optim.AdamW(get_params_groups(student))
    names_k = [n for n, _ in teacher.named_parameters()]
    names_common = set(n for n, _ in student.named_parameters()) & set(names_k)
    params_q = [p for n, p in student.named_parameters() if n in names_common]
    params_k = [p for n, p in teacher.named_parameters() if n in names_common]
    assert len(params_q) == len(params_k) == len(names_k), "every teacher tensor has a student twin"
    records = []
    for it, (crops, masks) in enumerate(steps):
        epoch = it // ITERS_PER_EPOCH
        for i, group in enumerate(optimizer.param_groups):
            group["lr"] = lr_schedule[it]
            if i == 0:
                group["weight_decay"] = wd_schedule[it]
        crops = [c.to(dtype) for c in crops]
        with torch.no_grad():
            teacher_output = teacher(crops)
        student_output = student(crops, masks=masks)
        out = loss_fn(student_output, teacher_output, None, masks, epoch)
        optimizer.zero_grad()
        out["loss"].backward()
        clipped = clip_gradients(student, CLIP_GRAD)
        cancel_gradients_last_layer(epoch, student, FREEZE_LAST_LAYER)
        frozen = sorted(n for n, p in student.our_params() if p.requires_grad and p.grad is None)
        optimizer.step()
        with torch.no_grad():
            m = momentum_schedule[it]
            for param_q, param_k in zip(params_q, params_k):
                param_k.data.mul_(m).add_((1 - m) * param_q.detach().data)
        records.append(dict(cls=out["cls"].item(), patch=out["patch"].item(), loss=out["loss"].item(),
                            temp=float(out["temp"]), temp2=float(out["temp2"]), lr=float(lr_schedule[it]),
                            wd=float(wd_schedule[it]), momentum=float(m), clipped=clipped, frozen=frozen))
    return records, loss_fn


def teacher_equal_to(student, teacher):
    """main_ibot.py: `teacher_without_ddp.load_state_dict(student.module.state_dict(), strict=False)`."""
    own = dict(student.named_parameters())
    with torch.no_grad():
        for n, q in teacher.named_parameters():
            q.copy_(own[n])


def comparable(name, t):
    """The part of a tensor a trajectory determines. The key third of `attn.qkv.bias` is not: adding a
    constant to every key shifts each softmax row by a constant, so its gradient is zero in exact
    arithmetic and rounding noise in float, which AdamW's m / sqrt(v) turns into steps of about ±lr in a
    random direction (in the official code as in any other). It does not change the loss."""
    if name.endswith("attn.qkv.bias"):
        d = t.shape[0] // 3
        return torch.cat([t[:d], t[2 * d:]])
    return t


def relative(a, b):
    """max |a − b| / max |b| (b the float64 reference)."""
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def run_case(student, teacher, steps, label):
    """The iterations in float32 and, from the same start, in float64; prints both and the drift. Returns the
    float32 records and final state (every checkpointed tensor under our names)."""
    K = C["out_dim"]
    free_g = student.head.last_layer.weight_g.requires_grad
    s64 = Network(C, student=True, norm_last_layer=not free_g).double()
    s64.load_state_dict({k: v.double() for k, v in student.state_dict().items()})
    t64 = Network(C, student=False).double()
    t64.load_state_dict({k: v.double() for k, v in teacher.state_dict().items()})
    for q in list(teacher.parameters()) + list(t64.parameters()):
        q.requires_grad_(False)
    last_layer_before = student.head.last_layer.weight_v.detach().clone()

    records, loss_fn = train(student, teacher, steps)
    records64, loss64 = train(s64, t64, steps)

    print(f"{label}:")
    print(f"{'it':>2} {'epoch':>5} {'lr':>9} {'wd':>7} {'momentum':>8} {'temps':>11} {'clipped':>7} {'frozen':>6}  "
          f"{'loss':>11} {'cls':>11} {'patch':>11}  rel. to float64")
    worst_loss = 0.0
    for it, (r, r64) in enumerate(zip(records, records64)):
        err = max(abs(r[k] - r64[k]) / abs(r64[k]) for k in ("loss", "cls", "patch"))
        worst_loss = max(worst_loss, err)
        print(f"{it:2d} {it // ITERS_PER_EPOCH:5d} {r['lr']:9.3g} {r['wd']:7.4f} {r['momentum']:8.5f} {r['temp']:.3f}/{r['temp2']:.3f} "
              f"{r['clipped']:7d} {len(r['frozen']):6d}  {r['loss']:11.7f} {r['cls']:11.7f} {r['patch']:11.7f}  {err:.1e}")
    # what the trajectory is meant to cross
    last_layer = 2 if free_g else 1
    assert [len(r["frozen"]) for r in records] == [last_layer] * 2 + [0] * 3, "the last layer frozen in epoch 0 only"
    assert records[0]["lr"] == 0 and records[1]["lr"] == LR, "warmup: np.linspace(0, lr, 2)"
    assert all(0 < r["clipped"] < len(list(p for p in student.parameters() if p.requires_grad)) for r in records), \
        "every iteration clips some tensors and not others"
    assert len(set(r["temp2"] for r in records)) == 3, "the patch temperature changes with each epoch"
    assert not torch.equal(student.head.last_layer.weight_v, last_layer_before), "the last layer moves after epoch 0"

    final = dict(student.our_state())
    final.update({"teacher." + k: v for k, v in teacher.our_state().items()})
    final["ibot_loss.center"] = loss_fn.center.detach().reshape(1, K)
    final["ibot_loss.center2"] = loss_fn.center2.detach().reshape(1, K)
    final64 = dict(s64.our_state())
    final64.update({"teacher." + k: v for k, v in t64.our_state().items()})
    final64["ibot_loss.center"] = loss64.center.reshape(1, K)
    final64["ibot_loss.center2"] = loss64.center2.reshape(1, K)
    drift = sorted(((relative(comparable(k, final[k]), comparable(k, final64[k])), k) for k in final), reverse=True)
    print(f"float32 vs float64 after {STEPS} iterations: losses ≤ {worst_loss:.1e} relative; tensors (max |Δ| / max |ref|) "
          f"worst {drift[0][0]:.1e} ({drift[0][1]}), then {drift[1][0]:.1e} ({drift[1][1]}), median {drift[len(drift) // 2][0]:.1e}")
    assert worst_loss < 1e-5 and drift[0][0] < 1e-4, (worst_loss, drift[:3])
    return records, final


def free_g_copy(student, teacher):
    """The same start with `--norm_last_layer false`: g (still 1, DINOHead's fill) trained, decayed (its (K, 1) shape
    puts it in get_params_groups' regularized group) and frozen with the rest of the last layer in epoch 0."""
    s2 = Network(C, student=True, norm_last_layer=False)
    s2.load_state_dict(student.state_dict())
    t2 = Network(C, student=False)
    t2.load_state_dict(teacher.state_dict())
    assert s2.head.last_layer.weight_g.requires_grad and torch.all(s2.head.last_layer.weight_g == 1)
    return s2, t2


def main():
    s = seed(430)
    student, teacher = build(norm_last_layer=True)
    teacher_equal_to(student, teacher)
    K, g = C["out_dim"], C["img_size"] // C["patch_size"]

    # the crops and masks of every iteration
    rng = random.Random(s)
    steps = []
    for _ in range(STEPS):
        crops = list(rand(NG * BATCH, C["in_chans"], C["img_size"], C["img_size"]).chunk(NG))   # view-major
        ratios = [[0.0 if rng.random() < 0.25 else rng.uniform(*PRED_RATIO_RANGE) for _ in range(BATCH)] for _ in range(NG)]
        masks = [torch.from_numpy(np.stack([block_mask(rng, g, g, r) for r in view])) for view in ratios]
        assert any(m.any() for m in masks), "every iteration has masked patches"
        steps.append((crops, masks))

    init_state = dict(student.our_state())
    init_state.update({"teacher." + k: v for k, v in teacher.our_state().items()})
    init_state["ibot_loss.center"] = torch.zeros(1, K)
    init_state["ibot_loss.center2"] = torch.zeros(1, 1, K)

    free_student, free_teacher = free_g_copy(student, teacher)
    records, final = run_case(student, teacher, steps, "norm_last_layer true")
    free_records, free_final = run_case(free_student, free_teacher, steps, "norm_last_layer false")
    moved_g = free_final["head.last_layer.weight_g"]
    assert not torch.equal(moved_g, torch.ones_like(moved_g)) and torch.equal(final["head.last_layer.weight_g"], torch.ones_like(moved_g))

    name = "pretrain/ibot_tiny"
    meta = {"steps": str(STEPS), "epochs": str(EPOCHS), "iters_per_epoch": str(ITERS_PER_EPOCH), "lr": repr(LR),
            "min_lr": repr(MIN_LR), "warmup_epochs": str(WARMUP_EPOCHS), "weight_decay": repr(WEIGHT_DECAY),
            "weight_decay_end": repr(WEIGHT_DECAY_END), "momentum_teacher": repr(MOMENTUM_TEACHER), "clip_grad": repr(CLIP_GRAD),
            "freeze_last_layer": str(FREEZE_LAST_LAYER), "warmup_teacher_temp": repr(TEMPS[0]), "teacher_temp": repr(TEMPS[1]),
            "warmup_teacher_patch_temp": repr(TEMPS[2]), "teacher_patch_temp": repr(TEMPS[3]),
            "warmup_teacher_temp_epochs": str(WARMUP_TEACHER_TEMP_EPOCHS), "student_temp": repr(STUDENT_TEMP), "center_momentum": repr(CENTER_MOMENTUM),
            "betas": "0.9,0.999", "eps": "1e-08", "images_layout": "(step, view * B + image, C, H, W)",
            "mask": "(step, view, image, H, W), 1 = masked, row-major patches"}
    WRITER.save(f"{name}/trajectory_init.safetensors", init_state, seed=s,
                meta={"contents": "student, teacher (= student) and zero centres before iteration 0, as model.safetensors"})
    io = {"images": torch.stack([torch.cat(c) for c, _ in steps]),
          "masks": torch.stack([torch.stack(m) for _, m in steps]).to(torch.int64)}
    for key in ("loss", "cls", "patch", "lr", "wd", "momentum", "temp", "temp2"):
        io[f"step_{key}"] = torch.tensor([r[key] for r in records], dtype=torch.float32)
    io.update({"final." + k: v for k, v in final.items()})
    WRITER.save(f"{name}/trajectory.safetensors", io, seed=s, meta=meta)
    free = {f"step_{key}": torch.tensor([r[key] for r in free_records], dtype=torch.float32)
            for key in ("loss", "cls", "patch", "lr", "wd", "momentum", "temp", "temp2")}
    free.update({"final." + k: v for k, v in free_final.items()})
    WRITER.save(f"{name}/trajectory_free_g.safetensors", free, seed=s,
                meta=dict(meta, norm_last_layer="false",
                          inputs="images and masks of trajectory.safetensors, start of trajectory_init.safetensors (g = 1)"))
    WRITER.check(max_keys=12)


if __name__ == "__main__":
    main()
