#!/usr/bin/env python3
"""Reference fixtures for one PeCo stage-2 step (BEiT's masked image modeling on given codes).

Usage (from the repository root):
    .venv-ref/bin/python tools/reference/make_peco_fixtures.py

Writes Tests/Fixtures/pretrain/peco_tiny/{config.json, model.safetensors, io.safetensors}
(contents in Tests/Fixtures/README.md).

The network and the loss are written here after the semantics of the official BEiT code,
microsoft/unilm beit/ (modeling_pretrain.py `VisionTransformerForMaskedImageModeling`,
modeling_finetune.py `Block` / `Attention`, engine_for_pretraining.py `train_one_epoch`,
masking_generator.py `MaskingGenerator`), not copied from it:
  * patch_embed (Conv2d, bias included) -> x * (1 - w) + mask_token * w at the masked positions
    -> prepend cls_token -> + pos_embed (BEiT's --abs_pos_emb; no relative position bias) -> blocks
    -> norm -> lm_head on x[:, 1:][bool_masked_pos] only;
  * Block: x + gamma_1 * attn(norm1(x)); x + gamma_2 * mlp(norm2(x)) (layer scale), q_bias / v_bias
    with a zero k bias, q scaled by head_dim^-0.5, exact-erf GELU, LayerNorm eps 1e-6;
  * loss: nn.CrossEntropyLoss() (the mean over every masked patch of the batch) against the codes
    at the masked positions; mlm_acc = share of arg-max hits;
  * the masks: MaskingGenerator's loop (integer target, min_num_patches, max_num_patches = target,
    aspect log-uniform in [0.3, 1/0.3], 10 attempts, stop at the first block that fails), drawn
    with Python's random.Random(seed) (the masks are inputs of the fixture);
  * the codes (labels) are random integers in [0, K): stage 2 only reads the tokenizer's output.

Deviations: no drop path (0 by default in run_beit_pretraining.py), no fp16, one process.

Also written: the at-initialisation check of seeds §3.5, the loss of a BEiT-initialised network
(trunc_normal std 0.02 at +-1 std, proj/fc2 rescaled by 1/sqrt(2 layer_id), gamma 0.1) on the
same inputs, next to ln K (meta `init_loss`, `ln_k`).

Seeded, float32, one thread, sorted safetensors metadata: a re-run rewrites byte-identical files.
"""

import math
import random
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FixtureWriter, Mlp, PatchEmbed, QVAttention, randomize_, seed  # noqa: E402

SCRIPT = "tools/reference/make_peco_fixtures.py"
WRITER = FixtureWriter(SCRIPT, max_file_bytes=100 * 1024, max_total_bytes=200 * 1024)

EPS = 1e-6
C = dict(img_size=8, patch_size=2, in_chans=1, embed_dim=16, depth=2, num_heads=2, mlp_ratio=2.0, vocab_size=24)
BATCH = 3
NUM_MASK = 6            # of 16 patches (about 40%)
MIN_BLOCK = 2
LAYER_SCALE = 0.1


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio, init_values):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=EPS)
        self.attn = QVAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.gamma_1 = nn.Parameter(init_values * torch.ones(dim))
        self.gamma_2 = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x):
        x = x + self.gamma_1 * self.attn(self.norm1(x))
        return x + self.gamma_2 * self.mlp(self.norm2(x))


class MaskedImageModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        D, n = c["embed_dim"], (c["img_size"] // c["patch_size"]) ** 2
        self.patch_embed = PatchEmbed(c["in_chans"], D, c["patch_size"])   # key patch_embed.proj.*
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, D))
        self.blocks = nn.ModuleList([Block(D, c["num_heads"], c["mlp_ratio"], LAYER_SCALE) for _ in range(c["depth"])])
        self.norm = nn.LayerNorm(D, eps=EPS)
        self.lm_head = nn.Linear(D, c["vocab_size"])

    def forward(self, x, bool_masked_pos):
        x = self.patch_embed(x)
        B, N, _ = x.shape
        w = bool_masked_pos.unsqueeze(-1).type_as(x)
        x = x * (1 - w) + self.mask_token.expand(B, N, -1) * w
        x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)[:, 1:]
        return self.lm_head(x[bool_masked_pos])

    def beit_init_(self):
        """modeling_pretrain.py __init__ / _init_weights / fix_init_weight."""
        def tn(t):
            nn.init.trunc_normal_(t, std=0.02, a=-0.02, b=0.02)
        with torch.no_grad():
            for t in (self.pos_embed, self.cls_token, self.mask_token):
                tn(t)
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Conv2d)):
                    tn(m.weight)
                    if m.bias is not None:
                        m.bias.zero_()
                elif isinstance(m, nn.LayerNorm):
                    m.weight.fill_(1.0)
                    m.bias.zero_()
            for i, blk in enumerate(self.blocks):
                blk.attn.q_bias.zero_()
                blk.attn.v_bias.zero_()
                blk.gamma_1.fill_(LAYER_SCALE)
                blk.gamma_2.fill_(LAYER_SCALE)
                blk.attn.proj.weight.div_(math.sqrt(2.0 * (i + 1)))
                blk.mlp.fc2.weight.div_(math.sqrt(2.0 * (i + 1)))


def block_mask(rng, H, W, target, min_block, min_aspect=0.3):
    """MaskingGenerator.__call__ with max_num_patches = target (its default)."""
    log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))
    mask = [[False] * W for _ in range(H)]
    count = 0
    while count < target:
        max_mask = min(target - count, target)
        delta = 0
        for _ in range(10):
            area = rng.uniform(min_block, max_mask)
            aspect = math.exp(rng.uniform(*log_aspect))
            h = int(round(math.sqrt(area * aspect)))
            w = int(round(math.sqrt(area / aspect)))
            if w < W and h < H:
                top = rng.randint(0, H - h)
                left = rng.randint(0, W - w)
                covered = sum(mask[i][j] for i in range(top, top + h) for j in range(left, left + w))
                if 0 < h * w - covered <= max_mask:
                    for i in range(top, top + h):
                        for j in range(left, left + w):
                            if not mask[i][j]:
                                mask[i][j] = True
                                delta += 1
            if delta > 0:
                break
        if delta == 0:
            break
        count += delta
    return torch.tensor(mask).flatten()


def step(model, images, masks, labels):
    model.zero_grad(set_to_none=True)
    logits = model(images, masks)
    target = labels[masks]
    loss = nn.CrossEntropyLoss()(logits, target)
    loss.backward()
    acc = (logits.argmax(-1) == target).float().mean()
    return loss, acc, logits


def main():
    torch.set_num_threads(1)
    seed(18)
    g = (C["img_size"] // C["patch_size"])
    model = MaskedImageModel(C)
    randomize_(model)
    images = torch.randn(BATCH, C["in_chans"], C["img_size"], C["img_size"])
    rng = random.Random(18)
    masks = torch.stack([block_mask(rng, g, g, NUM_MASK, MIN_BLOCK) for _ in range(BATCH)])
    labels = torch.randint(0, C["vocab_size"], (BATCH, g * g))
    loss, acc, logits = step(model, images, masks, labels)

    # Float64 replay of the loss from the same float32 weights.
    model64 = MaskedImageModel(C).double()
    model64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    loss64 = nn.CrossEntropyLoss()(model64(images.double(), masks), labels[masks])
    assert abs(loss64.item() - loss.item()) <= 1e-6 * abs(loss64.item()), (loss64.item(), loss.item())

    # At initialisation (seeds §3.5): BEiT's init on the same inputs.
    init = MaskedImageModel(C)
    init.beit_init_()
    with torch.no_grad():
        init_loss = nn.CrossEntropyLoss()(init(images, masks), labels[masks]).item()

    config = dict(img_size=C["img_size"], patch_size=C["patch_size"], in_chans=C["in_chans"], embed_dim=C["embed_dim"],
                  depth=C["depth"], num_heads=C["num_heads"], mlp_ratio=C["mlp_ratio"], qkv_bias="qv", layer_norm_eps=EPS,
                  global_pool="cls", mean=[0.5], std=[0.5], pos_embed="checkpoint", layer_scale_init=LAYER_SCALE,
                  objective="peco", vocab_size=C["vocab_size"], num_mask_patches=NUM_MASK)
    WRITER.write_json("pretrain/peco_tiny/config.json", config)
    WRITER.save("pretrain/peco_tiny/model.safetensors", {k: v for k, v in model.state_dict().items()}, seed=18)
    tensors = {"images": images, "masks": masks.long(), "labels": labels.long(), "loss": loss.detach().reshape(1),
               "mlm_acc": acc.reshape(1), "logits": logits.detach()}
    for n, p in model.named_parameters():
        tensors["grad." + n] = p.grad
    WRITER.save("pretrain/peco_tiny/io.safetensors", tensors, seed=18,
                meta={"init_loss": repr(init_loss), "ln_k": repr(math.log(C["vocab_size"])), "min_block": str(MIN_BLOCK),
                      "masked": str(int(masks.sum()))})
    WRITER.check()
    print(f"loss {loss.item():.6f} (float64 {loss64.item():.6f}), mlm_acc {acc.item():.4f}, masked {int(masks.sum())}, "
          f"init loss {init_loss:.4f} vs ln K {math.log(C['vocab_size']):.4f}")


if __name__ == "__main__":
    main()
