#!/usr/bin/env python3
"""Writes the tiny IDX fixtures (standard library only). Run from this folder."""
import gzip, os, struct

def pixel(i, y, x):
    return (i * 11 + y * 3 + x * 7) % 256

def label(i):
    return (3 * i) % 10

def images(count, start=0):
    body = bytes(pixel(start + i, y, x) for i in range(count) for y in range(28) for x in range(28))
    return struct.pack(">IIII", 0x803, count, 28, 28) + body

def labels(count, start=0):
    return struct.pack(">II", 0x801, count) + bytes(label(start + i) for i in range(count))

def write(path, data, gz):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if gz:
        with open(path + ".gz", "wb") as f:
            with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as g:
                g.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)

write("idx-plain/train-images-idx3-ubyte", images(20), False)
write("idx-plain/train-labels-idx1-ubyte", labels(20), False)
write("idx-gz/train-images-idx3-ubyte", images(20), True)
write("idx-gz/train-labels-idx1-ubyte", labels(20), True)
write("idx-gz/t10k-images-idx3-ubyte", images(6, start=100), True)
write("idx-gz/t10k-labels-idx1-ubyte", labels(6, start=100), True)
