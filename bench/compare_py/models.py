"""The models every engine runs, their sizes, and the files that carry the same weights to each.

An encoder's model directory (config.json + model.safetensors, docs/MODEL_DIRECTORY.md) is what
our Swift code loads; PyTorch loads the same safetensors into a timm VisionTransformer and
onnxruntime runs an ONNX export of that module. Imports of torch/timm happen inside functions so
that the orchestrator, which only reads results, never loads them.
"""

import json
import os
import subprocess
import sys
import types
from functools import partial
from pathlib import Path

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

# The encoders of the forward comparison (timm VisionTransformer, cls pooling after the final norm).
ENCODERS = {
    # ViT-B/16 at 224 with timm's crop_pct for it, so the server resizes like timm would.
    "vit_b16": dict(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12, crop_pct=0.9),
    # The tiny ViT: 32 px, patch 4, 192 wide, 12 deep, 3 heads.
    "vit_tiny": dict(img_size=32, patch_size=4, embed_dim=192, depth=12, num_heads=3, crop_pct=1.0),
}

# ModelPreset.tiny as `bootmae-train pretrain --preset tiny` builds it for 1-channel data with the
# default mask ratio 0.75 (Sources/Training/Pretrain/PretrainRecipe.swift): 49 patches, 37 masked.
BOOTMAE_TINY = dict(img_size=28, patch_size=4, in_chans=1, embed_dim=128, depth=6, num_heads=4, mlp_ratio=4.0,
                    decoder_embed_dim=64, decoder_depth=2, feature_decoder_depth=2, feature_layers=[0, 5],
                    num_mask=37)
# BlockMasking.scaled(grid: 7, ratio: 37/49) in Sources/ViT/Pretraining/Masking.swift.
BOOTMAE_TINY_BLOCKS = dict(block_patches=30, min_block=4, max_block=15, max_roll=3)

SEED = 20261124
# Bump when what prepare() writes changes, so cached directories are rebuilt.
PREPARE_VERSION = 3


def import_timm():
    """Imports timm with its default (fused) attention.

    PyPI has torchvision only as a CUDA build; next to the CPU torch its `import` fails while
    registering kernels for detection ops. No ViT uses them, so that registration module is
    replaced by an empty one (tools/reference/common.py does the same for the fixtures).
    """
    probe = subprocess.run([sys.executable, "-c", "import torchvision"], capture_output=True, text=True)
    if probe.returncode != 0:
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
    import timm
    return timm


def build_vit(spec):
    """A timm VisionTransformer for `spec` (3 channels, cls pooling, no head), random init."""
    import torch.nn as nn
    import_timm()
    from timm.models.vision_transformer import VisionTransformer
    return VisionTransformer(img_size=spec["img_size"], patch_size=spec["patch_size"], in_chans=3, num_classes=0,
                             global_pool="token", embed_dim=spec["embed_dim"], depth=spec["depth"],
                             num_heads=spec["num_heads"], mlp_ratio=4.0, qkv_bias=True,
                             norm_layer=partial(nn.LayerNorm, eps=1e-6))


def encoder_config(spec):
    """config.json of the model directory (schema: docs/MODEL_DIRECTORY.md)."""
    return {"img_size": spec["img_size"], "patch_size": spec["patch_size"], "in_chans": 3,
            "embed_dim": spec["embed_dim"], "depth": spec["depth"], "num_heads": spec["num_heads"],
            "mlp_ratio": 4.0, "qkv_bias": "qkv", "layer_norm_eps": 1e-6, "global_pool": "cls",
            "pos_embed": "checkpoint", "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "crop_pct": spec["crop_pct"]}


def tokens(spec):
    return (spec["img_size"] // spec["patch_size"]) ** 2 + 1


def flops_per_image(spec):
    """Multiply-adds x2 of one forward pass: the same count bootmae-bench prints (Measure.swift)."""
    t, d, h = tokens(spec), spec["embed_dim"], 4 * spec["embed_dim"]
    patch = 2 * (t - 1) * 3 * spec["patch_size"] ** 2 * d
    block = 2 * t * d * 3 * d + 2 * 2 * t * t * d + 2 * t * d * d + 2 * 2 * t * d * h
    return patch + spec["depth"] * block


def activation_bytes(spec, batch, blocks=1):
    """Float32 activations of an inference forward at `batch`: the input images plus every tensor
    `blocks` blocks create (inference needs one block's at a time, docs/ARCHITECTURE.md): per
    token the residual in and out, two LayerNorm outputs, qkv (3D), attention output, projection,
    the residual between (D each), fc1 and GELU (4D each), fc2 (D): 19D, plus the attention
    scores, heads x T per token."""
    t, d = tokens(spec), spec["embed_dim"]
    per_block = batch * t * (19 * d + spec["num_heads"] * t)
    images = batch * 3 * spec["img_size"] ** 2
    return 4 * (blocks * per_block + images)


def write_encoder(name, out_dir, with_onnx=True):
    """Random timm weights for ENCODERS[name] -> out_dir/{config.json, model.safetensors, model.onnx}
    plus out_dir/check_images.safetensors (2 random images) for the equality check."""
    import torch
    from safetensors.torch import save_file
    spec = ENCODERS[name]
    torch.manual_seed(SEED)
    model = build_vit(spec).eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / "model.safetensors"), metadata={"generator": "bench/compare_py/models.py",
                                                                    "seed": str(SEED)})
    (out_dir / "config.json").write_text(json.dumps(encoder_config(spec), indent=2) + "\n")
    images = torch.randn(2, 3, spec["img_size"], spec["img_size"], generator=torch.Generator().manual_seed(SEED + 1))
    save_file({"images": images}, str(out_dir / "check_images.safetensors"))
    if with_onnx:
        # The torch.export-based exporter (torch's default). The legacy TorchScript exporter traced
        # the batch size of the example into timm's graph here: wrong outputs at any other batch.
        example = torch.randn(2, 3, spec["img_size"], spec["img_size"])
        torch.onnx.export(model, (example,), str(out_dir / "model.onnx"), input_names=["images"],
                          output_names=["embeddings"], dynamic_shapes=({0: torch.export.Dim("batch")},),
                          dynamo=True, verbose=False)
    return out_dir


def prepare(root, names, force=False):
    """Writes (or reuses) root/<name> for each encoder; returns {name: directory}."""
    import torch
    timm = import_timm()
    stamp = {"version": PREPARE_VERSION, "seed": SEED, "torch": torch.__version__, "timm": timm.__version__}
    dirs = {}
    for name in names:
        d = Path(root) / name
        stamp_file = d / "stamp.json"
        if not force and stamp_file.exists() and json.loads(stamp_file.read_text()) == dict(stamp, spec=ENCODERS[name]):
            print(f"prepare: reusing {d}", file=sys.stderr)
        else:
            print(f"prepare: writing {d} (random timm weights, seed {SEED}, ONNX export)", file=sys.stderr)
            for f in ("stamp.json", "model.onnx", "model.onnx.data"):
                if (d / f).exists():
                    os.remove(d / f)
            write_encoder(name, d)
            stamp_file.write_text(json.dumps(dict(stamp, spec=ENCODERS[name])) + "\n")
        dirs[name] = d
    return dirs
