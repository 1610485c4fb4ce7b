"""Helpers shared by the fixture generators (make_fixtures.py, make_pretrain_fixtures.py).

Importing this module imports timm (see _import_timm), sets torch to one thread and float32.
Everything here was moved unchanged out of make_fixtures.py, except that `save` / `write_json` /
`check` now live on a FixtureWriter so that each generator has its own output list and `generator`
metadata. The output root can be redirected with the environment variable REF_FIXTURES_OUT (used to
verify that a re-run reproduces the committed files byte for byte).
"""

import json
import math
import os
import struct
import subprocess
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ["REF_FIXTURES_OUT"]).resolve() if os.environ.get("REF_FIXTURES_OUT") else ROOT / "Tests" / "Fixtures"

# --------------------------------------------------------------------------------------------------
# timm import.
# timm imports torchvision unconditionally (torchvision.ops.misc.FrozenBatchNorm2d). If the venv has
# a torchvision whose compiled extension does not match the installed torch (e.g. a CUDA torchvision
# next to a +cpu torch), `import torchvision` dies in torchvision._meta_registrations while
# registering fake kernels for ops (nms, roi_align, ...) whose C++ library failed to load. None of
# those ops is used by a ViT, so in that case the registration module is replaced by an empty one.
# This does not change any numerics of the modules used here.
# --------------------------------------------------------------------------------------------------
TORCHVISION_SHIM = False


def _import_timm():
    global TORCHVISION_SHIM
    # Use the unfused (explicit softmax) attention path: q*scale, softmax(q k^T), attn @ v, exactly
    # the BootMAE/timm-0.3 formulation. Must be set before timm is imported.
    os.environ["TIMM_FUSED_ATTN"] = "0"
    probe = subprocess.run([sys.executable, "-c", "import torchvision"], capture_output=True, text=True)
    if probe.returncode != 0:
        TORCHVISION_SHIM = True
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        print(f"warning: `import torchvision` fails in this venv ({last}); "
              "stubbing torchvision._meta_registrations so timm can import", file=sys.stderr)
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
    import timm  # noqa: F401
    from timm.models.vision_transformer import Block, VisionTransformer
    return timm, Block, VisionTransformer


timm, TimmBlock, TimmViT = _import_timm()

torch.set_num_threads(1)
torch.set_default_dtype(torch.float32)


def base_meta(script):
    return {
        "generator": script,
        "torch": torch.__version__.split("+")[0],
        "timm": timm.__version__,
    }


# --------------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------------
class FixtureWriter:
    """Writes fixtures under `out` (default FIXTURES) and remembers every file for check()."""

    def __init__(self, script, out=None, max_file_bytes=300 * 1024, max_total_bytes=3 * 1024 * 1024):
        self.out = Path(out) if out is not None else FIXTURES
        self.meta = base_meta(script)
        self.written = []
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes

    def save(self, rel, tensors, meta=None, seed=None):
        """Write tensors (float32 / int64, contiguous) to out/rel with string metadata."""
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        out = {}
        for k, v in tensors.items():
            v = v.detach().clone().contiguous()
            if v.dtype not in (torch.float32, torch.int64):
                raise TypeError(f"{rel}:{k} has dtype {v.dtype}")
            out[k] = v
        md = dict(self.meta)
        if seed is not None:
            md["seed"] = str(seed)
        for k, v in (meta or {}).items():
            md[k] = v if isinstance(v, str) else json.dumps(v)
        save_file(out, str(path), metadata=md)
        canonicalize_header(path)
        self.written.append(path)
        return path

    def write_json(self, rel, obj):
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj, indent=2) + "\n")
        self.written.append(path)
        return path

    def check(self, max_keys=None):
        """Reload every written file, print shapes and sizes, warn about big files.

        max_keys: list at most that many tensor shapes per file (None: all of them).
        """
        total = 0
        big = []
        print(f"{'file':60s} {'bytes':>8s}  tensors")
        for path in sorted(set(self.written)):
            size = path.stat().st_size
            rel = path.relative_to(self.out)
            if path.suffix == ".safetensors":
                t = load_file(str(path))
                for k, v in t.items():
                    assert v.is_contiguous() and v.dtype in (torch.float32, torch.int64), (rel, k)
                    assert torch.isfinite(v.float()).all(), (rel, k)
                listed = [f"{k}{tuple(v.shape)}" for k, v in sorted(t.items()) if not k.startswith(("param.", "grad."))]
                if max_keys is not None and len(listed) > max_keys:
                    listed = listed[:max_keys] + [f"... ({len(listed) - max_keys} more)"]
                shapes = ", ".join(listed)
                n_pg = sum(k.startswith(("param.", "grad.")) for k in t)
                if n_pg:
                    shapes += f", +{n_pg} param./grad. keys"
            else:
                json.loads(path.read_text())
                shapes = "json"
            print(f"{str(rel):60s} {size:8d}  {shapes}")
            total += size
            if size > self.max_file_bytes:
                big.append((str(rel), size))
        print(f"total: {total} bytes ({total / 1024:.1f} KiB) in {len(set(self.written))} files")
        for rel, size in big:
            print(f"warning: {rel} is {size / 1024:.1f} KiB (> {self.max_file_bytes // 1024} KiB)")
        if total > self.max_total_bytes:
            print(f"warning: total exceeds {self.max_total_bytes // 1024} KiB")
        if TORCHVISION_SHIM:
            print("note: torchvision._meta_registrations was stubbed (broken torchvision in this venv)")
        return total


def canonicalize_header(path):
    """Sort the metadata keys in the header so that re-running gives byte-identical files.

    safetensors writes `__metadata__` in hash-map order, which changes from run to run. The rewritten
    header has exactly the same length and tensor entries, so the data offsets are unchanged.
    """
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    text = raw[8:8 + n].decode("utf-8")
    header = json.loads(text, object_pairs_hook=OrderedDict)
    header["__metadata__"] = OrderedDict(sorted(header["__metadata__"].items()))
    new = json.dumps(header, separators=(",", ":"), ensure_ascii=False)
    assert len(new) <= n and len(new.encode("utf-8")) == len(text.rstrip(" ").encode("utf-8")), path
    new_bytes = new.encode("utf-8").ljust(n, b" ")
    path.write_bytes(raw[:8] + new_bytes + raw[8 + n:])


def seed(s):
    torch.manual_seed(s)
    np.random.seed(s)
    return s


def rand(*shape, scale=1.0):
    return torch.randn(*shape) * scale


def leaf(t):
    return t.detach().clone().requires_grad_(True)


def randomize_(model, fc1_gain=1.5):
    """Give every parameter a random, non-trivial value.

    LayerNorm: weight ~ N(1, 0.2^2), bias ~ N(0, 0.1^2). Matrices / conv kernels:
    N(0, (gain/sqrt(fan_in))^2) (gain 1.5 for mlp.fc1 so GELU sees values out to about +-6).
    Other biases ~ N(0, 0.1^2), q_bias / v_bias ~ N(0, 0.2^2), cls_token ~ N(0, 0.5^2),
    pos_embed ~ N(0, 0.2^2). Frozen (requires_grad=False) parameters are left alone.
    Pretraining additions (no module of make_fixtures.py has them, so its draws are unchanged):
    ConvTranspose2d weight (in, out, kh, kw) ~ N(0, (1/sqrt(in))^2) (its fan-in per output pixel),
    mask_token / mask_token_1 ~ N(0, 0.2^2).
    Layer scale (make_seam_fixtures.py; no other generator has it): gamma_1 / gamma_2 ~ N(0.5, 0.2^2).
    """
    with torch.no_grad():
        for mname, mod in model.named_modules():
            for pname, p in mod.named_parameters(recurse=False):
                if not p.requires_grad:
                    continue
                if isinstance(mod, nn.LayerNorm):
                    if pname == "weight":
                        p.normal_(1.0, 0.2)
                    else:
                        p.normal_(0.0, 0.1)
                elif isinstance(mod, nn.ConvTranspose2d) and pname == "weight":
                    p.normal_(0.0, 1.0 / math.sqrt(p.shape[0]))
                elif pname == "weight" and p.dim() >= 2:
                    gain = fc1_gain if mname.endswith("fc1") else 1.0
                    p.normal_(0.0, gain / math.sqrt(p[0].numel()))
                elif pname in ("q_bias", "v_bias"):
                    p.normal_(0.0, 0.2)
                elif pname == "bias":
                    p.normal_(0.0, 0.1)
                elif pname == "cls_token":
                    p.normal_(0.0, 0.5)
                elif pname == "pos_embed":
                    p.normal_(0.0, 0.2)
                elif pname.startswith("mask_token"):
                    p.normal_(0.0, 0.2)
                elif pname in ("gamma_1", "gamma_2"):
                    p.normal_(0.5, 0.2)
                else:
                    raise ValueError(f"no randomization rule for {mname}.{pname}")


def state_dict_f32(model, drop=()):
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items() if k not in drop}


def param_and_grad(model, prefix_param="param.", prefix_grad="grad."):
    out = {}
    for n, p in model.named_parameters():
        out[prefix_param + n] = p
        if p.requires_grad:
            out[prefix_grad + n] = p.grad
    return out


# --------------------------------------------------------------------------------------------------
# reference formulas
# --------------------------------------------------------------------------------------------------
def attention_core(q, k, v):
    """q (B,H,Nq,hd), k/v (B,H,Nk,hd) -> (B,H,Nq,hd). Scale q first, softmax over keys."""
    hd = q.shape[-1]
    q = q * hd ** -0.5
    attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
    return attn @ v


def self_attention_from_qkv(qkv, heads):
    """qkv (B,N,3A) -> (B,N,A); columns [0,A)=q, [A,2A)=k, [2A,3A)=v, head h at [h*hd,(h+1)*hd)."""
    B, N, C3 = qkv.shape
    A = C3 // 3
    hd = A // heads
    q, k, v = qkv.reshape(B, N, 3, heads, hd).permute(2, 0, 3, 1, 4).unbind(0)
    return attention_core(q, k, v).transpose(1, 2).reshape(B, N, A)


def cross_attention_from_q_kv(q, kv, heads):
    """q (B,Nq,A), kv (B,Nc,2A) -> (B,Nq,A); kv columns [0,A)=k, [A,2A)=v."""
    B, Nq, A = q.shape
    Nc = kv.shape[1]
    hd = A // heads
    qh = q.reshape(B, Nq, heads, hd).transpose(1, 2)
    k, v = kv.reshape(B, Nc, 2, heads, hd).permute(2, 0, 3, 1, 4).unbind(0)
    return attention_core(qh, k, v).transpose(1, 2).reshape(B, Nq, A)


def sincos_bootmae(dim, grid, temperature=10000.0):
    """BootMAE / MoCo-v3 2-D sin-cos table (1, 1+grid^2, dim), float32 throughout, cls row zero.

    Token m = i*grid + j (i = patch row, j = patch column):
        [sin(i w), cos(i w), sin(j w), cos(j w)],  w_k = 1 / temperature^(k / (dim/4)).
    (torch.meshgrid with the default 'ij' indexing makes the block the original calls "w" the row.)
    """
    assert dim % 4 == 0
    pos_dim = dim // 4
    omega = 1.0 / (temperature ** (torch.arange(pos_dim, dtype=torch.float32) / pos_dim))
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float32),
                                torch.arange(grid, dtype=torch.float32), indexing="ij")
    out_r = rows.flatten()[:, None] * omega[None, :]
    out_c = cols.flatten()[:, None] * omega[None, :]
    pe = torch.cat([out_r.sin(), out_r.cos(), out_c.sin(), out_c.cos()], dim=1)
    return torch.cat([torch.zeros(1, dim), pe], dim=0)[None].float()


def sincos_mae(dim, grid):
    """MAE util/pos_embed.py table (1, 1+grid^2, dim), numpy float64 then float32, cls row zero.

    Token m = i*grid + j: [sin(j w), cos(j w), sin(i w), cos(i w)] (column first),
    w_k = 1 / 10000^(k / (dim/4)), k < dim/4.
    """
    assert dim % 4 == 0
    quarter = dim // 4
    omega = np.arange(quarter, dtype=np.float64) / quarter
    omega = 1.0 / 10000 ** omega
    rows, cols = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32),
                             indexing="ij")

    def emb_1d(pos):
        out = np.einsum("m,d->md", pos.reshape(-1).astype(np.float64), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    pe = np.concatenate([emb_1d(cols), emb_1d(rows)], axis=1)
    pe = np.concatenate([np.zeros((1, dim)), pe], axis=0)
    return torch.from_numpy(pe.astype(np.float32))[None]


# --------------------------------------------------------------------------------------------------
# BootMAE-style modules (BootMAE models/modeling_pretrain_bootmae.py), official key names
# --------------------------------------------------------------------------------------------------
class QVAttention(nn.Module):
    """qkv Linear without bias + q_bias / v_bias; effective bias cat(q_bias, 0, v_bias)."""

    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        A = head_dim * num_heads
        self.qkv = nn.Linear(dim, 3 * A, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(A))
        self.v_bias = nn.Parameter(torch.zeros(A))
        self.proj = nn.Linear(A, dim)

    def forward(self, x):
        bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, bias)
        return self.proj(self_attention_from_qkv(qkv, self.num_heads))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact erf GELU
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class QVBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, eps=1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = QVAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, in_chans, dim, patch):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class BootMAEEncoder(nn.Module):
    """BootMAE encoder: patch embed, cls token, frozen sin-cos pos_embed, QV blocks, final norm."""

    def __init__(self, img_size, patch_size, in_chans, dim, depth, num_heads, mlp_ratio=4.0, eps=1e-6):
        super().__init__()
        grid = img_size // patch_size
        self.patch_embed = PatchEmbed(in_chans, dim, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(sincos_bootmae(dim, grid), requires_grad=False)
        self.blocks = nn.ModuleList([QVBlock(dim, num_heads, mlp_ratio, eps) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward_features(self, img):
        x = self.patch_embed(img)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)


