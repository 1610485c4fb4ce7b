"""How well the served out-of-distribution scores separate a model's own data from other images.

Asks a running `bootmae-serve` for embeddings (and the `ood` object each answer carries) of
in-distribution images and of images that are not, then reports, per model:

  (a) the served score: the masked-patch reconstruction error (its percentile among the calibration's
      held-out images; the server warns at >= 99 or <= 1),
  (b) a feature-space score: the distance from the image's L2-normalised embedding to its k-th nearest
      neighbour among a bank of training images' normalised embeddings (deep k-NN, Sun et al., "Out-of-
      distribution detection with deep nearest neighbors", ICML 2022), as a percentile among held-out
      images' distances (warning at >= 99; a small distance is not suspicious, so one tail),

as AUROC (in-distribution negative, other images positive; ties half) and the false-positive and
false-negative rates at the warning threshold. Where the answers carry `ood.feature_space` (a calibration
with a feature bank), its served percentile is reported too ("served feature_space": what users get), and
the served distance is compared with this script's own k = 5 distance over the same first training images. The bank, calibration and evaluation images never overlap:
Fashion-MNIST bank = the first --bank training images, calibration = test images 0..999 (the served
calibration's), evaluation = test images 5000..5999; the photo model's 16 held-out photos are too few to
split, so its percentiles are leave-one-out among them.

    .venv-ref/bin/python tools/analysis/ood_measure.py --url http://127.0.0.1:8099 --out /tmp/ood.json
"""
import argparse, base64, glob, gzip, io, json, os, struct, urllib.request
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FMNIST = "/usr/share/datasets/fashion-mnist"
SKIMAGE = "/work/.venv-ref/lib/python3.11/site-packages/skimage/data"
# scikit-image's photographs (its synthetic drawings and text pages are not photos).
SKIMAGE_PHOTOS = ["astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "clock_motion.png", "coffee.png",
                  "coins.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png", "microaneurysms.png", "moon.png",
                  "motorcycle_left.png", "retina.jpg", "rocket.jpg"]


def idx_images(name):
    with gzip.open(f"{FMNIST}/{name}") as f:
        _, n, h, w = struct.unpack(">IIII", f.read(16))
        return np.frombuffer(f.read(), np.uint8).reshape(n, h, w)


def png(array_or_image):
    image = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(array_or_image)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def file_bytes(path):
    return open(path, "rb").read()


def synthetic():
    """Images nobody would call a photo or a garment: noise, flat fields, rendered text."""
    rng = np.random.default_rng(0)
    out = {}
    for i, size in enumerate([28, 64, 256]):
        out[f"noise-gray-{size}"] = png(rng.integers(0, 256, (size, size), dtype=np.uint8))
        out[f"noise-rgb-{size}"] = png(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    for level in [0, 128, 255]:
        out[f"flat-{level}"] = png(np.full((64, 64), level, np.uint8))
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 40)
    for i, text in enumerate(["Hello", "OOD?", "42", "abc def\nghi jkl"]):
        image = Image.new("L", (200, 200), 255 if i % 2 == 0 else 0)
        ImageDraw.Draw(image).multiline_text((10, 50), text, fill=0 if i % 2 == 0 else 255, font=font)
        out[f"text-{i}"] = png(image)
    return out


def photos(max_wallpapers):
    out = {f"skimage/{n}": file_bytes(f"{SKIMAGE}/{n}") for n in SKIMAGE_PHOTOS if os.path.exists(f"{SKIMAGE}/{n}")}
    walls = sorted(p for p in glob.glob("/usr/share/wallpapers/*/contents/images/*") + glob.glob("/usr/share/backgrounds/**/*", recursive=True)
                   if p.lower().endswith((".jpg", ".jpeg", ".png")) and os.path.getsize(p) < 12_000_000)
    # One file per wallpaper (plasma ships each at several sizes): the first by name of each folder/stem.
    seen, chosen = set(), []
    for p in walls:
        key = p.split("/contents/")[0] if "/contents/" in p else p
        if key not in seen:
            seen.add(key); chosen.append(p)
    step = max(1, len(chosen) // max_wallpapers)
    for p in chosen[::step][:max_wallpapers]:
        out["wall/" + os.path.relpath(p, "/usr/share")] = file_bytes(p)
    faces = np.load(f"{SKIMAGE}/lfw_subset.npy")  # 200 grayscale 25x25 faces in [0, 1]
    for i in range(0, 200, 20):
        out[f"lfw-face-{i}"] = png((faces[i] * 255).round().astype(np.uint8))
    return out


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def embed(url, model, images, batch=32):
    """(embeddings, served masked-patch MSE or nan, served percentile or nan) per image, in order; the served
    feature-space score's (distance, percentile) per image, nan where absent, in `embed.feature`."""
    vectors, mse, pct, feature = [], [], [], []
    chunks, size = [[]], 0
    for b in images:  # at most `batch` images and ~16 MB of base64 per request (the server's body limit is 32 MB)
        if chunks[-1] and (len(chunks[-1]) == batch or size + len(b) * 4 // 3 > 16 << 20):
            chunks.append([]); size = 0
        chunks[-1].append(base64.b64encode(b).decode()); size += len(b) * 4 // 3
    for chunk in chunks:
        answer = post(f"{url}/v1/embeddings", {"model": model, "input": chunk, "encoding_format": "base64"})
        for item in answer["data"]:
            vectors.append(np.frombuffer(base64.b64decode(item["embedding"]), "<f4"))
            ood = item.get("ood") or {}
            mse.append(ood.get("masked_patch_mse", np.nan)); pct.append(ood.get("percentile", np.nan))
            f = ood.get("feature_space") or {}
            feature.append((f.get("distance", np.nan), f.get("percentile", np.nan)))
    embed.feature = np.array(feature)
    return np.stack(vectors), np.array(mse), np.array(pct)


def normalised(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def kth_distance(queries, bank, k, exclude_self=False):
    d = np.sqrt(np.maximum(2 - 2 * normalised(queries) @ normalised(bank).T, 0))
    d.sort(axis=1)
    return d[:, k] if exclude_self else d[:, k - 1]


def percentile(values, calibration):
    c = np.sort(calibration)
    below = np.searchsorted(c, values, "left"); upto = np.searchsorted(c, values, "right")
    return 100 * (below + 0.5 * (upto - below)) / len(c)


def auroc(negatives, positives):
    """P(positive scores above negative), ties half (Mann-Whitney)."""
    n, p = np.asarray(negatives, float), np.asarray(positives, float)
    greater = (p[:, None] > n[None, :]).sum(); ties = (p[:, None] == n[None, :]).sum()
    return (greater + 0.5 * ties) / (len(n) * len(p))


def rates(id_flag, ood_flag):
    return {"fpr": float(np.mean(id_flag)), "fnr": float(1 - np.mean(ood_flag))}


def summarise(name, id_scores, ood_scores, id_flag, ood_flag):
    r = {"auroc": float(auroc(id_scores, ood_scores)), **rates(id_flag, ood_flag)}
    print(f"  {name:42s} AUROC {r['auroc']:.3f}   FPR {100 * r['fpr']:5.1f}%   FNR {100 * r['fnr']:5.1f}%")
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8099")
    ap.add_argument("--bank", type=int, default=1000)
    ap.add_argument("--ks", default="1,5,10,50")
    ap.add_argument("--wallpapers", type=int, default=30)
    ap.add_argument("--photo-data", default="/work/main/runs/photo-data")
    ap.add_argument("--fmnist-models", default="bootmae-vit-tiny-fmnist-cls,bootmae-vit-tiny-fmnist,ibot-vit-tiny-fmnist,peco-vit-tiny-fmnist")
    ap.add_argument("--out")
    a = ap.parse_args()
    ks = [int(k) for k in a.ks.split(",")]
    report = {}

    train, test = idx_images("train-images-idx3-ubyte.gz"), idx_images("t10k-images-idx3-ubyte.gz")
    bank_png = [png(x) for x in train[:a.bank]]
    calib_png = [png(x) for x in test[:1000]]
    eval_png = [png(x) for x in test[5000:6000]]
    others = {**photos(a.wallpapers), **synthetic()}
    other_names = list(others)
    synthetic_names = [n for n in other_names if n.startswith(("noise", "flat", "text"))]
    print(f"Fashion-MNIST: bank {len(bank_png)} train, calibration 1000 test, evaluation 1000 test; other images {len(others)} "
          f"({len(others) - len(synthetic_names)} photos incl. 10 LFW faces, {len(synthetic_names)} synthetic)")

    ev_reference = "bootmae-vit-tiny-fmnist"  # the calibrated model that scores every 28 px model
    for model in a.fmnist_models.split(","):
        bank, _, _ = embed(a.url, model, bank_png)
        calib, _, _ = embed(a.url, model, calib_png)
        ev, ev_mse, ev_pct = embed(a.url, model, eval_png)
        ev_feature = embed.feature
        ot, ot_mse, ot_pct = embed(a.url, model, list(others.values()))
        ot_feature = embed.feature
        print(f"{model}:")
        m = {}
        if not np.isnan(ev_feature).all():
            # The server's own feature score (its reference model's bank, k and calibration), as a user gets it.
            m["served_feature"] = summarise("(b) served feature_space, warning >=99", ev_feature[:, 0], ot_feature[:, 0],
                                            ev_feature[:, 1] >= 99, ot_feature[:, 1] >= 99)
            m["served_feature"]["percentiles_others"] = {n: float(p) for n, p in zip(other_names, ot_feature[:, 1])}
            m["served_feature"]["fnr_photos_only"] = float(np.mean([p < 99 for n, p in zip(other_names, ot_feature[:, 1]) if n not in synthetic_names]))
            m["served_feature"]["fnr_synthetic_only"] = float(np.mean([p < 99 for n, p in zip(other_names, ot_feature[:, 1]) if n in synthetic_names]))
        warn = lambda p: (p >= 99) | (p <= 1)
        if not np.isnan(ev_pct).all():
            m["served_error_one_sided"] = summarise("(a) served error (higher = OOD)", ev_mse, ot_mse, ev_pct >= 99, ot_pct >= 99)
            m["served_error_two_sided"] = summarise("(a) served percentile, warning >=99 or <=1", np.abs(ev_pct - 50), np.abs(ot_pct - 50),
                                                    warn(ev_pct), warn(ot_pct))
            m["served_percentiles_others"] = {n: float(p) for n, p in zip(other_names, ot_pct)}
        for k in ks:
            dc, de, do = (kth_distance(x, bank, k) for x in (calib, ev, ot))
            pe, po = percentile(de, dc), percentile(do, dc)
            if k == 5 and not np.isnan(ev_feature).all() and model == ev_reference:
                # The same bank images (the first training images), embedded by the server: the served distance
                # must be this one up to the bank's fp16 rounding.
                print(f"  served distance vs this script's k=5 distance: max |difference| "
                      f"{np.nanmax(np.abs(np.concatenate([ev_feature[:, 0] - de, ot_feature[:, 0] - do]))):.2e}")
            m[f"knn_k{k}"] = summarise(f"(b) k-NN distance k={k}, warning >=99", de, do, pe >= 99, po >= 99)
            m[f"knn_k{k}"]["percentiles_others"] = {n: float(p) for n, p in zip(other_names, po)}
            if not np.isnan(ev_pct).all():
                # Either score's warning: the k-NN tail, or the reconstruction's two tails as served today.
                m[f"knn_k{k}_or_served"] = summarise(f"(a) or (b) k={k}", de, do, (pe >= 99) | warn(ev_pct), (po >= 99) | warn(ot_pct))
                m[f"knn_k{k}_or_served_plain"] = summarise(f"(b) k={k} or (a) <=1 (plain)", de, do, (pe >= 99) | (ev_pct <= 1), (po >= 99) | (ot_pct <= 1))
            m[f"knn_k{k}"]["fnr_photos_only"] = float(np.mean([p < 99 for n, p in zip(other_names, po) if n not in synthetic_names]))
        report[model] = m

    # The photograph model: its own 16 held-out photos against Fashion-MNIST and noise.
    photo_model = "bootmae-vit-photo-64"
    train_photos = sorted(glob.glob(f"{a.photo_data}/train/*/*")); test_photos = sorted(glob.glob(f"{a.photo_data}/test/*/*"))
    fm_others = {f"fmnist-test-{i}": png(test[i]) for i in range(9000, 9100)}
    rng = np.random.default_rng(1)
    for i in range(10):
        fm_others[f"noise-rgb-{i}"] = png(rng.integers(0, 256, (64 + 32 * i, 64 + 32 * i, 3), dtype=np.uint8))
    for i, text in enumerate(["Hello", "42"]):
        image = Image.new("RGB", (200, 200), "white")
        ImageDraw.Draw(image).text((10, 60), text, fill="black", font=ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 60))
        fm_others[f"text-rgb-{i}"] = png(image)
    fm_others["flat-rgb-128"] = png(np.full((64, 64, 3), 128, np.uint8))
    bank, _, _ = embed(a.url, photo_model, [file_bytes(p) for p in train_photos], batch=8)
    ev, ev_mse, ev_pct = embed(a.url, photo_model, [file_bytes(p) for p in test_photos], batch=8)
    ot, ot_mse, ot_pct = embed(a.url, photo_model, list(fm_others.values()))
    tr_mse = embed(a.url, photo_model, [file_bytes(p) for p in train_photos], batch=8)[1]
    print(f"{photo_model}: bank {len(train_photos)} train photos, {len(test_photos)} held-out photos (leave-one-out), "
          f"{len(fm_others)} others (100 Fashion-MNIST, 10 noise, 2 text, 1 flat)")
    m = {}
    warn = lambda p: (p >= 99) | (p <= 1)
    m["served_error_one_sided"] = summarise("(a) served error (higher = OOD)", ev_mse, ot_mse, ev_pct >= 99, ot_pct >= 99)
    # Leave-one-out percentile of each held-out photo among the other 15 (its served percentile includes itself).
    loo = np.array([percentile(ev_mse[i:i + 1], np.delete(ev_mse, i))[0] for i in range(len(ev_mse))])
    m["served_two_sided_loo"] = summarise("(a) served percentile (LOO), >=99 or <=1", np.abs(loo - 50), np.abs(ot_pct - 50), warn(loo), warn(ot_pct))
    m["served_train_photos_flagged"] = float(np.mean(warn(percentile(tr_mse, ev_mse))))
    print(f"  (a) training photos flagged by the served score: {100 * m['served_train_photos_flagged']:.1f}% of {len(tr_mse)}")
    for k in [k for k in ks if k < len(train_photos)]:
        de, do = kth_distance(ev, bank, k), kth_distance(ot, bank, k)
        loo = np.array([percentile(de[i:i + 1], np.delete(de, i))[0] for i in range(len(de))])
        m[f"knn_k{k}"] = summarise(f"(b) k-NN distance k={k} (LOO), >=99", de, do, loo >= 99, percentile(do, de) >= 99)
    report[photo_model] = m
    if a.out:
        json.dump(report, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
