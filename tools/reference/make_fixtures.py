#!/usr/bin/env python3
"""Generate the PyTorch reference fixtures that the Swift tests compare against.

Usage (from the repository root):
    tools/reference/setup_venv.sh && .venv-ref/bin/python tools/reference/make_fixtures.py

Writes safetensors files under Tests/Fixtures/{ops,blocks,encoders/<name>}/ (see
Tests/Fixtures/README.md). Everything is float32 (index tensors int64), single-threaded and seeded
per fixture, so re-running reproduces the files.

Conventions:
  * every gradient is the result of `y.backward(dy)` with a random upstream gradient `dy` saved in
    the same file (for the weighted-MSE loss the upstream gradient is 1);
  * scalar parameters are stored as strings in the safetensors metadata (e.g. {"eps": "1e-06"});
  * BootMAE-style modules (q_bias/v_bias attention, BootMAE sin-cos table) are written here from
    the description in shared/reference/bootmae-spec.md sections 1, 4.1 and 8, not copied from the
    official repositories. timm modules are used as-is (timm==1.0.31) for the timm fixtures.
"""

import json
import math
import os
import struct
import subprocess
import sys
import types
from collections import OrderedDict
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests" / "Fixtures"
SCRIPT = "tools/reference/make_fixtures.py"
MAX_FILE_BYTES = 300 * 1024
MAX_TOTAL_BYTES = 3 * 1024 * 1024


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

BASE_META = {
    "generator": SCRIPT,
    "torch": torch.__version__.split("+")[0],
    "timm": timm.__version__,
}


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
WRITTEN = []


def save(rel, tensors, meta=None, seed=None):
    """Write tensors (float32 / int64, contiguous) to OUT/rel with string metadata."""
    path = OUT / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    out = {}
    for k, v in tensors.items():
        v = v.detach().clone().contiguous()
        if v.dtype not in (torch.float32, torch.int64):
            raise TypeError(f"{rel}:{k} has dtype {v.dtype}")
        out[k] = v
    md = dict(BASE_META)
    if seed is not None:
        md["seed"] = str(seed)
    for k, v in (meta or {}).items():
        md[k] = v if isinstance(v, str) else json.dumps(v)
    save_file(out, str(path), metadata=md)
    _canonicalize_header(path)
    WRITTEN.append(path)
    return path


def _canonicalize_header(path):
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


def write_json(rel, obj):
    path = OUT / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")
    WRITTEN.append(path)


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
# BootMAE-style modules (spec section 1.1), official key names
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


# --------------------------------------------------------------------------------------------------
# ops fixtures
# --------------------------------------------------------------------------------------------------
def op_linear():
    s = seed(101)
    x = leaf(rand(2, 7, 12, scale=1.5))
    lin = nn.Linear(12, 16)
    with torch.no_grad():
        lin.weight.normal_(0, 0.3)
        lin.bias.normal_(0, 0.5)
    dy = rand(2, 7, 16)
    y = lin(x)
    y.backward(dy)
    save("ops/linear.safetensors", dict(x=x, weight=lin.weight, bias=lin.bias, dy=dy, y=y, dx=x.grad,
                                        dweight=lin.weight.grad, dbias=lin.bias.grad), seed=s)


def op_layernorm():
    s = seed(102)
    eps = 1e-6
    # rows with non-zero means and different spreads
    x = leaf(rand(2, 7, 24, scale=2.0) * torch.rand(2, 7, 1).add(0.25) + rand(2, 7, 1, scale=3.0))
    ln = nn.LayerNorm(24, eps=eps)
    with torch.no_grad():
        ln.weight.normal_(1.0, 0.3)
        ln.bias.normal_(0.0, 0.2)
    dy = rand(2, 7, 24)
    y = ln(x)
    y.backward(dy)
    save("ops/layernorm.safetensors", dict(x=x, weight=ln.weight, bias=ln.bias, dy=dy, y=y, dx=x.grad,
                                           dweight=ln.weight.grad, dbias=ln.bias.grad),
         meta={"eps": repr(eps)}, seed=s)


def op_layernorm_noaffine():
    s = seed(103)
    eps = 1e-6
    x = leaf(rand(3, 5, 24) * torch.rand(3, 5, 1).mul(3).add(0.1) + rand(3, 5, 1, scale=2.0))
    ln = nn.LayerNorm(24, eps=eps, elementwise_affine=False)
    dy = rand(3, 5, 24)
    y = ln(x)
    y.backward(dy)
    save("ops/layernorm_noaffine.safetensors", dict(x=x, dy=dy, y=y, dx=x.grad),
         meta={"eps": repr(eps)}, seed=s)


def op_gelu():
    s = seed(104)
    x = torch.empty(4, 96)
    x[0] = torch.linspace(-6.0, 6.0, 96)
    x[1] = rand(96)
    x[2] = rand(96, scale=2.0)
    x[3] = rand(96, scale=3.0).clamp(-6.5, 6.5)
    x = leaf(x)
    dy = rand(4, 96)
    y = nn.GELU()(x)
    y.backward(dy)
    save("ops/gelu.safetensors", dict(x=x, dy=dy, y=y, dx=x.grad), meta={"approximate": "none"}, seed=s)


def op_softmax():
    s = seed(105)
    x = leaf(rand(3, 5, 9, scale=3.0))
    dy = rand(3, 5, 9)
    y = x.softmax(dim=-1)
    y.backward(dy)
    save("ops/softmax.safetensors", dict(x=x, dy=dy, y=y, dx=x.grad), meta={"dim": "-1"}, seed=s)


def op_attention_self():
    s = seed(106)
    A, H = 24, 4
    qkv = leaf(rand(2, 9, 3 * A, scale=1.5))
    dy = rand(2, 9, A)
    out = self_attention_from_qkv(qkv, H)
    out.backward(dy)
    save("ops/attention_self.safetensors", dict(qkv=qkv, dy=dy, out=out, dqkv=qkv.grad),
         meta={"heads": str(H), "head_dim": str(A // H), "scale": repr((A // H) ** -0.5)}, seed=s)


def op_attention_cross():
    s = seed(107)
    A, H = 24, 4
    q = leaf(rand(2, 9, A, scale=1.5))
    kv = leaf(rand(2, 5, 2 * A, scale=1.5))
    dy = rand(2, 9, A)
    out = cross_attention_from_q_kv(q, kv, H)
    out.backward(dy)
    save("ops/attention_cross.safetensors", dict(q=q, kv=kv, dy=dy, out=out, dq=q.grad, dkv=kv.grad),
         meta={"heads": str(H), "head_dim": str(A // H), "scale": repr((A // H) ** -0.5)}, seed=s)


def op_qkv_linear_qv():
    s = seed(108)
    C, A = 16, 16
    x = leaf(rand(2, 7, C))
    weight = leaf(rand(3 * A, C, scale=0.25))
    q_bias = leaf(rand(A, scale=0.5))
    v_bias = leaf(rand(A, scale=0.5))
    dy = rand(2, 7, 3 * A)
    y = F.linear(x, weight, torch.cat([q_bias, torch.zeros(A), v_bias]))
    y.backward(dy)
    save("ops/qkv_linear_qv.safetensors", dict(x=x, weight=weight, q_bias=q_bias, v_bias=v_bias, dy=dy,
                                               y=y, dx=x.grad, dweight=weight.grad, dq_bias=q_bias.grad,
                                               dv_bias=v_bias.grad), seed=s)


def op_gather_tokens():
    s = seed(109)
    B, N, C, K = 2, 10, 6, 4
    x = leaf(rand(B, N, C))
    index = torch.stack([torch.randperm(N)[:K] for _ in range(B)]).to(torch.int64)
    dy = rand(B, K, C)
    y = torch.gather(x, 1, index[..., None].expand(-1, -1, C))
    y.backward(dy)
    save("ops/gather_tokens.safetensors", dict(x=x, index=index, dy=dy, y=y, dx=x.grad),
         meta={"dim": "1"}, seed=s)


def op_mean_tokens():
    s = seed(110)
    x = leaf(rand(2, 10, 6, scale=2.0))
    dy = rand(2, 6)
    y = x.mean(dim=1)
    y.backward(dy)
    save("ops/mean_tokens.safetensors", dict(x=x, dy=dy, y=y, dx=x.grad), meta={"dim": "1"}, seed=s)


def op_mse_weighted():
    s = seed(111)
    B, N, C, M = 2, 10, 12, 6
    pred = leaf(rand(B, N, C))
    target = rand(B, N, C, scale=1.3)
    weight = torch.zeros(B, N)
    for b in range(B):
        masked = torch.randperm(N)[:M]
        weight[b, masked] = 1.0 + torch.rand(M)
    normalizer = float(B * M * C)
    loss = ((weight[..., None] * (pred - target) ** 2).sum() / normalizer).reshape(1)
    loss.backward(torch.ones(1))
    save("ops/mse_weighted.safetensors", dict(pred=pred, target=target, weight=weight, loss=loss,
                                              dpred=pred.grad),
         meta={"normalizer": repr(normalizer), "masked_per_row": str(M)}, seed=s)


def _patch_embed(rel, in_chans, s):
    seed(s)
    images = leaf(rand(2, in_chans, 8, 8))
    pe = PatchEmbed(in_chans, 10, 4)
    with torch.no_grad():
        pe.proj.weight.normal_(0.0, 1.0 / math.sqrt(in_chans * 16))
        pe.proj.bias.normal_(0.0, 0.3)
    dy = rand(2, 4, 10)
    y = pe(images)
    y.backward(dy)
    save(rel, dict(images=images, weight=pe.proj.weight, bias=pe.proj.bias, dy=dy, y=y, dimages=images.grad,
                   dweight=pe.proj.weight.grad, dbias=pe.proj.bias.grad),
         meta={"patch_size": "4", "stride": "4"}, seed=s)


def op_patch_embed():
    _patch_embed("ops/patch_embed.safetensors", 3, 112)
    _patch_embed("ops/patch_embed_gray.safetensors", 1, 113)


def op_pos_embed():
    s = seed(114)
    t = {
        "bootmae": sincos_bootmae(16, 3),
        "mae": sincos_mae(16, 3),
        "bootmae_64": sincos_bootmae(64, 8),
        "mae_64": sincos_mae(64, 8),
    }
    # the two tables differ only by the order of their halves (row-first vs column-first)
    for a, b, d in (("bootmae", "mae", 16), ("bootmae_64", "mae_64", 64)):
        swapped = torch.cat([t[b][..., d // 2:], t[b][..., :d // 2]], dim=-1)
        assert (swapped - t[a]).abs().max() < 1e-5, a
        assert (t[a] - t[b]).abs().max() > 0.5, a
    save("ops/pos_embed_sincos.safetensors", t,
         meta={"embed_dim": "16", "grid": "3", "embed_dim_64": "64", "grid_64": "8",
               "temperature": "10000.0", "cls_token": "true"}, seed=s)


# --------------------------------------------------------------------------------------------------
# blocks
# --------------------------------------------------------------------------------------------------
def _block_fixture(rel, block, s, dim=48):
    x = leaf(rand(2, 17, dim, scale=1.5))
    dy = rand(2, 17, dim)
    y = block(x)
    y.backward(dy)
    t = dict(x=x, dy=dy, y=y, dx=x.grad)
    for n in block.state_dict():
        p = dict(block.named_parameters())[n]
        t["param." + n] = p
        t["grad." + n] = p.grad
    return t


def _fc1_range(block, x):
    with torch.no_grad():
        h = block.mlp.fc1(block.norm2(x + block.attn(block.norm1(x))))
    return float(h.min()), float(h.max())


def block_qkv():
    s = seed(201)
    block = TimmBlock(dim=48, num_heads=4, mlp_ratio=4, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6))
    randomize_(block)
    block.eval()
    t = _block_fixture("blocks/block_qkv.safetensors", block, s)
    lo, hi = _fc1_range(block, t["x"])
    save("blocks/block_qkv.safetensors", t,
         meta={"dim": "48", "heads": "4", "mlp_ratio": "4.0", "eps": "1e-06", "qkv_bias": "qkv",
               "module": "timm.models.vision_transformer.Block", "fc1_out_range": f"{lo:.3f},{hi:.3f}"}, seed=s)


def block_qv():
    s = seed(202)
    block = QVBlock(48, 4, 4.0, 1e-6)
    randomize_(block)
    block.eval()
    t = _block_fixture("blocks/block_qv.safetensors", block, s)
    lo, hi = _fc1_range(block, t["x"])
    # cross-check: the same weights in a timm Block with qkv.bias = cat(q_bias, 0, v_bias)
    tb = TimmBlock(dim=48, num_heads=4, mlp_ratio=4, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6))
    sd = {k: v for k, v in block.state_dict().items() if k not in ("attn.q_bias", "attn.v_bias")}
    sd["attn.qkv.bias"] = torch.cat([block.attn.q_bias, torch.zeros(48), block.attn.v_bias]).detach()
    tb.load_state_dict(sd)
    with torch.no_grad():
        err = (tb(t["x"]) - t["y"]).abs().max().item()
    assert err < 1e-5, f"QVBlock vs timm Block mismatch {err}"
    save("blocks/block_qv.safetensors", t,
         meta={"dim": "48", "heads": "4", "mlp_ratio": "4.0", "eps": "1e-06", "qkv_bias": "qv",
               "module": "BootMAE-style Block (spec 1.1)", "fc1_out_range": f"{lo:.3f},{hi:.3f}"}, seed=s)


# --------------------------------------------------------------------------------------------------
# encoders
# --------------------------------------------------------------------------------------------------
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def timm_vit(**kw):
    args = dict(img_size=32, patch_size=8, in_chans=3, embed_dim=48, depth=2, num_heads=4, mlp_ratio=4.0,
                qkv_bias=True, class_token=True, norm_layer=partial(nn.LayerNorm, eps=1e-6))
    args.update(kw)
    m = TimmViT(**args)
    m.eval()
    return m


def base_config(**kw):
    c = {"img_size": 32, "patch_size": 8, "in_chans": 3, "embed_dim": 48, "depth": 2, "num_heads": 4,
         "mlp_ratio": 4.0, "qkv_bias": "qkv", "layer_norm_eps": 1e-6, "global_pool": "cls",
         "pos_embed": "checkpoint", "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    c.update(kw)
    return c


def _grads(model):
    return {"grad." + n: p.grad for n, p in model.named_parameters() if p.requires_grad}


def enc_timm_qkv_cls():
    s = seed(301)
    name = "encoders/timm_qkv_cls"
    m = timm_vit(num_classes=0, global_pool="token")
    randomize_(m)
    images = leaf(rand(3, 3, 32, 32))
    dtokens = rand(3, 17, 48)
    tokens = m.forward_features(images)
    tokens.backward(dtokens)
    io = dict(images=images, tokens=tokens, pooled_cls=tokens[:, 0], pooled_mean=tokens[:, 1:].mean(1),
              dtokens=dtokens, dimages=images.grad, **_grads(m))
    write_json(f"{name}/config.json", base_config())
    save(f"{name}/model.safetensors", state_dict_f32(m), seed=s)
    save(f"{name}/io.safetensors", io, seed=s)
    return m


def enc_timm_qkv_avg_head():
    s = seed(302)
    name = "encoders/timm_qkv_avg_head"
    m = timm_vit(num_classes=5, global_pool="avg")
    randomize_(m)
    keys = list(m.state_dict())
    assert not any(k.startswith("norm.") for k in keys), keys
    assert "fc_norm.weight" in keys and "head.weight" in keys, keys
    images = rand(3, 3, 32, 32)
    with torch.no_grad():
        tokens = m.forward_features(images)
        pooled = m.forward_head(tokens, pre_logits=True)
        logits = m.forward_head(tokens)
        assert torch.allclose(logits, m(images))
    write_json(f"{name}/config.json", base_config(global_pool="mean", labels=["a", "b", "c", "d", "e"]))
    save(f"{name}/model.safetensors", state_dict_f32(m), seed=s)
    # `tokens` (forward_features output, = last block output since norm is Identity) is an extra key
    save(f"{name}/io.safetensors", dict(images=images, tokens=tokens, pooled_mean=pooled, logits=logits), seed=s)


BOOTMAE_DIM = 32  # 64 (as first specified) made model+io 450+540 KiB; see README


def bootmae_encoder():
    m = BootMAEEncoder(32, 8, 3, BOOTMAE_DIM, 2, 4, 4.0, 1e-6)
    randomize_(m)
    m.eval()
    return m


def bootmae_config(**kw):
    return base_config(embed_dim=BOOTMAE_DIM, qkv_bias="qv", mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5], **kw)


def enc_bootmae_qv():
    s = seed(303)
    name = "encoders/bootmae_qv"
    m = bootmae_encoder()
    assert not m.pos_embed.requires_grad
    assert torch.equal(m.pos_embed, sincos_bootmae(BOOTMAE_DIM, 4))
    images = leaf(rand(3, 3, 32, 32))
    dtokens = rand(3, 17, BOOTMAE_DIM)
    # pos_embed is BootMAE's frozen sin-cos table, saved in the checkpoint: config says
    # "sincos_bootmae" and the loader must use the saved table and keep it frozen (no gradient).
    tokens = m.forward_features(images)
    tokens.backward(dtokens)
    io = dict(images=images, tokens=tokens, pooled_cls=tokens[:, 0], pooled_mean=tokens[:, 1:].mean(1),
              dtokens=dtokens, dimages=images.grad, **_grads(m))
    assert "grad.pos_embed" not in io
    write_json(f"{name}/config.json", bootmae_config(pos_embed="sincos_bootmae"))
    save(f"{name}/model.safetensors", state_dict_f32(m), seed=s)
    save(f"{name}/io.safetensors", io, seed=s)
    return m, s


def enc_bootmae_qv_sincos(m, s):
    name = "encoders/bootmae_qv_sincos"
    seed(304)
    images = rand(3, 3, 32, 32)
    with torch.no_grad():
        tokens = m.forward_features(images)
    sd = state_dict_f32(m, drop=("pos_embed",))
    assert "pos_embed" not in sd
    write_json(f"{name}/config.json", bootmae_config(pos_embed="sincos_bootmae"))
    save(f"{name}/model.safetensors", sd, meta={"weights_from_seed": str(s)}, seed=s)
    save(f"{name}/io.safetensors", dict(images=images, tokens=tokens), seed=304)


def enc_mae_gray_sincos():
    s = seed(305)
    name = "encoders/mae_gray_sincos"
    m = timm_vit(in_chans=1, depth=1, num_classes=0, global_pool="token")
    with torch.no_grad():
        m.pos_embed.copy_(sincos_mae(48, 4))
    m.pos_embed.requires_grad_(False)
    randomize_(m)  # skips the frozen pos_embed
    assert torch.equal(m.pos_embed.detach(), sincos_mae(48, 4))
    images = rand(2, 1, 32, 32)
    with torch.no_grad():
        tokens = m.forward_features(images)
    sd = state_dict_f32(m, drop=("pos_embed",))
    write_json(f"{name}/config.json", base_config(in_chans=1, depth=1, pos_embed="sincos_mae",
                                                  mean=[0.5], std=[0.5]))
    save(f"{name}/model.safetensors", sd, seed=s)
    save(f"{name}/io.safetensors", dict(images=images, tokens=tokens), seed=s)


# --------------------------------------------------------------------------------------------------
# check
# --------------------------------------------------------------------------------------------------
def check():
    total = 0
    big = []
    print(f"{'file':60s} {'bytes':>8s}  tensors")
    for path in sorted(set(WRITTEN)):
        size = path.stat().st_size
        rel = path.relative_to(OUT)
        if path.suffix == ".safetensors":
            t = load_file(str(path))
            for k, v in t.items():
                assert v.is_contiguous() and v.dtype in (torch.float32, torch.int64), (rel, k)
                assert torch.isfinite(v.float()).all(), (rel, k)
            shapes = ", ".join(f"{k}{tuple(v.shape)}" for k, v in sorted(t.items()) if not k.startswith(("param.", "grad.")))
            n_pg = sum(k.startswith(("param.", "grad.")) for k in t)
            if n_pg:
                shapes += f", +{n_pg} param./grad. keys"
        else:
            json.loads(path.read_text())
            shapes = "json"
        print(f"{str(rel):60s} {size:8d}  {shapes}")
        total += size
        if size > MAX_FILE_BYTES:
            big.append((str(rel), size))
    print(f"total: {total} bytes ({total / 1024:.1f} KiB) in {len(set(WRITTEN))} files")
    for rel, size in big:
        print(f"warning: {rel} is {size / 1024:.1f} KiB (> {MAX_FILE_BYTES // 1024} KiB)")
    if total > MAX_TOTAL_BYTES:
        print(f"warning: total exceeds {MAX_TOTAL_BYTES // 1024} KiB")
    if TORCHVISION_SHIM:
        print("note: torchvision._meta_registrations was stubbed (broken torchvision in this venv)")


def main():
    for fn in (op_linear, op_layernorm, op_layernorm_noaffine, op_gelu, op_softmax, op_attention_self,
               op_attention_cross, op_qkv_linear_qv, op_gather_tokens, op_mean_tokens, op_mse_weighted,
               op_patch_embed, op_pos_embed, block_qkv, block_qv, enc_timm_qkv_cls, enc_timm_qkv_avg_head):
        fn()
    m, s = enc_bootmae_qv()
    enc_bootmae_qv_sincos(m, s)
    enc_mae_gray_sincos()
    check()


if __name__ == "__main__":
    main()
