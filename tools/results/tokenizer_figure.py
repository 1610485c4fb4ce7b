"""The tokenizer figure of docs/RESULTS.md: the two PeCo tokenizers side by side, drawn from a running bootmae-serve.

Posts each committed Fashion-MNIST test image (Tests/Fixtures/fmnist) to /v1/tokens?decode=true of both
tokenizers (the perceptual one, λ_per = 1, and the pixel-only one, λ_per = 0) and draws one row per image:
original | decoded by each tokenizer | each tokenizer's 7×7 code grid, where the codes that occur more than
once in the image get a colour each and the rest are grey (so a colour marks the patches that share a code;
the two codebooks are unrelated, so colours do not compare across grids).
Each decoding is captioned with the PSNR the server reports for it (the JSON answer's `psnr`, also the
PNG answer's X-PSNR header): against the model's input, which for these 28×28 grayscale images is the
original itself, the decoding unclamped, in [0, 1] pixel units; each code grid with its number of distinct
codes. The last line gives, per tokenizer, the PSNR of the images' mean MSE (the measure `bootmae-train
tokenizer-eval` reports over the whole test split) and the mean number of distinct codes per image.

    .venv-ref/bin/python tools/results/tokenizer_figure.py --url http://127.0.0.1:8080 \
        --perceptual peco-tokenizer-vit-tiny-fmnist --pixel-only vq-tokenizer-vit-tiny-fmnist \
        --out docs/results/tokenizers.png

Both tokenizers must be served by the one server (scripts/fmnist-experiments.sh figures starts one over
just the two: models/peco-tokenizer-vit-tiny-fmnist and the λ_per = 0 export in runs/). Needs Pillow (tools/reference/setup_venv.sh installs it).
"""
import argparse
import base64
import collections
import io
import json
import math

from PIL import Image, ImageDraw

from served_figures import ROOT, post_image, save, test_images


def tokenize(url, model, image_bytes, scale):
    """The tokenizer's decoding (upscaled by `scale`), its PSNR and its code grid (a list of rows)."""
    body, _ = post_image(url, "/v1/tokens", f"model={model}&decode=true&scale={scale}", image_bytes,
                         accept="application/json")
    answer = json.loads(body)
    item, grid = answer["data"][0], answer["grid"]
    decoded = Image.open(io.BytesIO(base64.b64decode(item["decoded"]))).convert("RGB")
    codes = [item["codes"][r * grid:(r + 1) * grid] for r in range(grid)]
    return decoded, item["psnr"], codes


# Matplotlib's tab20 without its greys: 18 colours, more than the codes any of these images repeats (13).
REPEATED = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
            "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5"]
ONCE = "#dddddd"


def code_grid(codes, side):
    """The code grid as a `side`-pixel square, one cell per patch, a white line between cells: each code
    used more than once has its own colour (the most used first), a code used once is grey."""
    counts = collections.Counter(code for row in codes for code in row)
    repeated = [code for code, n in counts.most_common() if n > 1]
    if len(repeated) > len(REPEATED):
        raise SystemExit(f"{len(repeated)} repeated codes in one image: more than the {len(REPEATED)} colours")
    colour = {code: REPEATED[i] for i, code in enumerate(repeated)}
    panel = Image.new("RGB", (side, side), "white")
    draw = ImageDraw.Draw(panel)
    cell = side / len(codes)
    for r, row in enumerate(codes):
        for c, code in enumerate(row):
            draw.rectangle([round(c * cell), round(r * cell), round((c + 1) * cell) - 2, round((r + 1) * cell) - 2],
                           fill=colour.get(code, ONCE))
    return panel, len(counts)


def psnr_of_mean_mse(psnrs):
    """PSNR of the mean of the per-image MSEs (each MSE recovered from its PSNR, peak 1)."""
    return -10 * math.log10(sum(10 ** (-p / 10) for p in psnrs) / len(psnrs))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--perceptual", default="peco-tokenizer-vit-tiny-fmnist", help="the λ_per = 1 tokenizer's model id")
    parser.add_argument("--pixel-only", default="vq-tokenizer-vit-tiny-fmnist", help="the λ_per = 0 tokenizer's model id")
    parser.add_argument("--scale", type=int, default=5, help="nearest-neighbour upscaling of the 28 px images")
    parser.add_argument("--out", default=str(ROOT / "docs/results/tokenizers.png"))
    args = parser.parse_args()
    # Panel labels in ASCII words: Pillow's default font has no λ.
    tokenizers = [("perceptual", args.perceptual), ("pixel-only", args.pixel_only)]

    rows, psnrs, distincts = [], {label: [] for label, _ in tokenizers}, {label: [] for label, _ in tokenizers}
    for image_bytes, name in test_images():
        original = Image.open(io.BytesIO(image_bytes)).convert("RGB")
        original = original.resize((original.width * args.scale, original.height * args.scale), Image.NEAREST)
        decodings, grids = [], []
        for label, model in tokenizers:
            decoded, psnr, codes = tokenize(args.url, model, image_bytes, args.scale)
            psnrs[label].append(psnr)
            decodings.append((decoded, f"PSNR {psnr:.2f} dB"))
            grid, distinct = code_grid(codes, original.width)
            distincts[label].append(distinct)
            grids.append((grid, f"{distinct} distinct codes of {len(codes) ** 2}"))
        rows.append([(original, name)] + decodings + grids)
        print(f"{name:28}" + "".join(f"  {label}: {p[-1]:6.2f} dB" for label, p in psnrs.items()))

    # Two columns of rows, each panel captioned above, one header line of panel names per column.
    caption, header, footer, gap, gutter, columns = 14, 18, 20, 2, 24, 2
    side = rows[0][0][0].width
    titles = ["original"] + [f"decoded, {label}" for label, _ in tokenizers] + [f"codes, {label}" for label, _ in tokenizers]
    row_w = len(titles) * (side + gap) - gap
    per_column = (len(rows) + columns - 1) // columns
    figure = Image.new("RGB", (columns * row_w + (columns - 1) * gutter, header + per_column * (caption + side) + footer), "white")
    draw = ImageDraw.Draw(figure)
    for i, panels in enumerate(rows):
        x = (i // per_column) * (row_w + gutter)
        y = header + (i % per_column) * (caption + side)
        for k, (panel, text) in enumerate(panels):
            if i % per_column == 0:
                draw.text((x + k * (side + gap) + 2, 3), titles[k], fill="black")
            draw.text((x + k * (side + gap) + 2, y + 1), text, fill=(60, 60, 60))
            figure.paste(panel, (x + k * (side + gap), y + caption))
    summary = "      ".join(f"{label} ({model}): PSNR {psnr_of_mean_mse(psnrs[label]):.2f} dB, "
                               f"{sum(distincts[label]) / len(rows):.1f} distinct codes" for label, model in tokenizers)
    draw.text((2, figure.height - footer + 4), f"Over the {len(rows)} images (PSNR of their mean MSE, mean of the distinct "
              f"codes):      {summary}", fill="black")
    for label, model in tokenizers:
        values = psnrs[label]
        print(f"{label} {model}: PSNR of the mean MSE {psnr_of_mean_mse(values):.2f} dB, mean PSNR "
              f"{sum(values) / len(values):.2f} dB, {sum(distincts[label]) / len(rows):.1f} distinct codes per image")
    save(figure, args.out)


if __name__ == "__main__":
    main()
