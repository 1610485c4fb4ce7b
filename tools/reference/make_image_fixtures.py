#!/usr/bin/env python3
"""Writes the ImageKit test fixtures to Tests/Fixtures/images/.

Run with the reference venv (Pillow, numpy, scikit-image):
    .venv-ref/bin/python tools/reference/make_image_fixtures.py

Inputs are small crops of scikit-image's sample photos, written in every format the Swift decoder
must handle (and some it must refuse). Expected outputs are what Pillow produces: decoded pixels
after convert('RGB'/'L') and ImageOps.exif_transpose, BICUBIC resizes, and the torchvision/timm
eval pipeline (Resize(shorter side, bicubic) -> CenterCrop -> ToTensor -> Normalize). torchvision
itself is not imported: its two steps are re-implemented below with the same arithmetic.
Expected images are lossless PNGs; expected tensors are raw little-endian float32 (.f32), CHW.
"""
import io
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image, ImageOps

OUT = Path(__file__).resolve().parents[2] / "Tests" / "Fixtures" / "images"
EXPECTED = OUT / "expected"
README_ROWS = []  # (file, how it was made)


def note(name, how):
    README_ROWS.append((name, how))


def write(name, data, how):
    (OUT / name).write_bytes(data)
    note(name, how)


def save(img, name, how, **params):
    buffer = io.BytesIO()
    img.save(buffer, format="PNG" if name.endswith(".png") else "JPEG", **params)
    write(name, buffer.getvalue(), how)
    return buffer.getvalue()


def save_expected(array, name, how):
    array = np.asarray(array, dtype=np.uint8)
    Image.fromarray(array).save(EXPECTED / name, format="PNG", optimize=True)
    note("expected/" + name, how)


def decoded_name(name):
    """expected/ file holding Pillow's decode of input `name` (gray.png -> gray_png.png)."""
    return name.replace(".", "_") + ".png"


def pil_decoded(name, mode):
    """Pillow's decode as a torchvision/timm loader sees it: exif_transpose, then convert."""
    with Image.open(OUT / name) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert(mode))


def save_f32(array, name, how):
    np.asarray(array, dtype="<f4").tofile(EXPECTED / name)
    note("expected/" + name, how + f"; float32 little-endian, shape {tuple(array.shape)}")


# torchvision.transforms.Resize(int) / CenterCrop on PIL images, same arithmetic.
def tv_resize_shorter(img, size):
    w, h = img.size
    short, long = min(w, h), max(w, h)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) == (w, h):
        return img
    return img.resize((new_w, new_h), Image.BICUBIC)


def tv_center_crop(img, size):
    w, h = img.size
    assert w >= size and h >= size, "padding case not needed by these fixtures"
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def timm_eval_tensor(img, image_size, crop_pct, mean, std):
    scale_size = math.floor(image_size / crop_pct)
    img = tv_center_crop(tv_resize_shorter(img, scale_size), image_size)
    x = np.asarray(img, dtype=np.float32)
    if x.ndim == 2:
        x = x[:, :, None]
    x = x / np.float32(255)                                   # ToTensor
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)  # Normalize
    return x.transpose(2, 0, 1).copy()                        # CHW


def png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def adam7_png(array):
    """An interlaced (Adam7) 8-bit RGB PNG; Pillow cannot write one. Filter type 0 on every row."""
    height, width, _ = array.shape
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = array[y0::dy, x0::dx]
        if sub.size:
            raw += b"".join(b"\x00" + row.tobytes() for row in sub)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 1)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw, 9))
            + png_chunk(b"IEND", b""))


def exif_with_orientation(value, little_endian):
    """A minimal EXIF block: IFD0 with ImageWidth (a distractor) then Orientation."""
    e = "<" if little_endian else ">"
    entries = [struct.pack(e + "HHIHH", 0x0100, 3, 1, 48, 0),   # ImageWidth SHORT 48
               struct.pack(e + "HHIHH", 0x0112, 3, 1, value, 0)]  # Orientation SHORT
    tiff = (b"II" if little_endian else b"MM") + struct.pack(e + "HI", 42, 8)
    tiff += struct.pack(e + "H", len(entries)) + b"".join(entries) + struct.pack(e + "I", 0)
    return b"Exif\x00\x00" + tiff


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    EXPECTED.mkdir(exist_ok=True)
    for old in list(OUT.glob("*.*")) + list(EXPECTED.glob("*.*")):
        old.unlink()

    astronaut = Image.fromarray(skimage.data.astronaut())  # 512x512 RGB
    chelsea = Image.fromarray(skimage.data.chelsea())      # 451x300 RGB
    coffee = Image.fromarray(skimage.data.coffee())        # 600x400 RGB

    rgb = astronaut.crop((180, 40, 276, 120))              # 96x80: face and helmet
    gray = chelsea.crop((150, 80, 246, 160)).convert("L")  # 96x80: cat's face
    small = coffee.crop((200, 150, 248, 190))              # 48x40 for 16-bit files
    orient_base = astronaut.crop((200, 60, 248, 92))       # 48x32, non-square so rotations show

    # ---- Valid inputs and Pillow's decode of each -------------------------------------------
    save(rgb, "rgb.png", "astronaut crop (180,40)-(276,120), 96x80 RGB PNG")
    save(rgb, "rgb_baseline_q90.jpg", "rgb.png as baseline JPEG, quality 90, 4:2:0", quality=90)
    save(rgb, "rgb_progressive.jpg", "rgb.png as progressive JPEG, quality 85", quality=85, progressive=True)
    save(gray, "gray.png", "chelsea crop (150,80)-(246,160) as L, 96x80 gray PNG")
    save(gray, "gray.jpg", "gray.png as grayscale JPEG, quality 90", quality=90)
    save(rgb.convert("L").convert("LA"), "gray_alpha.png", "rgb.png as LA (alpha 255), gray+alpha PNG")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgb.size))
    save(rgba, "rgba.png", "rgb.png with a gradient alpha channel, RGBA PNG")
    palette = rgb.quantize(colors=64)
    palette.info["transparency"] = 3
    save(palette, "palette_trns.png", "rgb.png quantized to 64 colours, palette index 3 transparent (tRNS)",
         transparency=3)
    save(rgb.quantize(colors=16), "palette_4bit.png", "rgb.png quantized to 16 colours, 4-bit palette PNG",
         bits=4)
    save(gray.point(lambda v: 255 if v > 110 else 0).convert("1"), "gray_1bit.png",
         "gray.png thresholded at 110, 1-bit PNG")

    write("interlaced.png", adam7_png(np.asarray(rgb)), "rgb.png pixels as an Adam7-interlaced RGB PNG, "
          "written by hand")

    # 16-bit: the 8-bit photo in the high byte, a varying pattern in the low byte.
    hi = np.asarray(small).astype(np.uint16)
    lo = (np.arange(hi.size, dtype=np.uint16).reshape(hi.shape) * 37) % 256
    rgb16 = (hi << 8) | lo
    raw = rgb16.astype(">u2").tobytes()
    ihdr = struct.pack(">IIBBBBB", small.width, small.height, 16, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + raw[y * small.width * 6:(y + 1) * small.width * 6] for y in range(small.height))
    write("rgb16.png", b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(rows, 9))
          + png_chunk(b"IEND", b""), "coffee crop (200,150)-(248,190), 48x40 16-bit RGB PNG "
          "(sample = photo * 256 + pattern), written by hand")
    gray16 = rgb16[:, :, 1]
    Image.fromarray(gray16.astype(np.uint16)).save(OUT / "gray16.png")
    note("gray16.png", "green channel of rgb16.png, 48x40 16-bit gray PNG (Pillow I;16)")

    for name, mode in [("rgb.png", "RGB"), ("interlaced.png", "RGB"), ("rgb_baseline_q90.jpg", "RGB"), ("rgb_progressive.jpg", "RGB"),
                       ("gray.png", "L"), ("gray.jpg", "L"), ("gray_alpha.png", "L"), ("rgba.png", "RGB"),
                       ("palette_trns.png", "RGB"), ("palette_4bit.png", "RGB"), ("gray_1bit.png", "L"),
                       ("rgb16.png", "RGB")]:
        save_expected(pil_decoded(name, mode), decoded_name(name),
                      f"Pillow: Image.open('{name}').convert('{mode}')")
    # Pillow clips 16-bit gray to 255 in convert('L') (I;16 -> L), which whitens most photos; the
    # Swift decoder keeps the high byte instead, like Pillow does for 16-bit RGB. Expected = >> 8.
    save_expected((gray16 >> 8).astype(np.uint8), decoded_name("gray16.png"),
                  "gray16.png high byte (numpy >> 8); NOT Pillow, whose convert('L') clips I;16 at 255")

    # ---- EXIF orientation: JPEGs 1..8 and one PNG with an eXIf chunk -------------------------
    for value in range(1, 9):
        name = f"orient_{value}.jpg"
        order = "little" if value % 2 == 0 else "big"
        save(orient_base, name, f"astronaut crop (200,60)-(248,92), 48x32, JPEG q90, EXIF Orientation={value} "
             f"({order}-endian TIFF)", quality=90, exif=exif_with_orientation(value, value % 2 == 0))
        save_expected(pil_decoded(name, "RGB"), decoded_name(name),
                      f"Pillow: ImageOps.exif_transpose(Image.open('{name}')).convert('RGB')")
    save(orient_base, "orient_6.png", "orient_base as PNG with an eXIf chunk, Orientation=6",
         exif=exif_with_orientation(6, True))
    save_expected(pil_decoded("orient_6.png", "RGB"), decoded_name("orient_6.png"),
                  "Pillow: ImageOps.exif_transpose(Image.open('orient_6.png')).convert('RGB')")

    save(rgb.convert("CMYK"), "cmyk.jpg", "rgb.png converted to CMYK, JPEG quality 90 (Adobe CMYK)", quality=90)
    save_expected(pil_decoded("cmyk.jpg", "RGB"), decoded_name("cmyk.jpg"),
                  "Pillow: Image.open('cmyk.jpg').convert('RGB') (read as inverted Adobe CMYK)")

    # ---- Inputs that must be refused ---------------------------------------------------------
    jpeg = (OUT / "rgb_baseline_q90.jpg").read_bytes()
    write("truncated.jpg", jpeg[: len(jpeg) // 2], "first half of rgb_baseline_q90.jpg")
    scan = jpeg.index(b"\xff\xda")  # start of scan: corrupt the entropy-coded data after it
    corrupt = bytearray(jpeg)
    for i in range(scan + 200, scan + 260, 3):
        corrupt[i] = 0xFF if corrupt[i] != 0xFF else 0x00
    corrupt[len(corrupt) // 2: len(corrupt) // 2 + 4] = b"\xff\xd0\xff\xd5"  # stray restart markers
    write("corrupt.jpg", bytes(corrupt), "rgb_baseline_q90.jpg with bytes overwritten in the scan data")
    png = (OUT / "rgb.png").read_bytes()
    write("truncated.png", png[: len(png) // 2], "first half of rgb.png")
    idat = png.index(b"IDAT") + 4
    flipped = bytearray(png)
    for i in range(idat + 100, idat + 110):
        flipped[i] ^= 0xFF
    write("corrupt.png", bytes(flipped), "rgb.png with 10 bytes of IDAT data inverted (CRC now wrong)")
    write("empty.bin", b"", "zero bytes")
    write("text.txt", b"This is a text file, not an image.\n", "plain ASCII text")
    huge = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + png_chunk(b"IEND", b""))
    write("huge_header.png", huge, "valid 50000x50000 RGB IHDR (correct CRC) with a tiny IDAT")

    # ---- Resize (Pillow BICUBIC) -------------------------------------------------------------
    save_expected(rgb.resize((37, 31), Image.BICUBIC), "resize_rgb_37x31.png",
                  "Pillow: rgb.png .resize((37, 31), BICUBIC)  [downscale]")
    save_expected(gray.resize((37, 31), Image.BICUBIC), "resize_gray_37x31.png",
                  "Pillow: gray.png .resize((37, 31), BICUBIC)  [downscale]")
    save_expected(rgb.resize((131, 109), Image.BICUBIC), "resize_rgb_131x109.png",
                  "Pillow: rgb.png .resize((131, 109), BICUBIC)  [upscale]")
    digit = chelsea.convert("L").crop((140, 60, 252, 172)).resize((28, 28), Image.LANCZOS)
    save(digit, "gray28.png", "chelsea face as L, 112x112 crop resized to 28x28 (LANCZOS): Fashion-MNIST sized")
    save_expected(digit.resize((32, 32), Image.BICUBIC), "resize_gray28_32x32.png",
                  "Pillow: gray28.png .resize((32, 32), BICUBIC)  [upscale]")

    photo = astronaut.crop((0, 64, 512, 448))  # 512x384: non-square, so the shorter-side rule matters
    save(photo, "photo_512x384.jpg", "astronaut crop (0,64)-(512,448), 512x384, JPEG quality 90", quality=90)
    decoded = Image.open(OUT / "photo_512x384.jpg").convert("RGB")
    save_expected(decoded, decoded_name("photo_512x384.jpg"), "Pillow: Image.open('photo_512x384.jpg').convert('RGB')")
    save_expected(tv_center_crop(tv_resize_shorter(decoded, 256), 224), "photo_resize256_crop224.png",
                  "Pillow decode of photo_512x384.jpg -> Resize(256, BICUBIC) (341x256) -> CenterCrop(224)")

    # ---- Preprocessing tensors (timm eval transform) -----------------------------------------
    imagenet = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    save_f32(timm_eval_tensor(rgb, 64, 0.875, *imagenet), "preprocess_rgb_64.f32",
             "rgb.png, imageSize 64, cropPct 0.875 (resize 73), ImageNet mean/std")
    save_f32(timm_eval_tensor(digit, 32, 1.0, [0.2860], [0.3530]), "preprocess_gray28_32.f32",
             "gray28.png, 1 channel, imageSize 32, cropPct 1.0, mean 0.2860 std 0.3530")
    save_f32(timm_eval_tensor(rgb.convert("L"), 32, 1.0, [0.5], [0.5]), "preprocess_rgb_as_gray_32.f32",
             "rgb.png converted to L by Pillow, 1 channel, imageSize 32, cropPct 1.0, mean 0.5 std 0.5")
    save_expected(rgb.convert("L"), "rgb_to_gray.png", "Pillow: rgb.png .convert('L')")

    write_readme()


def write_readme():
    import PIL
    from PIL import features
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file() and f.name != "README.md")
    lines = [
        "# ImageKit fixtures",
        "",
        "Generated by `tools/reference/make_image_fixtures.py` with Pillow " + PIL.__version__
        + " (libjpeg-turbo " + str(features.version("libjpeg_turbo")) + "), numpy " + np.__version__
        + ", scikit-image " + skimage.__version__ + " sample photos; do not edit by hand. Regenerate with",
        "`.venv-ref/bin/python tools/reference/make_image_fixtures.py`.",
        "",
        "Inputs sit in this directory; `expected/` holds what Pillow makes of them. `expected/X_ext.png` is",
        "Pillow's decode of input `X.ext` (lossless PNG). `.f32` files are raw little-endian float32 in CHW",
        f"order with the shape given below. Total size without this file: {total} bytes.",
        "",
        "| file | how it was made |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | {how} |" for name, how in README_ROWS]
    (OUT / "README.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
