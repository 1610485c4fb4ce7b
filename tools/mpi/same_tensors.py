#!/usr/bin/env python3
"""Compares the tensors of safetensors files bit for bit, ignoring the metadata (wall time etc.).

usage: same_tensors.py A B [C ...]   exit 0 when every file holds the same tensor names, dtypes,
shapes and bytes as A; otherwise prints the first differences and exits 1.
"""
import json
import struct
import sys


def tensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    return {name: (h["dtype"], h["shape"], data[h["data_offsets"][0]:h["data_offsets"][1]]) for name, h in header.items()}


def main(paths):
    if len(paths) < 2:
        sys.exit(__doc__)
    reference = tensors(paths[0])
    ok = True
    for path in paths[1:]:
        other = tensors(path)
        if set(other) != set(reference):
            print(f"{path}: tensor names differ from {paths[0]}: {sorted(set(other) ^ set(reference))[:5]}")
            ok = False
            continue
        differing = [name for name in reference if reference[name] != other[name]]
        for name in differing[:5]:
            a, b = reference[name][2], other[name][2]
            count = sum(1 for i in range(0, len(a), 4) if a[i:i + 4] != b[i:i + 4])
            print(f"{path}: {name} differs in {count} of {len(a) // 4} values")
        if differing:
            print(f"{path}: {len(differing)} of {len(reference)} tensors differ from {paths[0]}")
            ok = False
        else:
            print(f"{path}: all {len(reference)} tensors equal {paths[0]} bit for bit")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main(sys.argv[1:])
