#!/usr/bin/env python3
"""Convert an official BootMAE or MAE PyTorch checkpoint (.pth) into a bootmae-swift model directory.

    python tools/convert_checkpoint.py IN.pth OUT_DIR [--objective auto|mae|bootmae|encoder]
                                       [--num-heads H] [--decoder-num-heads H] [--img-size N]
                                       [--mean M ...] [--std S ...] [--num-mask M] [--mask-ratio R]
                                       [--feature-layers I J] [--no-ema] [--unsafe-load]

Writes OUT_DIR/model.safetensors (float32, the official key names unchanged) and OUT_DIR/config.json
(schema: docs/MODEL_DIRECTORY.md plus the pretraining fields). Both are written atomically.

What is read from the file:
  * the state dict: checkpoint['model'], else checkpoint['module'] (deepspeed), else
    checkpoint['state_dict'], else the file itself when it is a bare {name: tensor} dict. A common
    'module.' prefix (DistributedDataParallel) is removed.
  * checkpoint['model_ema'] (BootMAE's momentum encoder, a timm ModelEma copy of the whole network):
    its encoder tensors (cls_token, pos_embed, patch_embed.*, blocks.*, norm.*) are written under the
    prefix 'model_ema.'. Its decoder tensors are never used by BootMAE (run_pretraining.py runs the
    copy only through get_feature) and are dropped. --no-ema skips it.

What is inferred from tensor shapes: patch size and input channels (patch_embed.proj.weight), width,
depth (number of blocks.i), MLP ratio, img_size (pos_embed length and patch size), the q/v-bias vs
full qkv-bias attention, the pooling (fc_norm present = mean pooling), decoder widths and depths.
Head counts are not visible in shapes: --num-heads (default by width, the official configs:
192->3, 384->6, 768->12, 1024->16, 1280->16, ...) and for MAE --decoder-num-heads (official: 16).
BootMAE decoders use the encoder's heads; their q_bias length (heads * (width // heads)) is checked
against the head count. Not inferable either, with the official defaults: BootMAE feature_layers
[0, depth-1] and num_mask = 75% of the patches (147 of 196); MAE mask_ratio 0.75, norm_pix_loss true.
"""

import argparse
import json
import math
import os
import re
import struct
import sys
import tempfile
from pathlib import Path

try:
    import torch
except ImportError:  # pragma: no cover
    sys.exit("error: this converter needs PyTorch (pip install torch)")

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
HALF_MEAN = [0.5, 0.5, 0.5]
HALF_STD = [0.5, 0.5, 0.5]
# Official head counts by encoder width (ViT-Ti/S/B/L/H and the test fixtures' tiny widths).
DEFAULT_HEADS = {64: 4, 192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16}
DEFAULT_MAE_DECODER_HEADS = {512: 16}
ENCODER_PREFIXES = ("cls_token", "pos_embed", "patch_embed.", "blocks.", "norm.")
EMA_PREFIX = "model_ema."


def fail(msg):
    sys.exit(f"error: {msg}")


def warn(msg):
    print(f"warning: {msg}", file=sys.stderr)


# --------------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------------
def load_checkpoint(path, unsafe):
    path = Path(path)
    if not path.is_file():
        fail(f"{path}: no such file")
    if path.stat().st_size == 0:
        fail(f"{path}: the file is empty, not a PyTorch checkpoint")
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) >= 8 and head[8:9] == b"{":
        fail(f"{path}: this looks like a safetensors file; it is already in the model-directory weight "
             "format (copy it to OUT_DIR/model.safetensors and write config.json by hand)")
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        fail(f"{path}: not a PyTorch checkpoint (neither a torch.save zip archive nor a legacy pickle)")
    if unsafe:
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # noqa: BLE001
            fail(f"{path}: cannot unpickle the checkpoint ({type(e).__name__}: {first_line(str(e))})")
    # weights_only loading refuses arbitrary Python objects. Official training checkpoints carry
    # their argparse.Namespace under 'args', which is harmless data: allow that one class.
    import argparse as _argparse
    kwargs = dict(map_location="cpu", weights_only=True)
    try:
        ctx = torch.serialization.safe_globals([_argparse.Namespace])
    except AttributeError:  # torch < 2.5
        ctx = None
    try:
        if ctx is not None:
            with ctx:
                return _torch_load(path, kwargs)
        return _torch_load(path, kwargs)
    except Exception as e:  # noqa: BLE001
        text = str(e)
        if "weights_only" in text or "Unsupported global" in text or "WeightsUnpickler" in text:
            found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
            what = f"it references {found.group(1)}" if found else first_line(text)
            fail(f"{path}: the checkpoint holds pickled Python objects that safe loading refuses ({what}). "
                 "If you trust the file, re-run with --unsafe-load.")
        fail(f"{path}: not a PyTorch checkpoint ({type(e).__name__}: {first_line(text)})")


def first_line(text):
    text = re.sub(r"\x1b\[[0-9;]*m", "", text).strip()
    return text.splitlines()[0] if text else ""


def _torch_load(path, kwargs):
    try:
        return torch.load(path, mmap=True, **kwargs)  # zip format: tensors are mapped, not read
    except RuntimeError as e:
        if "mmap" in str(e) or "zip" in str(e).lower():
            return torch.load(path, **kwargs)  # legacy (non-zip) serialization
        raise


def is_state_dict(obj):
    return isinstance(obj, dict) and len(obj) > 0 and all(isinstance(k, str) for k in obj) \
        and all(torch.is_tensor(v) for v in obj.values())


def strip_common_prefix(sd, prefix="module."):
    if sd and all(k.startswith(prefix) for k in sd):
        return {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def extract(ckpt, path):
    """-> (state dict, ema state dict or None, where the state dict came from, extra info)."""
    if not isinstance(ckpt, dict):
        fail(f"{path}: expected a dict (a training checkpoint or a state dict), found {type(ckpt).__name__}")
    info = {}
    if isinstance(ckpt.get("epoch"), int):
        info["epoch"] = ckpt["epoch"]
    for key in ("model", "module", "state_dict"):
        if key in ckpt and is_state_dict(ckpt[key]):
            sd, source = ckpt[key], f"checkpoint['{key}']"
            break
    else:
        if is_state_dict(ckpt):
            sd, source = ckpt, "bare state dict"
        else:
            keys = ", ".join(sorted(map(str, ckpt))[:12])
            fail(f"{path}: no model weights found: expected a 'model', 'module' or 'state_dict' entry "
                 f"holding tensors, or a bare {{name: tensor}} dict (top-level keys: {keys})")
    ema = ckpt.get("model_ema") if source != "bare state dict" else None
    if ema is not None and not is_state_dict(ema):
        warn("checkpoint['model_ema'] is not a {name: tensor} dict; ignored")
        ema = None
    sd = strip_common_prefix(dict(sd))
    if ema is not None:
        ema = strip_common_prefix(dict(ema))
    return sd, ema, source, info


# --------------------------------------------------------------------------------------------------
# architecture inference
# --------------------------------------------------------------------------------------------------
def count_blocks(sd, prefix):
    idx = {int(m.group(1)) for k in sd for m in [re.match(re.escape(prefix) + r"\.(\d+)\.", k)] if m}
    if idx and idx != set(range(len(idx))):
        fail(f"{prefix}: block indices are not contiguous from 0: {sorted(idx)}")
    return len(idx)


def shape(sd, key):
    if key not in sd:
        fail(f"missing tensor '{key}'")
    return tuple(sd[key].shape)


def sincos_table(dim, grid, row_first):
    """2-D sin-cos table (1, 1+grid^2, dim) with a zero cls row. row_first: BootMAE; else MAE."""
    quarter = dim // 4
    omega = 1.0 / (10000.0 ** (torch.arange(quarter, dtype=torch.float64) / quarter))
    i, j = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64),
                          indexing="ij")
    ri = i.flatten()[:, None] * omega[None]
    cj = j.flatten()[:, None] * omega[None]
    rows = [ri.sin(), ri.cos()]
    cols = [cj.sin(), cj.cos()]
    pe = torch.cat(rows + cols if row_first else cols + rows, dim=1)
    return torch.cat([torch.zeros(1, dim, dtype=torch.float64), pe])[None]


def table_kind(t, grid):
    """'sincos_bootmae' / 'sincos_mae' if t is that fixed table (to 1e-4), else None."""
    dim = t.shape[-1]
    if dim % 4 or t.dim() != 3 or t.shape[1] != 1 + grid * grid:
        return None
    tol = 1e-4 if t.dtype in (torch.float32, torch.float64) else 1e-2   # float16 / bfloat16 storage
    t = t.double()
    for kind, row_first in (("sincos_bootmae", True), ("sincos_mae", False)):
        if (t - sincos_table(dim, grid, row_first)).abs().max().item() < tol:
            return kind
    return None


def heads_for(width, given, table, what):
    if given is not None:
        if given <= 0:
            fail(f"{what}: the head count must be positive")
        return given
    if width in table:
        return table[width]
    fail(f"{what}: cannot infer the number of attention heads for width {width} from tensor shapes; "
         f"pass it explicitly ({'--num-heads' if what == 'encoder' else '--decoder-num-heads'} H)")


def detect_objective(sd):
    boot = any(k.startswith(("decode_blocks.", "lm_head.", "down.", "down_1.", "mask_token_1")) for k in sd)
    mae = any(k.startswith(("decoder_blocks.", "decoder_pred.", "decoder_embed.")) for k in sd)
    if boot and mae:
        fail("the state dict has both BootMAE (decode_blocks/lm_head) and MAE (decoder_blocks/decoder_pred) "
             "decoder keys")
    return "bootmae" if boot else "mae" if mae else "encoder"


def encoder_config(sd, args, objective):
    if "patch_embed.proj.weight" not in sd:
        sample = ", ".join(sorted(sd)[:8])
        fail(f"not a ViT checkpoint: no 'patch_embed.proj.weight' (first keys: {sample})")
    D, C, ph, pw = shape(sd, "patch_embed.proj.weight")
    if ph != pw:
        fail(f"non-square patches {ph}x{pw} are not supported")
    p = ph
    depth = count_blocks(sd, "blocks")
    if depth == 0:
        fail("no transformer blocks ('blocks.0.*') in the state dict")
    if "cls_token" not in sd:
        fail("no 'cls_token' (only cls-token ViTs are supported)")
    if "blocks.0.attn.q_bias" in sd:
        qkv_bias = "qv"
        if "blocks.0.attn.v_bias" not in sd:
            fail("'blocks.0.attn.q_bias' without 'blocks.0.attn.v_bias'")
    elif "blocks.0.attn.qkv.bias" in sd:
        qkv_bias = "qkv"
    else:
        qkv_bias = "none"
    hidden = shape(sd, "blocks.0.mlp.fc1.weight")[0]
    mlp_ratio = hidden / D
    heads = heads_for(D, args.num_heads, DEFAULT_HEADS, "encoder")
    if D % heads:
        fail(f"embed_dim {D} is not a multiple of {heads} heads")
    qkv_rows = shape(sd, "blocks.0.attn.qkv.weight")[0]
    if qkv_rows != 3 * D:
        fail(f"blocks.0.attn.qkv.weight has {qkv_rows} rows, expected 3*{D}")

    if "pos_embed" in sd:
        n_tok = shape(sd, "pos_embed")[1]
        grid = math.isqrt(n_tok - 1)
        if grid * grid != n_tok - 1:
            fail(f"pos_embed has {n_tok} rows: not 1 + a square number of patches (cls token expected)")
        img = grid * p
        if args.img_size is not None and args.img_size != img:
            fail(f"--img-size {args.img_size} does not match the checkpoint's pos_embed ({grid}x{grid} patches "
                 f"of {p} = {img}); interpolating positional tables is not supported")
    else:
        if args.img_size is None:
            fail("the state dict has no 'pos_embed': pass --img-size")
        img = args.img_size
        if img % p:
            fail(f"--img-size {img} is not a multiple of the patch size {p}")
        grid = img // p

    kind = table_kind(sd["pos_embed"], grid) if "pos_embed" in sd else None
    if objective == "bootmae":
        pos = "sincos_bootmae"
    elif objective == "mae":
        pos = "sincos_mae"
    elif "pos_embed" not in sd:
        pos = "sincos_bootmae" if qkv_bias == "qv" else "sincos_mae"
        warn(f"no pos_embed in the checkpoint: config says {pos} (the table will be generated)")
    else:
        pos = kind or "checkpoint"
    if objective in ("bootmae", "mae") and "pos_embed" in sd and kind != pos:
        warn(f"pos_embed is not the {pos} table ({kind or 'not a fixed sin-cos table'}); "
             "the checkpoint's table is written and used as saved")

    family_boot = objective == "bootmae" or (objective == "encoder" and qkv_bias == "qv")
    mean = args.mean or (HALF_MEAN if family_boot else IMAGENET_MEAN)
    std = args.std or (HALF_STD if family_boot else IMAGENET_STD)
    if C != 3 and (args.mean is None or args.std is None):
        mean, std = [0.5] * C, [0.5] * C
        warn(f"{C} input channel(s): no official normalisation; using mean = std = 0.5 (override with --mean/--std)")
    if len(mean) != C or len(std) != C:
        fail(f"--mean/--std need {C} values each (one per input channel)")

    pool = "mean" if "fc_norm.weight" in sd else "cls"
    cfg = {}
    if objective in ("bootmae", "mae"):
        cfg["objective"] = objective
    cfg.update({"img_size": img, "patch_size": p, "in_chans": C, "embed_dim": D, "depth": depth,
                "num_heads": heads, "mlp_ratio": mlp_ratio, "qkv_bias": qkv_bias, "layer_norm_eps": 1e-6,
                "global_pool": pool, "pos_embed": pos, "mean": list(mean), "std": list(std)})
    return cfg, grid


def bootmae_config(sd, cfg, grid, args):
    D, heads, depth, N = cfg["embed_dim"], cfg["num_heads"], cfg["depth"], grid * grid
    w = shape(sd, "down.weight")[0]
    dec_depth = count_blocks(sd, "decode_blocks")
    feat_depth = count_blocks(sd, "decode_blocks_1")
    if dec_depth == 0 or feat_depth == 0:
        fail("BootMAE checkpoint without decode_blocks.* or decode_blocks_1.*")
    # decoders use the encoder's head count: attention width heads * (width // heads)
    for name, width in (("decode_blocks.0.attn.q_bias", w), ("decode_blocks_1.0.attn.q_bias", D)):
        A = shape(sd, name)[0]
        if width // heads * heads != A:
            fail(f"{name} has {A} entries but {heads} heads of width {width} give {width // heads * heads}: "
                 "wrong --num-heads?")
    p, C = cfg["patch_size"], cfg["in_chans"]
    if shape(sd, "lm_head.proj.weight") != (w, C, p, p):
        fail(f"lm_head.proj.weight {shape(sd, 'lm_head.proj.weight')} does not fit width {w}, {C} channels, patch {p}")
    if "de_pos_embed" in sd and shape(sd, "de_pos_embed") != (1, N + 1, w):
        fail(f"de_pos_embed {shape(sd, 'de_pos_embed')} does not fit {N} patches of width {w}")
    layers = args.feature_layers if args.feature_layers is not None else [0, depth - 1]
    if not layers or any(i < 0 or i >= depth for i in layers):
        fail(f"--feature-layers must name encoder blocks 0..{depth - 1}")
    num_mask = args.num_mask if args.num_mask is not None else int(round(N * 0.75))
    if not 0 < num_mask < N:
        fail(f"--num-mask must be between 1 and {N - 1}")
    cfg.update({"decoder_embed_dim": w, "decoder_depth": dec_depth, "decoder_num_heads": heads,
                "feature_decoder_depth": feat_depth, "feature_layers": list(layers), "num_mask": num_mask})
    return cfg


def mae_config(sd, cfg, grid, args):
    N, p, C = grid * grid, cfg["patch_size"], cfg["in_chans"]
    w = shape(sd, "decoder_embed.weight")[0]
    dec_depth = count_blocks(sd, "decoder_blocks")
    if dec_depth == 0:
        fail("MAE checkpoint without decoder_blocks.*")
    dheads = heads_for(w, args.decoder_num_heads, DEFAULT_MAE_DECODER_HEADS, "decoder")
    if w % dheads:
        fail(f"decoder width {w} is not a multiple of {dheads} decoder heads")
    if shape(sd, "decoder_pred.weight") != (p * p * C, w):
        fail(f"decoder_pred.weight {shape(sd, 'decoder_pred.weight')} does not fit {p}x{p}x{C} pixels from width {w}")
    if "decoder_pos_embed" in sd and shape(sd, "decoder_pos_embed") != (1, N + 1, w):
        fail(f"decoder_pos_embed {shape(sd, 'decoder_pos_embed')} does not fit {N} patches of width {w}")
    ratio = args.mask_ratio if args.mask_ratio is not None else 0.75
    if not 0 < ratio < 1:
        fail("--mask-ratio must be in (0, 1)")
    cfg.update({"decoder_embed_dim": w, "decoder_depth": dec_depth, "decoder_num_heads": dheads,
                "mask_ratio": ratio, "norm_pix_loss": not args.no_norm_pix_loss})
    return cfg


def ema_tensors(ema, sd):
    out, dropped = {}, 0
    for k, v in ema.items():
        if not k.startswith(ENCODER_PREFIXES):
            dropped += 1
            continue
        if k not in sd:
            fail(f"model_ema has '{k}' which the online model lacks")
        if tuple(v.shape) != tuple(sd[k].shape):
            fail(f"model_ema.{k} has shape {tuple(v.shape)}, the online tensor {tuple(sd[k].shape)}")
        out[EMA_PREFIX + k] = v
    missing = [k for k in sd if k.startswith(ENCODER_PREFIXES) and EMA_PREFIX + k not in out]
    if missing:
        fail(f"model_ema lacks encoder tensors: {', '.join(missing[:5])}")
    return out, dropped


# --------------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------------
def write_safetensors(path, tensors, metadata):
    """Deterministic float32 safetensors: tensors sorted by name, metadata keys sorted, atomic.

    The data is streamed tensor by tensor, so a large checkpoint is not held twice in memory.
    """
    names = sorted(tensors)
    header, offset = {}, 0
    for name in names:
        t = tensors[name]
        if not t.is_floating_point():
            fail(f"tensor '{name}' has dtype {t.dtype}; only floating-point weights are expected")
        size = t.numel() * 4
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = {k: str(metadata[k]) for k in sorted(metadata)}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)

    def chunks():
        yield struct.pack("<Q", len(text))
        yield text
        for name in names:
            t = tensors[name].detach().to(device="cpu", dtype=torch.float32).contiguous()
            if not torch.isfinite(t).all():
                fail(f"tensor '{name}' has non-finite values")
            yield t.numpy().astype("<f4", copy=False).tobytes()

    atomic_write(path, chunks())


def atomic_write(path, chunks):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            for c in chunks:
                f.write(c)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="See the module docstring (head -40 tools/convert_checkpoint.py) for details.")
    ap.add_argument("input", help="official .pth checkpoint")
    ap.add_argument("out_dir", help="model directory to write (created if needed)")
    ap.add_argument("--objective", choices=["auto", "mae", "bootmae", "encoder"], default="auto",
                    help="auto: BootMAE if decode_blocks/lm_head keys, MAE if decoder_blocks/decoder_pred keys, "
                         "else an encoder-only model; 'encoder' keeps only the encoder config even if decoders exist")
    ap.add_argument("--num-heads", type=int, help="encoder heads (default by width: %s)" %
                    ", ".join(f"{k}->{v}" for k, v in sorted(DEFAULT_HEADS.items())))
    ap.add_argument("--decoder-num-heads", type=int, help="MAE decoder heads (default 16 for width 512)")
    ap.add_argument("--img-size", type=int, help="check against pos_embed, or set it when there is no pos_embed")
    ap.add_argument("--mean", type=float, nargs="+", help="input normalisation mean (default: BootMAE 0.5, MAE ImageNet)")
    ap.add_argument("--std", type=float, nargs="+", help="input normalisation std")
    ap.add_argument("--num-mask", type=int, help="BootMAE masked patches per image (default 75%% of the patches)")
    ap.add_argument("--mask-ratio", type=float, help="MAE mask ratio (default 0.75)")
    ap.add_argument("--no-norm-pix-loss", action="store_true", help="MAE: plain pixel target (released weights use norm_pix)")
    ap.add_argument("--feature-layers", type=int, nargs="+", help="BootMAE fea_list (default 0 and depth-1)")
    ap.add_argument("--no-ema", action="store_true", help="do not write the momentum encoder (model_ema.*)")
    ap.add_argument("--unsafe-load", action="store_true",
                    help="unpickle arbitrary Python objects (only for files you trust)")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if (args.mean is None) != (args.std is None):
        fail("--mean and --std go together")
    ckpt = load_checkpoint(args.input, args.unsafe_load)
    sd, ema, source, info = extract(ckpt, args.input)

    detected = detect_objective(sd)
    objective = detected if args.objective == "auto" else args.objective
    if objective in ("mae", "bootmae") and detected != objective:
        fail(f"--objective {objective}, but the state dict looks like {detected} "
             f"({'no decoder keys' if detected == 'encoder' else 'its decoder keys'})")

    cfg, grid = encoder_config(sd, args, objective)
    if objective == "bootmae":
        if cfg["qkv_bias"] != "qv":
            fail("a BootMAE checkpoint must have q_bias/v_bias attention")
        cfg = bootmae_config(sd, cfg, grid, args)
    elif objective == "mae":
        cfg = mae_config(sd, cfg, grid, args)

    tensors = dict(sd)
    if objective == "encoder" and detected != "encoder":
        tensors = {k: v for k, v in sd.items() if k.startswith(ENCODER_PREFIXES) or k.startswith(("fc_norm.", "head."))}
    n_ema, dropped = 0, 0
    if ema is not None and not args.no_ema:
        if objective != "bootmae":
            warn("checkpoint['model_ema'] found but the model is not a BootMAE pretraining network; "
                 "writing its encoder under 'model_ema.' anyway")
        et, dropped = ema_tensors(ema, sd)
        n_ema = len(et)
        tensors.update(et)

    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        fail(f"{out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    meta = {"format": "pt", "converted_from": Path(args.input).name, "source": source,
            "converter": "tools/convert_checkpoint.py"}
    if "epoch" in info:
        meta["epoch"] = info["epoch"]
    write_safetensors(out / "model.safetensors", tensors, meta)
    atomic_write(out / "config.json", [(json.dumps(cfg, indent=2) + "\n").encode("utf-8")])

    desc = {"bootmae": "BootMAE pretraining network", "mae": "MAE pretraining network",
            "encoder": "encoder"}[objective]
    print(f"{args.input}: {source}, {desc}: img {cfg['img_size']}, patch {cfg['patch_size']}, "
          f"width {cfg['embed_dim']}, depth {cfg['depth']}, heads {cfg['num_heads']}, qkv_bias {cfg['qkv_bias']}"
          + (f", decoder {cfg['decoder_embed_dim']}x{cfg['decoder_depth']}" if "decoder_embed_dim" in cfg else ""))
    print(f"wrote {out / 'model.safetensors'} ({len(tensors)} tensors"
          + (f", {n_ema} under model_ema." if n_ema else "")
          + (f"; {dropped} unused model_ema decoder tensors dropped" if dropped else "") + ")")
    print(f"wrote {out / 'config.json'}")


if __name__ == "__main__":
    main()
