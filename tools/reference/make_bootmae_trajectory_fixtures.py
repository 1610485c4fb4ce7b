#!/usr/bin/env python3
"""Reference fixture for five consecutive BootMAE training iterations (a trajectory, not one step).

Usage (from the repository root):
    .venv-ref/bin/python tools/reference/make_bootmae_trajectory_fixtures.py

Writes Tests/Fixtures/pretrain/bootmae_tiny/trajectory.safetensors (contents in Tests/Fixtures/README.md); the
model is config.json of that folder and its start the online network of model.safetensors (make_pretrain_fixtures.py).

The network, masks, targets and losses are make_pretrain_fixtures.py's (imported, not rewritten); each iteration is
composed as LightDXY/BootMAE at d604b18 composes it in run_pretraining.py `train_one_epoch`:
  1. per epoch: the feature-loss weight `feature_weight * (1 + epoch) / epochs * 4`, capped at `feature_weight`,
     and the momentum encoder's decay `utils.adjust_ema_momentum(epoch)` (0.9999 reached after 100 epochs);
  2. per iteration: lr_schedule_values[it] (`utils.cosine_scheduler` with warmup) into every param group, and
     wd_schedule_values[it] into the groups whose weight decay is > 0 (constant: `--weight_decay_end` defaults to
     `--weight_decay`);
  3. the pixel loss against per-patch normalized pixels with the neighbourhood weights (`--weight_mask`), the
     feature loss against the layer-normed last-block features of the momentum encoder (`model_ema.ema.get_feature`,
     taken before this iteration's update), loss = Rloss + λ·Ploss;
  4. backward and `optimizer.step()` (`NativeScaler`: `--clip_grad` defaults to None, so no clipping), then
     `model_ema.update(model)` (timm `ModelEma`: ema ← ema·decay + (1 − decay)·online, every shared tensor).
The optimizer is optim_factory.py `create_adamw_optimizer`: `get_parameter_groups` with `model.no_weight_decay()`
= {pos_embed, cls_token} (1-D tensors and biases in the no-decay group too), AdamW betas (0.9, 0.95) as written
there, eps 1e-8. The momentum encoder starts as a copy of the online one (`ModelEma` deep-copies the model).

Recipe knobs are shrunk so 5 iterations show each schedule move: 10 epochs of 2 iterations, lr 2e-3 with a 1-epoch
warmup (np.linspace(0, lr, 2): iteration 0 at lr 0) to min 1e-4, weight decay 0.05, `--model_ema_decay` 0.9 (the
official start is 0.999, which would leave the momentum encoder almost still), feature weight 0.8, so λ is 0.32,
0.32, 0.64, 0.64, 0.8 (capped from epoch 2 on). Deviations from the official run: float32 instead of autocast fp16,
one process, random crops and masks drawn here (BootMAE's block masks + `mask_to_index`'s noise and roll) and stored.

Every iteration is replayed in float64 from the same starting weights; the float32 run's distance from it is printed
and bounded. Seeded, float32, one thread, sorted safetensors metadata: a re-run rewrites a byte-identical file.
"""

import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, FixtureWriter, rand, seed  # noqa: E402
from make_ibot_fixtures import cosine_scheduler  # noqa: E402  (BootMAE's utils.cosine_scheduler is the same function)
from make_pretrain_fixtures import (  # noqa: E402
    BATCH, BOOT, BOOT_BLOCK_MAX, BOOT_BLOCK_MIN, BOOT_BLOCK_PATCHES, BootMAEEncoderPart, BootMAEPretrain, block_mask,
    bootmae_losses, bootmae_masks, pixel_target,
)

SCRIPT = "tools/reference/make_bootmae_trajectory_fixtures.py"
WRITER = FixtureWriter(SCRIPT, max_file_bytes=600 * 1024, max_total_bytes=600 * 1024)

STEPS = 5
EPOCHS, ITERS_PER_EPOCH = 10, 2
# run_pretraining.py argument names
LR, MIN_LR, WARMUP_EPOCHS = 2e-3, 1e-4, 1
WEIGHT_DECAY = 0.05
MODEL_EMA_DECAY = 0.9
FEATURE_WEIGHT = 0.8
BETAS = (0.9, 0.95)                     # optim_factory.py create_adamw_optimizer


# --------------------------------------------------------------------------------------------------
# utils.py / optim_factory.py (LightDXY/BootMAE)
# --------------------------------------------------------------------------------------------------
def adjust_ema_momentum(epoch, model_ema_decay, model_ema_dynamic=False):
    """utils.py `adjust_ema_momentum`. The trainer follows the Large script (no --model_ema_dynamic, so the
    decay stays at 0.9999 after epoch 100); the Base script's dynamic branch is kept for reading only."""
    if epoch < 100:
        return model_ema_decay + epoch / 100 * (0.9999 - model_ema_decay)
    if model_ema_dynamic:
        return 0.9999 + min(300, epoch - 100) / 300 * (0.99999 - 0.9999)
    return 0.9999


def feature_weight_at(epoch):
    """run_pretraining.py `train_one_epoch`: linear increase of the feature weight over 25% of the epochs."""
    return min(FEATURE_WEIGHT * (1 + epoch) / EPOCHS * 4, FEATURE_WEIGHT)


def get_parameter_groups(model, weight_decay, skip_list):
    """optim_factory.py `get_parameter_groups` without layer decay (lr_scale 1)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if len(param.shape) == 1 or name.endswith(".bias") or name in skip_list else decay).append(param)
    return [{"weight_decay": weight_decay, "params": decay, "lr_scale": 1.0},
            {"weight_decay": 0.0, "params": no_decay, "lr_scale": 1.0}]


# --------------------------------------------------------------------------------------------------
# run_pretraining.py train_one_epoch, iteration by iteration
# --------------------------------------------------------------------------------------------------
def train(model, ema, steps):
    """Runs (images, ids_shuffle) iterations from the networks' current weights; returns per iteration the losses
    and the schedule values used."""
    lr_schedule = cosine_scheduler(LR, MIN_LR, EPOCHS, ITERS_PER_EPOCH, warmup_epochs=WARMUP_EPOCHS)
    wd_schedule = cosine_scheduler(WEIGHT_DECAY, WEIGHT_DECAY, EPOCHS, ITERS_PER_EPOCH)
    optimizer = torch.optim.AdamW(get_parameter_groups(model, WEIGHT_DECAY, {"pos_embed", "cls_token"}), lr=LR,
                                  betas=BETAS, weight_decay=WEIGHT_DECAY)
    dtype = next(model.parameters()).dtype
    g, p, M = BOOT["img_size"] // BOOT["patch_size"], BOOT["patch_size"], BOOT["num_mask"]
    records = []
    for it, (images, ids_shuffle) in enumerate(steps):
        epoch = it // ITERS_PER_EPOCH
        lam = feature_weight_at(epoch)
        decay = adjust_ema_momentum(epoch, MODEL_EMA_DECAY)
        for group in optimizer.param_groups:
            group["lr"] = lr_schedule[it] * group["lr_scale"]
            if group["weight_decay"] > 0:
                group["weight_decay"] = wd_schedule[it]
        images = images.to(dtype)
        loss_mask, weight = bootmae_masks(ids_shuffle, M, g)
        with torch.no_grad():
            target_feat = ema.full_image_target(images)
        out = model(images, ids_shuffle, M)
        loss_pixel, loss_feature, loss = bootmae_losses(out, pixel_target(images, p), target_feat, loss_mask.to(dtype),
                                                        weight.to(dtype), p, lam)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        with torch.no_grad():                          # timm ModelEma.update over the shared tensors
            online = model.state_dict()
            for name, ema_v in ema.state_dict().items():
                ema_v.copy_(ema_v * decay + (1.0 - decay) * online[name])
        records.append(dict(loss=loss.item(), pixel=loss_pixel.item(), feature=loss_feature.item(), lr=float(lr_schedule[it]),
                            wd=float(wd_schedule[it]), ema_decay=decay, feature_weight=lam))
    return records


def relative(a, b):
    """max |a − b| / max |b| (b the float64 reference)."""
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def main():
    s = seed(440)
    name = "pretrain/bootmae_tiny"
    committed = ROOT / "Tests" / "Fixtures" / name / "model.safetensors"      # the input, wherever the output goes
    start = {k: v for k, v in load_file(str(committed)).items() if not k.startswith("model_ema.")}
    model = BootMAEPretrain(BOOT)
    model.load_state_dict(start)
    ema = BootMAEEncoderPart(BOOT)
    ema.load_state_dict({k: v for k, v in start.items() if k in ema.state_dict()})
    for q in ema.parameters():
        q.requires_grad_(False)

    g, N, M = BOOT["img_size"] // BOOT["patch_size"], (BOOT["img_size"] // BOOT["patch_size"]) ** 2, BOOT["num_mask"]
    rng = np.random.default_rng(s)
    steps = []
    for _ in range(STEPS):
        images = rand(BATCH, BOOT["in_chans"], BOOT["img_size"], BOOT["img_size"])
        # utils.py mask_to_index: block mask, key = mask − U[0, 1), argsort, one roll in 0...3 for the batch
        blk = torch.from_numpy(np.stack([block_mask(rng, g, BOOT_BLOCK_PATCHES, BOOT_BLOCK_MIN, BOOT_BLOCK_MAX).reshape(-1)
                                         for _ in range(BATCH)]).astype(np.float32))
        ids_shuffle = torch.argsort(blk - torch.rand(BATCH, N), dim=1).roll(int(rng.integers(0, 4)), dims=1).to(torch.int64)
        steps.append((images, ids_shuffle))

    m64 = BootMAEPretrain(BOOT).double()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    e64 = BootMAEEncoderPart(BOOT).double()
    e64.load_state_dict({k: v.double() for k, v in ema.state_dict().items()})
    for q in e64.parameters():
        q.requires_grad_(False)

    records = train(model, ema, steps)
    records64 = train(m64, e64, steps)
    worst_loss = 0.0
    print(f"{'it':>2} {'epoch':>5} {'lr':>9} {'λ':>5} {'ema decay':>9}  {'loss':>11} {'pixel':>11} {'feature':>11}  rel. to float64")
    for it, (r, r64) in enumerate(zip(records, records64)):
        err = max(abs(r[k] - r64[k]) / abs(r64[k]) for k in ("loss", "pixel", "feature"))
        worst_loss = max(worst_loss, err)
        print(f"{it:2d} {it // ITERS_PER_EPOCH:5d} {r['lr']:9.3g} {r['feature_weight']:5.2f} {r['ema_decay']:9.6f}  "
              f"{r['loss']:11.7f} {r['pixel']:11.7f} {r['feature']:11.7f}  {err:.1e}")
    assert records[0]["lr"] == 0 and records[1]["lr"] == LR, "warmup: np.linspace(0, lr, 2)"
    assert len(set(r["feature_weight"] for r in records)) == 3 and len(set(r["ema_decay"] for r in records)) == 3

    final = {k: v for k, v in model.state_dict().items()}
    final.update({"model_ema." + k: v for k, v in ema.state_dict().items()})
    final64 = {k: v for k, v in m64.state_dict().items()}
    final64.update({"model_ema." + k: v for k, v in e64.state_dict().items()})
    drift = sorted(((relative(final[k], final64[k]), k) for k in final), reverse=True)
    print(f"float32 vs float64 after {STEPS} iterations: losses ≤ {worst_loss:.1e} relative; tensors (max |Δ| / max |ref|) "
          f"worst {drift[0][0]:.1e} ({drift[0][1]}), then {drift[1][0]:.1e} ({drift[1][1]}), median {drift[len(drift) // 2][0]:.1e}")
    assert worst_loss < 1e-5 and drift[0][0] < 1e-4, (worst_loss, drift[:3])
    moved = [k for k in start if k in final and not torch.equal(final[k], start[k])]
    frozen = sorted(k for k, p in model.named_parameters() if not p.requires_grad)
    assert sorted(set(start) - set(moved)) == frozen == ["de_pos_embed", "pos_embed"], sorted(set(start) - set(moved))

    meta = {"steps": str(STEPS), "epochs": str(EPOCHS), "iters_per_epoch": str(ITERS_PER_EPOCH), "lr": repr(LR),
            "min_lr": repr(MIN_LR), "warmup_epochs": str(WARMUP_EPOCHS), "weight_decay": repr(WEIGHT_DECAY),
            "model_ema_decay": repr(MODEL_EMA_DECAY), "ema_ramp_epochs": "100", "ema_end": "0.9999",
            "feature_weight": repr(FEATURE_WEIGHT), "betas": ",".join(map(repr, BETAS)), "eps": "1e-08",
            "start": "model.safetensors without model_ema. (the momentum encoder starts as the online one)",
            "images_layout": "(step, image, C, H, W)", "ids_shuffle": "(step, image, N): visible first, then masked"}
    io = {"images": torch.stack([im for im, _ in steps]), "ids_shuffle": torch.stack([ids for _, ids in steps])}
    for key in ("loss", "pixel", "feature", "lr", "wd", "ema_decay", "feature_weight"):
        io[f"step_{key}"] = torch.tensor([r[key] for r in records], dtype=torch.float32)
    io.update({"final." + k: v for k, v in final.items()})
    WRITER.save(f"{name}/trajectory.safetensors", io, seed=s, meta=meta)
    WRITER.check(max_keys=12)


if __name__ == "__main__":
    main()
