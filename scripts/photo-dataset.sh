#!/usr/bin/env bash
# Assembles an ImageFolder of photographs and wallpapers that a fresh Debian 12 machine can install,
# for pretraining a model on colour photographs (docs/PHOTO_DATA.md lists every source and licence):
#   scripts/photo-dataset.sh OUT [TEST_PERCENT]        (MAX_SIDE=192 by default; MAX_SIDE=0 keeps full size)
# OUT/train/<source>/<image> and OUT/test/<source>/<image>, where <source> is the package the image
# came from (plasma, mate, ukui, opencv, skimage; not classes, only an ImageFolder's layout), and
# OUT/SOURCES.tsv with every image's split, source, package version, licence and sha256.
# Images are PNG or JPEG. Wallpapers are up to 4K: decoding one costs far more than a training step of a
# 64-px model, so each image's shorter side is brought down to MAX_SIDE pixels (Pillow, bicubic with
# antialiasing, from Debian's python3-pil; SOURCES.tsv keeps the original's sha256). The split is deterministic:
# an image is held out when the first 8 hex digits of its sha256 are below TEST_PERCENT % (default 15)
# of the range, so it does not depend on file order and stays put when sources are added.
# Needs apt (Debian packages) and pip (scikit-image's wheel, downloaded, never installed); nothing else
# is fetched. Running it again rebuilds OUT from scratch.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n 2,13p "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
OUT="$(realpath -m "$1")"
TEST_PERCENT="${2:-15}"
PACKAGES=(plasma-workspace-wallpapers mate-backgrounds ukui-wallpapers opencv-doc python3-pil)
MAX_SIDE="${MAX_SIDE:-192}"
SKIMAGE_VERSION="${SKIMAGE_VERSION:-0.26.0}"

source scripts/lib/apt.sh
apt_install photo-dataset "${PACKAGES[@]}"

CACHE="$(mktemp -d)"
trap 'rm -rf "$CACHE"' EXIT
echo "photo-dataset: scikit-image $SKIMAGE_VERSION wheel (for its data folder)" >&2
python3 -m pip download -q --no-deps --only-binary=:all: --dest "$CACHE" "scikit-image==$SKIMAGE_VERSION"
python3 -m zipfile -e "$CACHE"/scikit_image-*.whl "$CACHE/wheel"

python3 - "$OUT" "$TEST_PERCENT" "$CACHE/wheel/skimage/data" "$SKIMAGE_VERSION" "${PACKAGES[@]:0:4}" <<'PY'
import fnmatch, hashlib, os, re, shutil, subprocess, sys

out, test_percent, skimage_dir, skimage_version, packages = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
IMAGE = re.compile(r"\.(jpe?g|png)$", re.I)

# scikit-image's wheel: only the photographs whose docstrings (skimage/data/_fetchers.py) state CC0,
# public domain or no known copyright restrictions.
SKIMAGE = {
    "astronaut.png": "public domain (NASA)", "brick.png": "CC0 (CC0Textures)", "camera.png": "CC0 (Lav Varshney)",
    "chelsea.png": "CC0 (Stefan van der Walt)", "coffee.png": "CC0 (Rachel Michetti)", "coins.png": "no known copyright restrictions",
    "grass.png": "CC0 (CC0Textures)", "gravel.png": "CC0 (CC0Textures)", "hubble_deep_field.jpg": "public domain (NASA)",
    "ihc.png": "no known copyright restrictions (CMMI)", "retina.jpg": "CC0 1.0", "rocket.jpg": "public domain (SpaceX)",
    "clock_motion.png": "public domain (Stefan van der Walt)", "microaneurysms.png": "CC0 (Andreas Maier)", "cell.png": "CC0",
}
# opencv-doc's sample data: photographs and photo-like renders only (no charts, text, logos, calibration boards).
OPENCV = {"HappyFish.jpg", "aero1.jpg", "aero3.jpg", "aloeL.jpg", "aloeR.jpg", "apple.jpg", "baboon.jpg", "basketball1.png",
          "basketball2.png", "board.jpg", "box.png", "box_in_scene.png", "building.jpg", "butterfly.jpg", "cards.png",
          "chicky_512.png", "ela_original.jpg", "fruits.jpg", "graf1.png", "graf3.png", "home.jpg", "leuvenA.jpg", "leuvenB.jpg",
          "licenseplate_motion.jpg", "messi5.jpg", "orange.jpg", "rubberwhale1.png", "rubberwhale2.png", "smarties.png",
          "squirrel_cls.jpg", "starry_night.jpg", "stuff.jpg", "Blender_Suzanne1.jpg", "Blender_Suzanne2.jpg"}
SHORT = {"plasma-workspace-wallpapers": "plasma", "mate-backgrounds": "mate", "ukui-wallpapers": "ukui", "opencv-doc": "opencv"}

def dep5(package):
    """(patterns, licence) stanzas of a machine-readable debian/copyright, in file order."""
    stanzas, files, licence = [], None, None
    text = open(f"/usr/share/doc/{package}/copyright", encoding="utf-8", errors="replace").read()
    for block in re.split(r"\n\s*\n", text):
        m = re.search(r"^Files:(.*?)(?=^\S|\Z)", block, re.S | re.M)
        l = re.search(r"^License:\s*(.+)$", block, re.M)
        if m and l:
            stanzas.append((m.group(1).split(), l.group(1).strip()))
    return stanzas

def licence_of(package, path, stanzas, exact=False):
    # The last stanza matching wins; patterns are relative to the source tree, so for an installed path
    # any tail of it may match (exact: `path` is already the source path).
    parts = path.strip("/").split("/")
    tails = [path] if exact else ["/".join(parts[i:]) for i in range(len(parts))]
    found = None
    for patterns, licence in stanzas:
        if any(fnmatch.fnmatchcase(t, p) for p in patterns for t in tails):
            found = licence
    return found or "see /usr/share/doc/%s/copyright" % package

def version(package):
    return subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=True).stdout

items = []   # (source, name, path, package, version, licence)
for package in packages:
    files = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True).stdout.split()
    files = [f for f in files if IMAGE.search(f) and os.path.isfile(f)]
    stanzas, v, source = dep5(package), version(package), SHORT[package]
    if package == "plasma-workspace-wallpapers":
        # One picture per wallpaper: the largest file of its contents/images/ (the others are resolutions of it).
        best = {}
        for f in files:
            m = re.match(r"/usr/share/wallpapers/([^/]+)/contents/images/", f)
            if m and (m.group(1) not in best or os.path.getsize(f) > os.path.getsize(best[m.group(1)])):
                best[m.group(1)] = f
        chosen = [(k + os.path.splitext(f)[1].lower(), f) for k, f in sorted(best.items())]
    elif package == "opencv-doc":
        chosen = sorted((os.path.basename(f), f) for f in files if "/examples/data/" in f and os.path.basename(f) in OPENCV)
    else:
        # Wallpapers shipped at several sizes (Name_3840x2160.jpg): keep the largest file of each name.
        best = {}
        for f in files:
            key = re.sub(r"_\d+x\d+(?=\.\w+$)", "", os.path.relpath(f, "/usr/share/backgrounds")).replace("/", "-")
            if key not in best or os.path.getsize(f) > os.path.getsize(best[key]):
                best[key] = f
        chosen = sorted(best.items())
    # opencv-doc installs the source tree's samples/ as examples/: match its patterns on the source path
    # (its top-level data/* stanza is the cascades folder, not these images).
    where = (lambda f: "samples/" + f.split("/examples/", 1)[1]) if package == "opencv-doc" else (lambda f: f)
    exact = package == "opencv-doc"
    items += [(source, name, f, package, v, licence_of(package, where(f), stanzas, exact)) for name, f in chosen]
for name, licence in sorted(SKIMAGE.items()):
    path = os.path.join(skimage_dir, name)
    if os.path.isfile(path):
        items.append(("skimage", name, path, "scikit-image (PyPI wheel)", skimage_version, licence))

if os.path.isdir(out):
    shutil.rmtree(out)
seen, rows, counts = set(), [], {}
for source, name, path, package, v, licence in items:
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    if digest in seen:
        continue
    seen.add(digest)
    split = "test" if int(digest[:8], 16) < test_percent / 100 * 16 ** 8 else "train"
    dest = os.path.join(out, split, source, re.sub(r"[^A-Za-z0-9._-]", "_", name))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.copyfile(path, dest)
    rows.append((split, os.path.relpath(dest, out), source, package, v, licence, digest, path))
    counts[(split, source)] = counts.get((split, source), 0) + 1
with open(os.path.join(out, "SOURCES.tsv"), "w") as f:
    f.write("split\tfile\tsource\tpackage\tversion\tlicence\tsha256\tfrom\n")
    for row in sorted(rows):
        f.write("\t".join(row) + "\n")
for source in sorted({s for _, s in counts}):
    print(f"photo-dataset: {source:8s} train {counts.get(('train', source), 0):4d}  test {counts.get(('test', source), 0):3d}", file=sys.stderr)
print(f"photo-dataset: {len(rows)} images in {out} (train/ and test/; SOURCES.tsv lists each with its licence)", file=sys.stderr)
PY

if [ "$MAX_SIDE" -gt 0 ]; then
  /usr/bin/python3 - "$OUT" "$MAX_SIDE" <<'PY'
import os, sys
from PIL import Image
out, side = sys.argv[1], int(sys.argv[2])
shrunk = 0
for root, _, files in os.walk(out):
    for name in files:
        path = os.path.join(root, name)
        if not name.lower().endswith((".png", ".jpg", ".jpeg")):
            continue
        with Image.open(path) as im:
            w, h = im.size
            if min(w, h) <= side:
                continue
            scale = side / min(w, h)
            small = im.convert("RGB").resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)
        small.save(path, quality=95) if name.lower().endswith((".jpg", ".jpeg")) else small.save(path)
        shrunk += 1
print(f"photo-dataset: {shrunk} images brought down to a shorter side of {side} px", file=sys.stderr)
PY
fi
