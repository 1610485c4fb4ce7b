"""The reconstruction figure of docs/RESULTS.md, drawn from a running bootmae-serve.

Posts each committed Fashion-MNIST test image (Tests/Fixtures/fmnist) to /v1/reconstructions and stacks
the returned strips (original | masked | reconstruction | reconstruction with the visible patches pasted
back) into one PNG, each row captioned with the garment and the masked-patch PSNR the server reported.

    .venv-ref/bin/python tools/results/reconstruction_figure.py --url http://127.0.0.1:8080 \
        --model bootmae-vit-tiny-fmnist --out docs/results/reconstructions.png

Needs Pillow (tools/reference/setup_venv.sh installs it).
"""
import argparse
import io

from PIL import Image, ImageDraw

from served_figures import ROOT, post_image, save, test_images


def reconstruct(url, model, image_bytes, seed, masking):
    query = f"model={model}&seed={seed}&mask_ratio=0.75&masking={masking}&scale=5"
    body, headers = post_image(url, "/v1/reconstructions", query, image_bytes)
    return Image.open(io.BytesIO(body)).convert("RGB"), float(headers["X-PSNR"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--model", default="bootmae-vit-tiny-fmnist")
    parser.add_argument("--masking", default="block", choices=["block", "random"])
    parser.add_argument("--out", default=str(ROOT / "docs/results/reconstructions.png"))
    args = parser.parse_args()

    rows = []
    for seed, (image_bytes, name) in enumerate(test_images()):
        strip, psnr = reconstruct(args.url, args.model, image_bytes, seed, args.masking)
        rows.append((strip, f"{name}: PSNR {psnr:.1f} dB"))

    # Two columns of strips, each strip captioned, one header line of panel names per column.
    caption, header, gutter, columns = 14, 18, 24, 2
    per_column = (len(rows) + columns - 1) // columns
    strip_w = max(strip.width for strip, _ in rows)
    strip_h = max(strip.height for strip, _ in rows)
    figure = Image.new("RGB", (columns * strip_w + (columns - 1) * gutter, header + per_column * (caption + strip_h)), "white")
    draw = ImageDraw.Draw(figure)
    panel = (strip_w + 2) // 4
    titles = ["original", f"masked (75%, {args.masking})", "reconstruction", "+ visible patches"]
    for i, (strip, text) in enumerate(rows):
        x = (i // per_column) * (strip_w + gutter)
        y = header + (i % per_column) * (caption + strip_h)
        if i % per_column == 0:
            for k, title in enumerate(titles):
                draw.text((x + k * panel + 2, 3), title, fill="black")
        draw.text((x + 2, y + 1), text, fill=(60, 60, 60))
        figure.paste(strip, (x, y + caption))
    save(figure, args.out)


if __name__ == "__main__":
    main()
