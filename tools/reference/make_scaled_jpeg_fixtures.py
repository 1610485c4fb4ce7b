"""Pillow's DCT-scaled JPEG decodes (Image.draft), the reference for ImageDecoder's `minimumSide`.

Writes Tests/Fixtures/images/expected/photo_512x384_jpg_draft4.png and _draft8.png: photo_512x384.jpg
decoded at 1/4 and 1/8 of its size by libjpeg's DCT scaling, as Pillow's draft mode asks for it.
Run: .venv-ref/bin/python tools/reference/make_scaled_jpeg_fixtures.py
"""
from pathlib import Path

from PIL import Image

IMAGES = Path(__file__).resolve().parents[2] / "Tests" / "Fixtures" / "images"


def main() -> None:
    source = IMAGES / "photo_512x384.jpg"
    for denominator in (4, 8):
        with Image.open(source) as image:
            width, height = image.size
            # draft picks the largest reduction whose result is still at least the requested size.
            image.draft("RGB", (width // denominator, height // denominator))
            decoded = image.convert("RGB")
            assert decoded.size == (width // denominator, height // denominator), decoded.size
            out = IMAGES / "expected" / f"photo_512x384_jpg_draft{denominator}.png"
            decoded.save(out)
            print(out.name, decoded.size, out.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
