"""Which GEMM operands' rounding moves a shipped model's embeddings from fp32, and by how much.

A plain PyTorch forward of a BootMAE-style ViT model directory (config.json + model.safetensors, qv
biases, sin-cos or stored position table, mean pooling + fc_norm for classifiers, the final norm
otherwise) on Fashion-MNIST test images, where the blocks' four Linear layers (qkv, proj, fc1, fc2)
can round their weights and/or inputs to bf16 or fp16 (round to nearest even) and sum in fp32, as
our inference kernels do. Prints the minimum and mean cosine to the fp32 forward for each variant;
behind the "bf16 accuracy" section of docs/PERFORMANCE.md.

    .venv-ref/bin/python tools/analysis/bf16_sensitivity.py models/bootmae-vit-tiny-fmnist-cls --every 5
"""
import argparse, gzip, json, struct
import numpy as np
import torch
import torch.nn.functional as F

KINDS = ["qkv", "proj", "fc1", "fc2"]
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def load(model_dir):
    config = json.load(open(f"{model_dir}/config.json"))
    with open(f"{model_dir}/model.safetensors", "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header, buf = json.loads(f.read(n)), f.read()
    kinds = {"F16": np.float16, "F32": np.float32}
    weights = {k: torch.from_numpy(np.frombuffer(buf[v["data_offsets"][0]:v["data_offsets"][1]], kinds[v["dtype"]])
                                   .astype(np.float32).reshape(v["shape"]))
               for k, v in header.items() if k != "__metadata__"}
    return config, weights


def forward(config, W, images, rounded, dtype, operands):
    """rounded: set of (block, kind) whose operands ('w', 'x' or 'wx') are rounded to dtype."""
    d, heads, eps = config["embed_dim"], config["num_heads"], config["layer_norm_eps"]
    hd = d // heads
    p = config["patch_size"]
    rnd = lambda t: t.to(dtype).float()

    def linear(x, w, b, key):
        if key in rounded:
            x = rnd(x) if "x" in operands else x
            w = rnd(w) if "w" in operands else w
        y = x @ w.T
        return y + b if b is not None else y

    x = F.conv2d(images, W["patch_embed.proj.weight"], W["patch_embed.proj.bias"], stride=p).flatten(2).transpose(1, 2)
    x = torch.cat([W["cls_token"].expand(x.shape[0], -1, -1), x], 1) + W["pos_embed"]
    for i in range(config["depth"]):
        b = f"blocks.{i}."
        y = F.layer_norm(x, (d,), W[b + "norm1.weight"], W[b + "norm1.bias"], eps)
        bias = torch.cat([W[b + "attn.q_bias"], torch.zeros(d), W[b + "attn.v_bias"]])
        qkv = linear(y, W[b + "attn.qkv.weight"], bias, (i, "qkv"))
        B, N, _ = qkv.shape
        q, k, v = qkv.reshape(B, N, 3, heads, hd).permute(2, 0, 3, 1, 4)
        a = ((q * hd ** -0.5) @ k.transpose(-2, -1)).softmax(-1) @ v
        x = x + linear(a.transpose(1, 2).reshape(B, N, d), W[b + "attn.proj.weight"], W[b + "attn.proj.bias"], (i, "proj"))
        y = F.layer_norm(x, (d,), W[b + "norm2.weight"], W[b + "norm2.bias"], eps)
        y = F.gelu(linear(y, W[b + "mlp.fc1.weight"], W[b + "mlp.fc1.bias"], (i, "fc1")))
        x = x + linear(y, W[b + "mlp.fc2.weight"], W[b + "mlp.fc2.bias"], (i, "fc2"))
    if "fc_norm.weight" in W:
        return F.layer_norm(x[:, 1:].mean(1), (d,), W["fc_norm.weight"], W["fc_norm.bias"], eps)
    x = F.layer_norm(x, (d,), W["norm.weight"], W["norm.bias"], eps)
    return x[:, 1:].mean(1) if config.get("global_pool") == "mean" else x[:, 0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
    ap.add_argument("--every", type=int, default=1, help="use every N-th test image")
    ap.add_argument("--per-layer", action="store_true", help="also keep each matrix fp32 in turn (slow)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    config, W = load(args.model)
    raw = np.frombuffer(gzip.open(args.data).read()[16:], np.uint8).reshape(-1, 1, 28, 28)[::args.every]
    mean, std = config["mean"][0], config["std"][0]
    images = (torch.from_numpy(raw.astype(np.float32)) / 255 - mean) / std
    every = {(i, k) for i in range(config["depth"]) for k in KINDS}
    with torch.no_grad():
        reference = forward(config, W, images, set(), None, "")

        def report(name, rounded, dtype="bf16", operands="wx"):
            c = F.cosine_similarity(forward(config, W, images, rounded, DTYPES[dtype], operands), reference)
            print(f"{name:<48} min {c.min().item():.7f}  mean {c.mean().item():.7f}  (image {c.argmin().item() * args.every})")

        print(f"{args.model}: {len(images)} images")
        report("bf16 weights and inputs", every)
        report("bf16 weights only", every, operands="w")
        report("bf16 inputs only", every, operands="x")
        report("fp16 weights and inputs", every, "fp16")
        for kind in KINDS:
            report(f"bf16, {kind} kept fp32 in every block", every - {(i, kind) for i in range(config["depth"])})
        if args.per_layer:
            for key in sorted(every):
                report(f"bf16, block {key[0]} {key[1]} kept fp32", every - {key})


if __name__ == "__main__":
    main()
