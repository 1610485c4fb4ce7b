#!/usr/bin/env python3
"""Bounded client load for scripts/replicas-check.sh (standard library only).

Sends a fixed number of requests through one base URL (nginx in front of the replicas) from a fixed
number of keep-alive connections, cycling over four kinds: JSON base64 embeddings, raw-PNG
embeddings, top-3 classifications and PNG reconstructions (seed 1), each with every given image.
Every answer must be 200; the first answer of each (kind, image) is the reference that every later
one must match (embeddings and scores within 1e-4, the same labels, the same PNG), so a replica that
answered differently from another one fails the run too. Stops taking new requests at --deadline.

Prints one JSON summary line and exits 0 only if all requests were sent and all answered 200 alike.
"""
import argparse
import base64
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

TOLERANCE = 1e-4


def kinds(images):
    """(name, method path, headers, body) for every kind and image."""
    out = []
    for path in images:
        raw = open(path, "rb").read()
        b64 = base64.b64encode(raw).decode()
        png = {"Content-Type": "image/png"}
        out += [
            (f"embeddings-json {path}", "/v1/embeddings", {"Content-Type": "application/json"},
             json.dumps({"input": b64}).encode()),
            (f"embeddings-png {path}", "/v1/embeddings", png, raw),
            (f"classifications {path}", "/v1/classifications?top_k=3", png, raw),
            (f"reconstructions {path}", "/v1/reconstructions?mask_ratio=0.75&seed=1", png, raw),
        ]
    return out


def same(kind, reference, body):
    """Whether two 200 answers of one request kind agree."""
    if kind.startswith("reconstructions"):
        return reference == body
    a, b = json.loads(reference), json.loads(body)
    if kind.startswith("embeddings"):
        ea, eb = a["data"][0]["embedding"], b["data"][0]["embedding"]
        return len(ea) == len(eb) and max(abs(x - y) for x, y in zip(ea, eb)) <= TOLERANCE
    la, lb = a["data"][0]["labels"], b["data"][0]["labels"]
    return [x["label"] for x in la] == [x["label"] for x in lb] and \
        all(abs(x["score"] - y["score"]) <= TOLERANCE for x, y in zip(la, lb))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--deadline", type=float, default=60, help="seconds; no new request after it")
    ap.add_argument("--timeout", type=float, default=30, help="seconds per request")
    ap.add_argument("--progress", help="file that gets the number of finished requests, rewritten as they finish")
    ap.add_argument("images", nargs="+")
    args = ap.parse_args()

    url = urllib.parse.urlsplit(args.url)
    work = kinds(args.images)
    lock = threading.Lock()
    state = {"next": 0, "done": 0, "ok": 0, "status": {}, "failures": [], "mismatches": 0, "references": {}}
    start = time.monotonic()

    def take():
        with lock:
            if state["next"] >= args.requests or time.monotonic() - start > args.deadline:
                return None
            i = state["next"]
            state["next"] += 1
            return i

    def record(i, kind, status, body, error=None):
        with lock:
            state["done"] += 1
            key = str(status) if error is None else "exception"
            state["status"][key] = state["status"].get(key, 0) + 1
            if error is not None or status != 200:
                detail = error or body[:200].decode(errors="replace")
                state["failures"].append(f"#{i} {kind}: {key} {detail}")
            else:
                reference = state["references"].setdefault(kind, body)
                if same(kind, reference, body):
                    state["ok"] += 1
                else:
                    state["mismatches"] += 1
                    state["failures"].append(f"#{i} {kind}: answer differs from the first one")
            if args.progress:
                with open(args.progress + ".tmp", "w") as f:  # then renamed: never read half-written
                    f.write(str(state["done"]))
                os.replace(args.progress + ".tmp", args.progress)

    def worker():
        conn = None
        while (i := take()) is not None:
            kind, path, headers, body = work[i % len(work)]
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=args.timeout)
                conn.request("POST", path, body=body, headers=dict(headers, **{"X-Request-Id": f"load-{i}"}))
                response = conn.getresponse()
                data = response.read()
                record(i, kind, response.status, data)
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as e:  # a refused or reset connection to nginx is a failed request
                record(i, kind, None, b"", error=f"{type(e).__name__}: {e}")
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.deadline + args.timeout + 5)
    elapsed = time.monotonic() - start
    with lock:
        complete = state["done"] == args.requests
        summary = {
            "requests": args.requests, "done": state["done"], "ok": state["ok"], "by_status": state["status"],
            "mismatches": state["mismatches"], "seconds": round(elapsed, 2),
            "requests_per_second": round(state["done"] / elapsed, 1) if elapsed > 0 else None,
            "failures": state["failures"][:10],
        }
        if not complete:
            summary["failures"].append(f"only {state['done']} of {args.requests} requests finished before the deadline")
    print(json.dumps(summary))
    return 0 if complete and state["ok"] == args.requests else 1


if __name__ == "__main__":
    sys.exit(main())
