#!/usr/bin/env python3
"""Writes the photometric-augmentation fixtures to Tests/Fixtures/augment/.

Run with the reference venv (Pillow, numpy, torchvision):
    .venv-ref/bin/python tools/reference/make_augment_fixtures.py

iBOT's global crops (bytedance/ibot main_ibot.py `DataAugmentationiBOT`) are PIL images when they go
through torchvision's `ColorJitter` and `RandomGrayscale` and through utils.py `GaussianBlur` /
`Solarization`. Each fixture is one of those operations with fixed parameters on a fixed 8-bit input:
torchvision.transforms.functional (`adjust_brightness` / `adjust_contrast` / `adjust_saturation` /
`adjust_hue` / `rgb_to_grayscale`, which call Pillow's ImageEnhance / convert('HSV') for PIL images),
`img.filter(ImageFilter.GaussianBlur(radius))` and `ImageOps.solarize(img)` (threshold 128).

If `import torchvision` fails in this venv (a CUDA torchvision next to a +cpu torch), the same stub
as common.py's is used: torchvision._meta_registrations is replaced by an empty module (it only
registers fake kernels of detection ops; no image arithmetic changes).

Factors are float32 values (torchvision draws them with `torch.empty(1).uniform_`), written to
cases.json as the float64 of that float32, so Swift reads them back exactly.
"""
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, ImageFilter, ImageOps

OUT = Path(__file__).resolve().parents[2] / "Tests" / "Fixtures" / "augment"
IMAGES = Path(__file__).resolve().parents[2] / "Tests" / "Fixtures" / "images"


def import_torchvision_functional():
    probe = subprocess.run([sys.executable, "-c", "import torchvision"], capture_output=True, text=True)
    if probe.returncode != 0:
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
    import torchvision
    import torchvision.transforms.functional as F
    return torchvision.__version__.split("+")[0], F


TV_VERSION, F = import_torchvision_functional()


def f32(x):
    return float(np.float32(x))


def save_png(img, name):
    img.save(OUT / name, format="PNG", optimize=True)
    return name


def inputs():
    """rgb_photo: a 32x24 crop of the committed astronaut fixture (varied natural colours);
    rgb_noise: 24x24 uniform random bytes (every hue sector, ties of max/min channels);
    gray_photo: the committed 96x80 gray fixture cropped to 28x28 (a quarter of it at or above 128);
    gray_noise: 20x20 uniform random bytes, mode L."""
    rng = np.random.default_rng(16)
    photo = Image.open(IMAGES / "rgb.png").convert("RGB").crop((20, 30, 52, 54))
    noise = rng.integers(0, 256, size=(24, 24, 3), dtype=np.uint8)
    # A few exact ties and grays, which take their own branches in RGB->HSV.
    noise[0, :6] = [[0, 0, 0], [255, 255, 255], [128, 128, 128], [200, 200, 10], [10, 200, 200], [200, 10, 200]]
    gray = Image.open(IMAGES / "gray.png").convert("L").crop((40, 10, 68, 38))
    gray_noise = rng.integers(0, 256, size=(20, 20), dtype=np.uint8)
    return {"rgb_photo": photo, "rgb_noise": Image.fromarray(noise, "RGB"), "gray_photo": gray,
            "gray_noise": Image.fromarray(gray_noise, "L")}


def ops():
    """(op name, parameter, function of a PIL image)."""
    out = []
    for b in [0.6, 0.8371, 1.0, 1.25, 1.4]:
        out.append(("brightness", f32(b), lambda im, v=f32(b): F.adjust_brightness(im, v)))
    for c in [0.6, 0.9173, 1.0, 1.2, 1.4]:
        out.append(("contrast", f32(c), lambda im, v=f32(c): F.adjust_contrast(im, v)))
    for s in [0.8, 0.95, 1.13, 1.2]:
        out.append(("saturation", f32(s), lambda im, v=f32(s): F.adjust_saturation(im, v)))
    for h in [-0.1, -0.0371, 0.0, 0.003, 0.05, 0.1]:
        out.append(("hue", f32(h), lambda im, v=f32(h): F.adjust_hue(im, v)))
    out.append(("grayscale", 0.0, lambda im: F.rgb_to_grayscale(im, num_output_channels=3) if im.mode == "RGB" else im))
    # 0.1...2 at 224 px, and the same radii scaled to 28 and 32 px views (x 28/224, x 32/224).
    for r in [0.1, 0.5, 1.0, 1.7, 2.0, 0.0125, 0.2, 0.25, 2.0 * 32 / 224]:
        out.append(("blur", f32(r), lambda im, v=f32(r): im.filter(ImageFilter.GaussianBlur(radius=v))))
    out.append(("solarize", 0.0, lambda im: ImageOps.solarize(im)))
    return out


def jitter_cases():
    """torchvision ColorJitter.forward with fixed (fn_idx, factors): the four ops in that order."""
    fns = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue]
    return [
        ([2, 0, 3, 1], [f32(1.31), f32(0.71), f32(1.17), f32(-0.083)]),
        ([3, 1, 0, 2], [f32(0.64), f32(1.38), f32(0.82), f32(0.061)]),
        ([0, 1, 2, 3], [f32(1.02), f32(0.99), f32(0.87), f32(0.0021)]),
    ], fns


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.png"):
        old.unlink()
    cases = []
    images = inputs()
    for name, img in images.items():
        save_png(img, f"{name}.png")
    for name, img in images.items():
        for op, value, fn in ops():
            result = fn(img.copy())
            assert result.mode == img.mode and result.size == img.size
            tag = f"{value:+.4f}".replace("+", "p").replace("-", "m").replace(".", "_") if op not in ("grayscale", "solarize") else ""
            file = save_png(result, f"{name}-{op}{('-' + tag) if tag else ''}.png")
            cases.append({"input": f"{name}.png", "op": op, "value": value, "expected": file})
        (orders, fns) = jitter_cases()
        for k, (order, factors) in enumerate(orders):
            result = img.copy()
            for i in order:
                result = fns[i](result, factors[i])
            file = save_png(result, f"{name}-jitter{k}.png")
            cases.append({"input": f"{name}.png", "op": "jitter", "order": order, "factors": factors, "expected": file})
    meta = {
        "generator": "tools/reference/make_augment_fixtures.py",
        "pillow": PIL.__version__,
        "torchvision": TV_VERSION,
        "numpy": np.__version__,
        "cases": cases,
    }
    (OUT / "cases.json").write_text(json.dumps(meta, indent=1) + "\n")
    (OUT / "README.md").write_text(
        "# Photometric augmentation fixtures\n\n"
        f"Generated by `tools/reference/make_augment_fixtures.py` with Pillow {PIL.__version__}, torchvision {TV_VERSION}, "
        f"numpy {np.__version__}; do not edit by hand. Regenerate with\n"
        "`.venv-ref/bin/python tools/reference/make_augment_fixtures.py`.\n\n"
        "Inputs: `rgb_photo.png` (32x24 crop of images/rgb.png), `rgb_noise.png` (24x24 random bytes, a few ties), "
        "`gray_photo.png` (28x28 crop of images/gray.png), `gray_noise.png` (20x20 random bytes, mode L).\n"
        "`cases.json` lists every case: input, op (brightness, contrast, saturation, hue: torchvision.transforms.functional "
        "`adjust_*`; grayscale: `rgb_to_grayscale(img, 3)`, the input itself for L; blur: "
        "`img.filter(ImageFilter.GaussianBlur(radius=value))`; solarize: `ImageOps.solarize(img)`; jitter: the four "
        "`adjust_*` in `order` (0 brightness, 1 contrast, 2 saturation, 3 hue) with `factors`, as ColorJitter.forward), "
        "its float32 parameter and the expected PNG (Pillow's output).\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"{len(cases)} cases, {total} bytes in {OUT}")


if __name__ == "__main__":
    main()
