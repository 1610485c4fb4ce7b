#!/usr/bin/env python3
"""PyTorch fixtures for LoMaR, computed by the official model code itself.

Usage (from the repository root):
    .venv-ref/bin/python tools/reference/make_lomar_fixtures.py [--lomar-src DIR | --lomar-git GITDIR]

The official modules are imported, not copied: from a checkout of junchen14/LoMaR (--lomar-src), or
read at commit LOMAR_COMMIT out of a git directory (--lomar-git, default $LOMAR_GIT or the mirror at
/work/.mirror/junchen14+LoMaR/repo) into a temporary folder. Used files: models_lomar.py (the
pretraining model), vision_transformer_irpe.py (Attention with rpe_k), irpe.py (buckets, iRPE),
models_vit_rp.py (the fine-tune / served encoder), util/pos_embed.py. The compiled `rpe_ops` are not
built, so irpe.py takes its pure-PyTorch path (matmul, then index). `easydict` (irpe.py's config
dict) is replaced by a dict with attribute access when it is not installed, and NumPy's removed
`np.float` alias (used by util/pos_embed.py for the frozen table LoMaR never adds) is restored.

Writes (see Tests/Fixtures/README.md):
  lomar/irpe_attention_k4.safetensors, lomar/irpe_attention_k7.safetensors
      vision_transformer_irpe.Attention on a 4x4 and a 7x7 window (+ cls): x, dy, out, dx, the
      iRPE bias rpe_k(q), the official bucket table, every parameter and gradient (table included)
  encoders/lomar_rpe_cls/      models_vit_rp.VisionTransformer (global_pool False: norm, cls), no head
  encoders/lomar_rpe_finetune/ models_vit_rp.VisionTransformer (global_pool True: fc_norm, head), also
                               on two committed photos (SERVED_PHOTOS) as a server gets them: Pillow's
                               decode and timm's eval transform, then logits and their softmax
  pretrain/lomar_tiny/         models_lomar.MaskedAutoencoderViT: config.json, model.safetensors (the
                               official state dict, frozen pos_embed included) and io.safetensors
                               (images, each row's window patches and mask, pred, loss, grad.*)

Seeded, float32, single-threaded; a re-run is byte-identical (REF_FIXTURES_OUT=/tmp/x redirects).
Every gradient comes from backward of sum(output * upstream) with a random upstream tensor stored
next to it, except the pretraining step, whose gradients are of its loss.
"""

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import types
import warnings
from functools import partial
from pathlib import Path

import torch
import torch.nn as nn
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FixtureWriter, leaf, rand, seed  # noqa: E402  (imports timm with its torchvision workaround)
from make_image_fixtures import pil_decoded, timm_eval_tensor  # noqa: E402  (timm's eval transform with Pillow)

SCRIPT = "tools/reference/make_lomar_fixtures.py"
LOMAR_COMMIT = "d9ca9c8ee8ac0d012128149ed10165ab947ecdaf"
OFFICIAL_FILES = ["models_lomar.py", "vision_transformer_irpe.py", "irpe.py", "models_vit_rp.py", "util/pos_embed.py"]
WRITER = FixtureWriter(SCRIPT, max_file_bytes=250 * 1024, max_total_bytes=1200 * 1024)
save = WRITER.save
write_json = WRITER.write_json


# --------------------------------------------------------------------------------------------------
# the official code
# --------------------------------------------------------------------------------------------------
def official_modules(args):
    """Imports the official modules; returns (models_lomar, vision_transformer_irpe, irpe, models_vit_rp)."""
    if args.lomar_src:
        root = Path(args.lomar_src).resolve()
    else:
        root = Path(tempfile.mkdtemp(prefix="lomar-src-"))
        for name in OFFICIAL_FILES:
            text = subprocess.run(["git", "--git-dir", args.lomar_git, "show", f"{LOMAR_COMMIT}:{name}"],
                                  check=True, capture_output=True, text=True).stdout
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
    try:
        import easydict  # noqa: F401
    except ImportError:
        class EasyDict(dict):
            """irpe.py only sets and reads attributes of its config dicts."""
            __getattr__ = dict.__getitem__
            __setattr__ = dict.__setitem__
        sys.modules["easydict"] = types.SimpleNamespace(EasyDict=EasyDict)
    # util/pos_embed.py (the frozen, never-added sin-cos table) uses `np.float`, gone since NumPy 1.24.
    import numpy as np
    if not hasattr(np, "float"):
        np.float = float
    sys.path.insert(0, str(root))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # rpe_ops not built; timm's deprecated import paths
        irpe = importlib.import_module("irpe")
        vti = importlib.import_module("vision_transformer_irpe")
        lomar = importlib.import_module("models_lomar")
        vit_rp = importlib.import_module("models_vit_rp")
    assert irpe.RPEIndexFunction is None, "compiled rpe_ops found: the fixtures use the pure-PyTorch path"
    return lomar, vti, irpe, vit_rp


def randomize(model):
    """Every trainable tensor a random, non-trivial value (the official init leaves the iRPE tables at
    zero, which would test nothing): LayerNorm weight N(1, 0.2^2), bias N(0, 0.1^2); matrices and
    conv kernels N(0, (g/sqrt(fan_in))^2), g = 1.5 for mlp.fc1; other biases N(0, 0.1^2);
    cls_token N(0, 0.5^2), mask_token N(0, 0.2^2); lookup_table_weight N(0, 0.3^2)."""
    with torch.no_grad():
        for mname, mod in model.named_modules():
            for pname, p in mod.named_parameters(recurse=False):
                if not p.requires_grad:
                    continue
                if isinstance(mod, nn.LayerNorm):
                    p.normal_(1.0, 0.2) if pname == "weight" else p.normal_(0.0, 0.1)
                elif pname == "lookup_table_weight":
                    p.normal_(0.0, 0.3)
                elif pname == "weight" and p.dim() >= 2:
                    p.normal_(0.0, (1.5 if mname.endswith("fc1") else 1.0) / p[0].numel() ** 0.5)
                elif pname == "bias":
                    p.normal_(0.0, 0.1)
                elif pname == "cls_token":
                    p.normal_(0.0, 0.5)
                elif pname == "mask_token":
                    p.normal_(0.0, 0.2)
                else:
                    raise ValueError(f"no randomization rule for {mname}.{pname}")


def params_and_grads(model):
    out = {}
    for n, p in model.named_parameters():
        out["param." + n] = p.detach()
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().max() > 0, f"{n} has no gradient"
            out["grad." + n] = p.grad
    return out


IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def encoder_config(img, patch, dim, depth, heads, **extra):
    return {"img_size": img, "patch_size": patch, "in_chans": 3, "embed_dim": dim, "depth": depth, "num_heads": heads,
            "mlp_ratio": 4.0, "qkv_bias": "qkv", "layer_norm_eps": 1e-6, "global_pool": "cls", "pos_embed": "none",
            "relative_position": "irpe_product_k", "mean": IMAGENET_MEAN, "std": IMAGENET_STD, **extra}


META = {"lomar_commit": LOMAR_COMMIT}
# Photos of Tests/Fixtures/images (make_image_fixtures.py) the fine-tune fixture classifies: a PNG and a
# JPEG, both larger than the model's 32 px, so the server's decode, resize and crop are part of the check.
SERVED_PHOTOS = ["rgb.png", "photo_512x384.jpg"]


# --------------------------------------------------------------------------------------------------
# iRPE attention
# --------------------------------------------------------------------------------------------------
def irpe_attention(vti, irpe, name, window, batch, dim, heads, s):
    seed(s)
    attn = vti.Attention(dim, num_heads=heads, qkv_bias=True)
    randomize(attn)
    assert tuple(attn.rpe_k.lookup_table_weight.shape) == (1, dim // heads, 50)
    assert attn.rpe_q is None and attn.rpe_v is None
    L = window * window + 1
    x = leaf(rand(batch, L, dim))
    dy = rand(batch, L, dim)
    out = attn(x)
    (out * dy).sum().backward()
    # The bias alone: rpe_k applied to the (unscaled) q of the same projection.
    with torch.no_grad():
        qkv = attn.qkv(x)
        q = qkv.reshape(batch, L, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)[0]
        bias = attn.rpe_k(q)
    buckets, count = irpe.get_bucket_ids_2d(method=irpe.METHOD.PRODUCT, height=window, width=window, skip=1,
                                             alpha=1.9, beta=3.8, gamma=15.2)
    assert count == 50
    save(f"lomar/{name}.safetensors",
         {"x": x, "dy": dy, "out": out, "dx": x.grad, "qkv": qkv, "rpe_bias": bias.contiguous(),
          "buckets": buckets.to(torch.int64), **params_and_grads(attn)},
         meta={**META, "heads": str(heads), "window": str(window)}, seed=s)


# --------------------------------------------------------------------------------------------------
# the served (fine-tune) encoder
# --------------------------------------------------------------------------------------------------
def rpe_encoder(vit_rp, name, global_pool, classes, s):
    seed(s)
    img, patch, dim, depth, heads = 32, 4, 32, 2, 2
    model = vit_rp.VisionTransformer(global_pool=global_pool, img_size=img, patch_size=patch, in_chans=3,
                                     num_classes=classes, embed_dim=dim, depth=depth, num_heads=heads, mlp_ratio=4,
                                     qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6))
    randomize(model)
    images = leaf(rand(2, 3, img, img))
    # All tokens, through the official modules in forward_features' order (it returns only the pooled
    # features).
    x = model.patch_embed(images)
    x = torch.cat((model.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
    for blk in model.blocks:
        x = blk(x)
    tokens = x if global_pool else model.norm(x)
    features = model.forward_features(images)
    io = {"images": images.detach(), "tokens": tokens.detach()}
    if global_pool:
        logits = model.head(features)
        io.update({"pooled_mean": features.detach(), "logits": logits.detach()})
        assert torch.allclose(features, model.fc_norm(tokens[:, 1:].mean(dim=1)))
        # The photos as a timm / torchvision eval loader gives them to the model (crop_pct 1, the
        # config has none), then the official forward: what /v1/classifications must answer.
        with torch.no_grad():
            photos = torch.stack([torch.from_numpy(timm_eval_tensor(Image.fromarray(pil_decoded(name, "RGB")), img, 1.0, IMAGENET_MEAN,
                                                                    IMAGENET_STD)) for name in SERVED_PHOTOS])
            photo_logits = model(photos)
        io.update({"photo_inputs": photos, "photo_logits": photo_logits, "photo_probs": photo_logits.softmax(dim=-1)})
    else:
        io["pooled_cls"] = features.detach()
        assert torch.equal(features, tokens[:, 0])
        dtokens = rand(*tokens.shape)
        (tokens * dtokens).sum().backward()
        io.update({"dtokens": dtokens, "dimages": images.grad, **{k: v for k, v in params_and_grads(model).items()
                                                                   if k.startswith("grad.")}})
    config = encoder_config(img, patch, dim, depth, heads, global_pool="mean" if global_pool else "cls")
    if classes:
        config["labels"] = [f"class{i}" for i in range(classes)]
    write_json(f"encoders/{name}/config.json", config)
    save(f"encoders/{name}/model.safetensors", {k: v for k, v in model.state_dict().items()}, meta=META, seed=s)
    save(f"encoders/{name}/io.safetensors", io, meta={**META, "photos": SERVED_PHOTOS} if global_pool else META, seed=s)


# --------------------------------------------------------------------------------------------------
# one LoMaR pretraining step
# --------------------------------------------------------------------------------------------------
def lomar_step(lomar, s):
    seed(s)
    img, patch, dim, depth, heads = 32, 4, 32, 2, 2
    window, num_window, mask_ratio = 4, 4, 0.8
    batch = 3  # not a multiple of num_window: the official pairing gives every image 4 distinct windows
    model = lomar.MaskedAutoencoderViT(img_size=img, patch_size=patch, in_chans=3, embed_dim=dim, depth=depth,
                                       num_heads=heads, mlp_ratio=4, norm_layer=partial(nn.LayerNorm, eps=1e-6),
                                       norm_pix_loss=True)
    randomize(model)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    images = rand(batch, 3, img, img)
    # models_lomar.py `forward`, split to keep the rows' patch indices (`ids_restore`).
    pred, mask, rows = model.forward_encoder(images, window, num_window, mask_ratio)
    loss = model.forward_loss(images, pred, mask, num_window, rows)
    loss.backward()
    grid = img // patch
    R = rows.shape[0]
    assert R == batch * num_window and rows.shape[1] == window * window
    assert (mask.sum(dim=1) == int(window * window * mask_ratio)).all()
    # Row r holds image r mod N (features repeated window-major) and window r mod M (indices image-major).
    tops, lefts = rows[:, 0] // grid, rows[:, 0] % grid
    for r in range(R):
        expect = torch.tensor([(tops[r] + i) * grid + lefts[r] + j for i in range(window) for j in range(window)])
        assert torch.equal(rows[r], expect)
    # Targets as forward_loss builds them, for the Swift test's target check.
    with torch.no_grad():
        target = model.patchify(images).unsqueeze(0).repeat(num_window, 1, 1, 1).view(R, grid * grid, -1)
        target = torch.gather(target, 1, rows.unsqueeze(-1).repeat(1, 1, target.shape[-1]))
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
    io = {"images": images, "row_patches": rows.to(torch.int64), "row_image": torch.arange(R) % batch,
          "row_top": tops.to(torch.int64), "row_left": lefts.to(torch.int64), "mask": mask.float(),
          "pred": pred.detach(), "target": target, "loss": loss.detach().reshape(1),
          **{k: v for k, v in params_and_grads(model).items() if k.startswith("grad.")}}
    assert "grad.pos_embed" not in io
    config = {"objective": "lomar", **encoder_config(img, patch, dim, depth, heads),
              "window_size": window, "num_window": num_window, "mask_ratio": mask_ratio, "norm_pix_loss": True}
    write_json("pretrain/lomar_tiny/config.json", config)
    save("pretrain/lomar_tiny/model.safetensors", state, meta=META, seed=s)
    save("pretrain/lomar_tiny/io.safetensors", io, meta={**META, "window": str(window), "num_window": str(num_window)}, seed=s)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lomar-src", help="a checkout of junchen14/LoMaR")
    parser.add_argument("--lomar-git", default=os.environ.get("LOMAR_GIT", "/work/.mirror/junchen14+LoMaR/repo"),
                        help=f"a git directory holding commit {LOMAR_COMMIT}")
    args = parser.parse_args()
    lomar, vti, irpe, vit_rp = official_modules(args)
    irpe_attention(vti, irpe, "irpe_attention_k4", window=4, batch=3, dim=32, heads=2, s=1701)
    irpe_attention(vti, irpe, "irpe_attention_k7", window=7, batch=2, dim=24, heads=3, s=1702)
    rpe_encoder(vit_rp, "lomar_rpe_cls", global_pool=False, classes=0, s=1703)
    rpe_encoder(vit_rp, "lomar_rpe_finetune", global_pool=True, classes=5, s=1704)
    lomar_step(lomar, s=1705)
    WRITER.check(max_keys=12)


if __name__ == "__main__":
    main()
