#!/usr/bin/env python3
"""A small IDX dataset for smoke runs: the first N images and labels of each split of an IDX folder
(plain or gzipped files), written uncompressed with the same file names, so `bootmae-train --data OUT`
reads it like the full Fashion-MNIST folder.

    python3 tools/idx_subset.py --out /tmp/fmnist-512     # 512 train + 512 test images of Fashion-MNIST
"""
import argparse
import gzip
import os
import struct
import sys

IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801
SPLITS = ("train", "t10k")


def read(path):
    """The bytes of `path`, or of `path`.gz when only the gzipped file exists."""
    if os.path.exists(path):
        with open(path, "rb") as f:
            return f.read()
    with gzip.open(path + ".gz") as f:
        return f.read()


def first(data, magic, count, path):
    """The header and first `count` items of an IDX file of unsigned bytes, with the header's count rewritten."""
    dims = data[3]
    got_magic = struct.unpack(">I", data[:4])[0]
    if got_magic != magic:
        sys.exit(f"{path}: magic {got_magic:#010x}, expected {magic:#010x}")
    shape = struct.unpack(f">{dims}I", data[4:4 + 4 * dims])
    if count > shape[0]:
        sys.exit(f"{path}: holds {shape[0]} items, fewer than {count}")
    item = 1
    for d in shape[1:]:
        item *= d
    start = 4 + 4 * dims
    return struct.pack(f">I{dims}I", magic, count, *shape[1:]) + data[start:start + count * item]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist", help="IDX folder to copy from")
    parser.add_argument("--count", type=int, default=512, help="images per split (default 512)")
    parser.add_argument("--out", required=True, help="folder to write (created)")
    args = parser.parse_args()
    if args.count < 1:
        sys.exit("--count must be positive")
    os.makedirs(args.out, exist_ok=True)
    for split in SPLITS:
        for kind, magic in (("images-idx3", IMAGES_MAGIC), ("labels-idx1", LABELS_MAGIC)):
            name = f"{split}-{kind}-ubyte"
            subset = first(read(os.path.join(args.data, name)), magic, args.count, os.path.join(args.data, name))
            with open(os.path.join(args.out, name), "wb") as f:
                f.write(subset)
    print(f"{args.out}: the first {args.count} images of {', '.join(SPLITS)} from {args.data}")


if __name__ == "__main__":
    main()
