"""The HTTP path: the real bootmae-serve on a loopback port, loaded by keep-alive clients.

Saturation: `clients` threads each send one request of `batch` JPEGs and wait for its answer, so
the server always has a full batch queued (--max-batch = batch); throughput is counted from
request completions after a warm-up. Latency: one client, one image per request, sequential.
"""

import base64
import http.client
import json
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np


class Server:
    def __init__(self, binary, models_dir, log_path, threads, max_batch, openapi, start_timeout=600):
        self.log_path = Path(log_path)
        self.log = open(self.log_path, "w")
        argv = [str(binary), "--models-dir", str(models_dir), "--host", "127.0.0.1", "--port", "0",
                "--threads", str(threads), "--max-batch", str(max_batch), "--openapi", str(openapi)]
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.PIPE, text=True)
        self.port = None
        ready = threading.Event()

        def pump():
            for line in self.proc.stderr:
                self.log.write(line)
                self.log.flush()
                m = re.search(r"ready on http://127\.0\.0\.1:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()
        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(start_timeout) or self.port is None:
            self.stop()
            raise RuntimeError(f"bootmae-serve did not become ready; log {self.log_path}:\n"
                               + "\n".join(self.log_path.read_text().splitlines()[-10:]))

    def status(self):
        """VmHWM (peak resident set) and VmRSS of the server, KiB."""
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(("VmHWM:", "VmRSS:")):
                out["vm_hwm_kib" if line.startswith("VmHWM") else "vm_rss_kib"] = int(line.split()[1])
        return out

    def minor_faults(self):
        return int(Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[7])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)   # drains and exits by itself
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def embeddings_body(jpeg, count):
    return json.dumps({"input": [base64.b64encode(jpeg).decode()] * count}).encode()


def post(conn, body):
    conn.request("POST", "/v1/embeddings", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"POST /v1/embeddings answered {response.status}: {data[:300]!r}")
    return data


def check_answer(port, jpeg, count, dim):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    answer = json.loads(post(conn, embeddings_body(jpeg, count)))
    conn.close()
    got = [len(d["embedding"]) for d in answer["data"]]
    if got != [dim] * count:
        raise RuntimeError(f"the server returned embeddings of sizes {got}, expected {count} x {dim}")


def saturate(server, jpeg, batch, clients, warmup_completions, min_seconds, min_completions, max_seconds=900):
    """img/s at saturation: batches completed after the first `warmup_completions`, divided by the
    time from the last warm-up completion to the last completion; and the server's minor page
    faults per request over that window."""
    port = server.port
    body = embeddings_body(jpeg, batch)
    done = []              # completion times, all clients
    lock = threading.Condition()
    stop = threading.Event()
    errors = []

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        try:
            while not stop.is_set():
                post(conn, body)
                with lock:
                    done.append(time.perf_counter())
                    lock.notify_all()
        except Exception as e:   # reported below: a saturation run with failures is not a result
            errors.append(str(e))
            with lock:
                lock.notify_all()
        finally:
            conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    deadline = time.perf_counter() + max_seconds
    with lock:
        while len(done) < warmup_completions and not errors and time.perf_counter() < deadline:
            lock.wait(1)
        if errors or len(done) < warmup_completions:
            stop.set()
            raise RuntimeError(f"saturation load failed during warm-up: {errors[0] if errors else 'timeout'}")
        start = done[warmup_completions - 1]
        faults = server.minor_faults()
        while not errors and time.perf_counter() < deadline and (
                time.perf_counter() - start < min_seconds or len(done) - warmup_completions < min_completions):
            lock.wait(1)
        measured = list(done[warmup_completions:])
        faults = server.minor_faults() - faults
    stop.set()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"saturation load failed: {errors[0]}")
    if not measured:
        raise RuntimeError(f"no request completed within {max_seconds} s")
    elapsed = measured[-1] - start
    return dict(img_per_s=batch * len(measured) / elapsed, requests=len(measured), seconds=elapsed,
                batch=batch, clients=clients, faults_per_request=faults / len(measured))


def latency(port, jpeg, requests, warmup=2):
    """p50 / p99 of sequential one-image requests on one keep-alive connection, ms."""
    body = embeddings_body(jpeg, 1)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    times = []
    for i in range(warmup + requests):
        t0 = time.perf_counter()
        post(conn, body)
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000)
    conn.close()
    return dict(p50_ms=float(np.percentile(times, 50)), p99_ms=float(np.percentile(times, 99)),
                requests=requests, min_ms=min(times), max_ms=max(times))


def photo_224(source, out_path):
    """A real photo as a 224 x 224 JPEG: shorter side to 224 (bicubic), center crop, quality 90."""
    from PIL import Image
    img = Image.open(source).convert("RGB")
    w, h = img.size
    s = 224 / min(w, h)
    img = img.resize((max(224, round(w * s)), max(224, round(h * s))), Image.BICUBIC)
    w, h = img.size
    left, top = (w - 224) // 2, (h - 224) // 2
    img.crop((left, top, left + 224, top + 224)).save(out_path, quality=90)
    return Path(out_path).read_bytes()
