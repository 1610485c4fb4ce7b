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
import pathlib
import urllib.request

from PIL import Image, ImageDraw

ROOT = pathlib.Path(__file__).resolve().parents[2]


def reconstruct(url, model, image_bytes, seed, masking):
    query = f"model={model}&seed={seed}&mask_ratio=0.75&masking={masking}&scale=5"
    request = urllib.request.Request(f"{url}/v1/reconstructions?{query}", data=image_bytes,
                                     headers={"Content-Type": "image/png", "Accept": "image/png"})
    with urllib.request.urlopen(request) as response:
        return Image.open(io.BytesIO(response.read())).convert("RGB"), float(response.headers["X-PSNR"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--model", default="bootmae-vit-tiny-fmnist")
    parser.add_argument("--masking", default="block", choices=["block", "random"])
    parser.add_argument("--out", default=str(ROOT / "docs/results/reconstructions.png"))
    args = parser.parse_args()

    files = sorted((ROOT / "Tests/Fixtures/fmnist").glob("test*.png"))
    rows = []
    for seed, path in enumerate(files):
        strip, psnr = reconstruct(args.url, args.model, path.read_bytes(), seed, args.masking)
        garment = path.stem.split("-", 1)[1].replace("-", " ")
        rows.append((strip, f"{garment} (test #{int(path.stem[4:9])}): PSNR {psnr:.1f} dB"))

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
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.save(out, optimize=True)
    print(out)


if __name__ == "__main__":
    main()
