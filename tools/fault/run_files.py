#!/usr/bin/env python3
"""Checks of run folders for scripts/fault-check.sh (Python standard library only).

  run_files.py readable RUN        every file a reader opens parses (JSON files, each metrics line,
                                   the checkpoint's safetensors header and extent); exit 1 naming the file
  run_files.py same A B            two safetensors files hold the same tensors, bit for bit (names,
                                   dtypes, shapes, bytes; metadata such as train_seconds is ignored)
  run_files.py meta FILE KEY       prints one metadata value of a safetensors file
  run_files.py same-steps A B      two run folders' metrics.jsonl log the same steps, each once, with the
                                   same losses (timings such as img_per_s and elapsed_s may differ)
"""
import json
import os
import struct
import sys


def header(path):
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError("shorter than the 8-byte header length")
        (length,) = struct.unpack("<Q", raw)
        size = os.path.getsize(path)
        if length > size - 8:
            raise ValueError(f"header of {length} bytes in a file of {size}")
        head = json.loads(f.read(length))
    end = 0
    for name, entry in head.items():
        if name == "__metadata__":
            continue
        begin, stop = entry["data_offsets"]
        if not 0 <= begin <= stop:
            raise ValueError(f"tensor {name}: offsets {begin}..{stop}")
        end = max(end, stop)
    if 8 + length + end != size:
        raise ValueError(f"tensors end at byte {8 + length + end} but the file has {size}")
    return head, 8 + length


def tensors(path):
    head, base = header(path)
    out = {}
    with open(path, "rb") as f:
        for name, entry in head.items():
            if name == "__metadata__":
                continue
            begin, stop = entry["data_offsets"]
            f.seek(base + begin)
            out[name] = (entry["dtype"], tuple(entry["shape"]), f.read(stop - begin))
    return out


def readable(run):
    problems = []
    for name in sorted(os.listdir(run)):
        path = os.path.join(run, name)
        try:
            if name.endswith(".json"):
                with open(path) as f:
                    json.load(f)
            elif name == "metrics.jsonl":
                with open(path) as f:
                    for number, line in enumerate(f, 1):
                        if line.strip():
                            try:
                                json.loads(line)
                            except ValueError as e:
                                raise ValueError(f"line {number}: {e}")
            elif name.endswith(".safetensors"):
                header(path)
        except (OSError, ValueError, KeyError) as e:
            problems.append(f"{path}: {e}")
    for p in problems:
        print(f"unreadable: {p}", file=sys.stderr)
    return 1 if problems else 0


def same(a, b):
    ta, tb = tensors(a), tensors(b)
    differ = []
    for name in sorted(set(ta) | set(tb)):
        if name not in ta or name not in tb:
            differ.append(f"{name}: only in {'the first' if name in ta else 'the second'}")
        elif ta[name] != tb[name]:
            (da, sa, xa), (db, sb, xb) = ta[name], tb[name]
            if (da, sa) != (db, sb):
                differ.append(f"{name}: {da}{list(sa)} vs {db}{list(sb)}")
            else:
                first = next(i for i in range(len(xa)) if xa[i] != xb[i])
                differ.append(f"{name}: bytes differ from byte {first}")
    for d in differ:
        print(f"differs: {d}", file=sys.stderr)
    print(f"{len(ta)} tensors compared, {len(differ)} differ")
    return 1 if differ else 0


TIMINGS = {"img_per_s", "data_share", "elapsed_s"}


def same_steps(a, b):
    def lines(run):
        with open(os.path.join(run, "metrics.jsonl")) as f:
            return [{k: v for k, v in json.loads(line).items() if k not in TIMINGS} for line in f if line.strip()]
    la, lb = lines(a), lines(b)
    if la == lb:
        print(f"{len(la)} metrics lines, the same steps and values")
        return 0
    print(f"metrics differ: steps {[m.get('step') for m in la]} vs {[m.get('step') for m in lb]}", file=sys.stderr)
    for x, y in zip(la, lb):
        if x != y:
            print(f"first difference: {x} vs {y}", file=sys.stderr)
            break
    return 1


def main(argv):
    if len(argv) == 3 and argv[1] == "readable":
        return readable(argv[2])
    if len(argv) == 4 and argv[1] == "same":
        return same(argv[2], argv[3])
    if len(argv) == 4 and argv[1] == "same-steps":
        return same_steps(argv[2], argv[3])
    if len(argv) == 4 and argv[1] == "meta":
        head, _ = header(argv[2])
        print(head.get("__metadata__", {}).get(argv[3], ""))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
