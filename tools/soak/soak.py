#!/usr/bin/env python3
"""Drives a running bootmae-serve at saturation for a while (scripts/soak.sh; Python standard library only).

  soak.py --port P --pid PID --seconds S [--workers N] [--slow N]

Workers send a mix of valid requests (embeddings as JSON and as a raw body, classifications,
reconstructions as JSON) and invalid ones (bad base64, an unknown option, a wrong content type, an
unknown route), each with the status it must get; slow clients trickle a valid request over about a
second. A sampler reads the server's RSS and open descriptors every second. At the end it prints one
JSON summary and exits 1 when a status was unexpected, when RSS grew more than 5% after warm-up
(the first quarter of the run, at least 15 s of it), or when the server holds more descriptors than after warm-up.
"""
import argparse
import base64
import http.client
import json
import os
import random
import socket
import sys
import threading
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
PNG = open(os.path.join(ROOT, "Tests/Fixtures/images/rgb.png"), "rb").read()
JPEG = open(os.path.join(ROOT, "Tests/Fixtures/images/photo_512x384.jpg"), "rb").read()
B64 = base64.b64encode(PNG).decode()


def case(name, method, path, body=None, content_type=None, expect=(200,), headers=None):
    return dict(name=name, method=method, path=path, body=body, content_type=content_type, expect=expect, headers=headers or {})


# 429 (queue full, with Retry-After) is a correct answer at saturation for anything that reaches inference.
BUSY = (200, 429)
CASES = [
    (4, case("embed-json", "POST", "/v1/embeddings", json.dumps({"input": [B64, B64], "model": "encoder"}).encode(), "application/json", BUSY)),
    (3, case("embed-raw", "POST", "/v1/embeddings?model=classifier&pooling=mean", JPEG, "image/jpeg", BUSY)),
    (3, case("classify", "POST", "/v1/classifications?top_k=2", PNG, "image/png", BUSY)),
    (2, case("reconstruct", "POST", "/v1/reconstructions", json.dumps({"input": B64, "model": "bootmae", "seed": 3}).encode(),
             "application/json", BUSY, {"Accept": "application/json"})),
    (1, case("bad-base64", "POST", "/v1/embeddings", b'{"input": "!!not base64"}', "application/json", (400,))),
    (1, case("unknown-option", "POST", "/v1/embeddings?poolng=mean", PNG, "image/png", (400,))),
    (1, case("wrong-type", "POST", "/v1/embeddings", b"a,b", "text/csv", (415,))),
    (1, case("no-route", "GET", "/v2/nothing", expect=(404,))),
    (1, case("models", "GET", "/v1/models", expect=(200,))),
]
WEIGHTED = [c for weight, c in CASES for _ in range(weight)]


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.statuses = {}
        self.unexpected = []
        self.latency = {}

    def record(self, name, status, seconds, ok):
        with self.lock:
            self.statuses.setdefault(name, {}).setdefault(str(status), 0)
            self.statuses[name][str(status)] += 1
            if status == 200:
                self.latency.setdefault(name, []).append(seconds)
            if not ok and len(self.unexpected) < 20:
                self.unexpected.append(f"{name}: {status}")
            elif not ok:
                self.unexpected.append(None)


def worker(port, stop, tally, rng):
    conn = None
    while not stop.is_set():
        c = rng.choice(WEIGHTED)
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            headers = dict(c["headers"])
            if c["content_type"]:
                headers["Content-Type"] = c["content_type"]
            start = time.monotonic()
            conn.request(c["method"], c["path"], body=c["body"], headers=headers)
            response = conn.getresponse()
            response.read()
            seconds = time.monotonic() - start
            ok = response.status in c["expect"] and (response.status != 429 or response.getheader("Retry-After"))
            tally.record(c["name"], response.status, seconds, ok)
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as e:
            tally.record(c["name"], f"error {type(e).__name__}", 0, False)
            conn = None


def slow_client(port, stop, tally, rng):
    """A valid raw-body classification sent in small pieces over about a second, on its own connection."""
    while not stop.is_set():
        request = (b"POST /v1/classifications HTTP/1.1\r\nHost: soak\r\nContent-Type: image/png\r\n"
                   + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(PNG) + PNG)
        pieces = [request[i:i + 1024] for i in range(0, len(request), 1024)]
        start = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
                for piece in pieces:
                    s.sendall(piece)
                    time.sleep(1.0 / len(pieces))
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else "no answer"
            tally.record("slow-client", status, time.monotonic() - start, status in BUSY)
        except OSError as e:
            tally.record("slow-client", f"error {type(e).__name__}", 0, False)


def sample(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--slow", type=int, default=2)
    args = parser.parse_args()

    tally, stop = Tally(), threading.Event()
    threads = [threading.Thread(target=worker, args=(args.port, stop, tally, random.Random(i)), daemon=True) for i in range(args.workers)]
    threads += [threading.Thread(target=slow_client, args=(args.port, stop, tally, random.Random(100 + i)), daemon=True) for i in range(args.slow)]
    for t in threads:
        t.start()
    samples, started = [], time.monotonic()
    while time.monotonic() - started < args.seconds:
        time.sleep(1)
        samples.append((time.monotonic() - started, *sample(args.pid)))
    stop.set()
    for t in threads:
        t.join(timeout=70)
    time.sleep(1.5)  # closing connections linger briefly
    end_rss, end_fds = sample(args.pid)

    warmup = max(args.seconds / 4, min(15, args.seconds / 2))  # malloc's arena fills for about 10-15 s
    warm = [s for s in samples if s[0] >= warmup]
    warm_rss, warm_fds = (warm[0][1], warm[0][2]) if warm else (samples[0][1], samples[0][2])
    peak_rss = max(s[1] for s in warm) if warm else warm_rss
    latency = {name: {"p50_ms": round(1000 * percentile(v, 50), 1), "p99_ms": round(1000 * percentile(v, 99), 1), "count": len(v)}
               for name, v in sorted(tally.latency.items())}
    unexpected = len(tally.unexpected)
    rss_growth = (peak_rss - warm_rss) / warm_rss
    summary = {
        "seconds": args.seconds, "workers": args.workers, "slow_clients": args.slow,
        "requests": sum(sum(v.values()) for v in tally.statuses.values()),
        "statuses": tally.statuses, "unexpected": unexpected, "unexpected_examples": [u for u in tally.unexpected if u][:10],
        "latency_200": latency,
        "rss_kb": {"after_warmup": warm_rss, "peak_after_warmup": peak_rss, "end": end_rss, "growth": round(rss_growth, 4)},
        "fds": {"after_warmup": warm_fds, "end_idle": end_fds, "peak": max(s[2] for s in samples)},
        "rss_timeline_kb": [s[1] for s in samples[::max(1, len(samples) // 12)]],
    }
    print(json.dumps(summary, indent=1))
    problems = []
    if unexpected:
        problems.append(f"{unexpected} unexpected answers")
    if rss_growth > 0.05:
        problems.append(f"RSS grew {100 * rss_growth:.1f}% after warm-up")
    if end_fds > warm_fds:
        problems.append(f"{end_fds} descriptors open at the end, {warm_fds} after warm-up")
    for p in problems:
        print(f"soak: FAIL: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
