"""What the figures drawn from a running bootmae-serve share: the committed test images, one POST, saving.

Imported by reconstruction_figure.py and tokenizer_figure.py (run as scripts, so this folder is on sys.path).
"""
import pathlib
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "Tests/Fixtures/fmnist"


def test_images():
    """The committed Fashion-MNIST test images, in file order, each as (PNG bytes, "garment (test #N)")."""
    images = []
    for path in sorted(FIXTURES.glob("test*.png")):
        garment = path.stem.split("-", 1)[1].replace("-", " ")  # test00019-t-shirt-top -> t shirt top
        images.append((path.read_bytes(), f"{garment} (test #{int(path.stem[4:9])})"))
    return images


def post_image(url, route, query, image_bytes, accept="image/png"):
    """POSTs one PNG to `url` + `route` + "?" + `query`; returns the response's body and headers.
    An error answer ends the script with the server's status and message (its JSON error body)."""
    request = urllib.request.Request(f"{url}{route}?{query}", data=image_bytes,
                                     headers={"Content-Type": "image/png", "Accept": accept})
    try:
        with urllib.request.urlopen(request) as response:
            return response.read(), response.headers
    except urllib.error.HTTPError as error:
        raise SystemExit(f"{route}?{query}: HTTP {error.code}: {error.read().decode(errors='replace')}")


def save(figure, out):
    """Writes `figure` to `out` (folders made as needed) and prints where."""
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.save(out, optimize=True)
    print(out)
