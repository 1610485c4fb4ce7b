#!/usr/bin/env python3
"""Our Swift code side by side with PyTorch and onnxruntime (run through bench/compare).

Steps: write the encoders' model directories (same random timm weights for every engine), check
that every engine gives the same embedding, time encoder forwards, the BootMAE, iBOT, LoMaR and PeCo
(stage 2) training steps, and the HTTP path (throughput at saturation, latency, peak memory), then print the tables and the
`ratio <case> <peer> <ours/peer>` lines and write docs/PERFORMANCE.md.
"""

import argparse
import ctypes
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import http_bench  # noqa: E402
import report  # noqa: E402
from models import ENCODERS, activation_bytes, flops_per_image  # noqa: E402
from workers import Worker, WorkerError, alternate  # noqa: E402

# Relative differences above this mean the engines do not compute the same function (float32
# with different summation orders agrees to ~1e-5 here).
MAX_RELATIVE_DIFF = 1e-3


def parse_args():
    p = argparse.ArgumentParser(prog="bench/compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="2 rounds of ~1 s measurements, short HTTP windows (a few minutes, plus the training steps' "
                        "first torch.compile: see --skip-compile)")
    p.add_argument("--rounds", type=int, help="alternation rounds per case (default 5; --quick 2)")
    p.add_argument("--seconds", type=float, help="minimum seconds per measurement (default 3; --quick 1)")
    p.add_argument("--min-iterations", type=int, help="minimum timed calls per measurement (default 3; --quick 2)")
    p.add_argument("--threads", type=int, default=2, help="threads for every engine (default 2)")
    p.add_argument("--models", default="vit_tiny,vit_b16", help="encoders to compare (default vit_tiny,vit_b16)")
    p.add_argument("--batches", default="1,8", help="forward batch sizes (default 1,8)")
    p.add_argument("--train-batch", type=int, default=128, help="training-step batch (BootMAE, iBOT, LoMaR, PeCo; default 128)")
    p.add_argument("--http-clients", type=int, default=3, help="concurrent clients at saturation (default 3)")
    p.add_argument("--http-rounds", type=int, help="saturation windows, each after an in-process measurement (default 3; --quick 1)")
    p.add_argument("--latency-requests", type=int, help="sequential one-image requests for p50/p99 (default 100; --quick 10)")
    p.add_argument("--skip-forward", action="store_true", help="leave out the encoder forward comparison")
    p.add_argument("--skip-low-precision", action="store_true",
                   help="leave out the low-precision forward comparison (ours bf16 vs PyTorch bf16 autocast, onnxruntime int8)")
    p.add_argument("--skip-train", action="store_true", help="leave out the BootMAE training step")
    p.add_argument("--skip-ibot", action="store_true", help="leave out the iBOT training step")
    p.add_argument("--skip-lomar", action="store_true", help="leave out the LoMaR training step")
    p.add_argument("--skip-peco", action="store_true", help="leave out the PeCo stage-2 training step")
    p.add_argument("--skip-compile", action="store_true",
                   help="leave out the torch.compile peer of the training steps (compiling takes minutes on 2 cores)")
    p.add_argument("--skip-http", action="store_true", help="leave out the HTTP path (server throughput, latency, memory)")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench"), help="work folder (git-ignored; default runs/bench)")
    p.add_argument("--docs", default=str(ROOT / "docs" / "PERFORMANCE.md"), help="report to write (default docs/PERFORMANCE.md)")
    p.add_argument("--no-docs", action="store_true", help="print only; leave docs/PERFORMANCE.md alone")
    p.add_argument("--rebuild-models", action="store_true", help="rewrite the model directories even if cached")
    p.add_argument("--allow-mismatch", action="store_true", help="go on when engines disagree (for debugging only)")
    a = p.parse_args()
    quick = a.quick
    a.rounds = a.rounds or (2 if quick else 5)
    a.seconds = a.seconds if a.seconds is not None else (1.0 if quick else 3.0)
    a.min_iterations = a.min_iterations or (2 if quick else 3)
    a.http_rounds = a.http_rounds or (1 if quick else 3)
    a.latency_requests = a.latency_requests or (10 if quick else 100)
    a.http_min_seconds = 4.0 if quick else 20.0
    a.http_min_completions = 3 if quick else 8
    a.models = [m for m in a.models.split(",") if m]
    a.batches = [int(b) for b in a.batches.split(",") if b]
    unknown = [m for m in a.models if m not in ENCODERS]
    if unknown:
        p.error(f"unknown model(s) {unknown}; known: {', '.join(ENCODERS)}")
    return a


def log(msg):
    print(f"[compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# the machine
# ------------------------------------------------------------------------------------------------
def busy_cores(seconds):
    """CPU in use by everything on the machine over `seconds` (from /proc/stat), in cores."""
    def sample():
        f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = f[3] + f[4]
        return sum(f) - idle, sum(f)
    b0, t0 = sample()
    time.sleep(seconds)
    b1, t1 = sample()
    return (b1 - b0) / max(t1 - t0, 1) * os.cpu_count()


def command_output(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def openblas_version(binary):
    """The OpenBLAS our binary links, as the library describes itself (version, kernel)."""
    m = re.search(r"(\S*libopenblas\S*) => (\S+)", command_output(["ldd", str(binary)]))
    if not m:
        return "not linked?"
    try:
        lib = ctypes.CDLL(m.group(2))
        lib.openblas_get_config.restype = ctypes.c_char_p
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return f"{lib.openblas_get_config().decode().strip()} (core {lib.openblas_get_corename().decode()}; {m.group(2)})"
    except (OSError, AttributeError):
        return m.group(2)


def machine_meta(args, bench_bin):
    lscpu = dict(re.findall(r"^([^:\n]+):\s*(.+)$", command_output(["lscpu"]), re.M))
    cpu = lscpu.get("Model name", platform.processor())
    if "CPU family" in lscpu:
        cpu += f" (family {lscpu['CPU family']}, model {lscpu.get('Model', '?')}" + (", AVX-512" if "avx512f" in lscpu.get("Flags", "") else "") + ")"
    mem = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
    version = lambda pkg: importlib.metadata.version(pkg)  # noqa: E731
    swift = (command_output(["swift", "--version"]).splitlines() or ["swift not found"])[0]
    return dict(
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        command="bench/compare " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        cpu=cpu, cores=os.cpu_count(), memory_gib=int(mem.group(1)) / 2**20 if mem else 0,
        versions=dict(torch=version("torch"), onnxruntime=version("onnxruntime"), timm=version("timm"), swift=swift,
                      openblas=openblas_version(bench_bin), python=platform.python_version()),
        settings=dict(quick=args.quick, rounds=args.rounds, seconds=args.seconds, min_iterations=args.min_iterations,
                      threads=args.threads),
        gflop_per_image={m: flops_per_image(ENCODERS[m]) / 1e9 for m in args.models},
    )


# ------------------------------------------------------------------------------------------------
# steps
# ------------------------------------------------------------------------------------------------
def prepare_models(args, out):
    log("preparing model directories (random timm weights -> safetensors + config.json, ONNX export)")
    cmd = [sys.executable, str(HERE / "peer_worker.py"), "prepare", "--out", str(out / "models"),
           "--models", ",".join(args.models)] + (["--force"] if args.rebuild_models else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    (out / "logs" / "prepare.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"error: preparing the models failed (log {out / 'logs' / 'prepare.log'}):\n{proc.stderr[-2000:]}")
    last = [line for line in proc.stdout.splitlines() if line.startswith("{")][-1]
    return {name: Path(d) for name, d in json.loads(last).items()}


def swift_forward(bench_bin, model_dir, threads, logs, name, precision="fp32"):
    return Worker(name, [str(bench_bin), "forward", "--model-dir", str(model_dir), "--threads", str(threads),
                         "--precision", precision, "--serve"], logs)


def python_forward(engine, model_dir, threads, logs, name):
    return Worker(name, [sys.executable, str(HERE / "peer_worker.py"), "forward", "--engine", engine,
                         "--model-dir", str(model_dir), "--threads", str(threads)], logs)


def record_engine(results, worker):
    """Keeps what ran a worker's arithmetic (its ready line: kernel path, OpenBLAS core, fallback)."""
    keys = ("engine", "gemm", "packed_inference_gemm", "openblas_core", "openblas_fallback", "kernel_path", "cpu_flags")
    results.setdefault("engines", {})[worker.name] = {k: worker.ready[k] for k in keys if k in worker.ready}


def relative_diff(ours, ref):
    d = float(np.abs(ours - ref).max())
    return d, d / float(np.abs(ref).max())


def check_embeddings(model, workers, model_dir, out, allow_mismatch):
    """Every engine embeds the same two images; each is compared with PyTorch."""
    from safetensors.numpy import load_file
    check_dir = out / "check"
    check_dir.mkdir(exist_ok=True)
    embeddings = {}
    for engine, w in workers.items():
        dst = check_dir / f"{model}_{engine}.safetensors"
        w.call(f"embed {model_dir / 'check_images.safetensors'} {dst}")
        embeddings[engine] = load_file(str(dst))["embeddings"]
    result = {}
    for engine in ("swift", "onnxruntime"):
        if engine not in embeddings:
            continue
        if embeddings[engine].shape != embeddings["pytorch"].shape:
            sys.exit(f"error: {model}: {engine} embeddings have shape {embeddings[engine].shape}, "
                     f"PyTorch {embeddings['pytorch'].shape}")
        d, rel = relative_diff(embeddings[engine], embeddings["pytorch"])
        result[engine] = dict(max_abs=d, relative=rel)
        print(f"check {model}: {engine} vs pytorch embedding max|diff| {d:.2e} (relative {rel:.2e})", flush=True)
        if rel > MAX_RELATIVE_DIFF and not allow_mismatch:
            sys.exit(f"error: {model}: {engine} and PyTorch embeddings differ (relative {rel:.2e} > {MAX_RELATIVE_DIFF}); "
                     f"the comparison would not be honest (see the files in {check_dir})")
    return result


def run_forward(args, dirs, bench_bin, out, results):
    logs = out / "logs"
    for model in args.models:
        log(f"forward {model}: starting engines")
        workers = {"swift": swift_forward(bench_bin, dirs[model], args.threads, logs, f"{model}-swift"),
                   "pytorch": python_forward("pytorch", dirs[model], args.threads, logs, f"{model}-pytorch"),
                   "onnxruntime": python_forward("onnxruntime", dirs[model], args.threads, logs, f"{model}-onnxruntime")}
        for w in workers.values():
            record_engine(results, w)
        try:
            results.setdefault("checks", {})[model] = check_embeddings(model, workers, dirs[model], out, args.allow_mismatch)
            measure_batches(args, workers, results, "forward", model, "swift, pytorch, onnxruntime")
        finally:
            for w in workers.values():
                w.close()


def measure_batches(args, workers, results, section, model, engines):
    """Forward timings of `workers` (engine -> worker) at every batch size, alternated in rounds, into
    results[section][model][batch][engine]."""
    for batch in args.batches:
        log(f"{section} {model} batch {batch}: {args.rounds} rounds of {engines}")
        runs = alternate(list(workers.values()), f"measure {batch} {args.seconds} {args.min_iterations}", args.rounds,
                         on_result=lambda w, a: log(f"  {w.name}: {a['img_per_s']:.2f} img/s"))
        results.setdefault(section, {}).setdefault(model, {})[str(batch)] = {engine: runs[w.name] for engine, w in workers.items()}


def cosines(a, b):
    """Cosine of each row of a to the same row of b."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))


def run_forward_low_precision(args, dirs, bench_bin, out, results):
    """Ours in bf16 against the peers' low-precision paths, each with its embeddings' cosine to
    PyTorch fp32 (the check images of run_forward, or embedded here when that step was skipped)."""
    from safetensors.numpy import load_file
    logs = out / "logs"
    check_dir = out / "check"
    check_dir.mkdir(exist_ok=True)
    for model in args.models:
        images = dirs[model] / "check_images.safetensors"
        reference = check_dir / f"{model}_pytorch.safetensors"
        if not reference.exists():
            w = python_forward("pytorch", dirs[model], args.threads, logs, f"{model}-pytorch-reference")
            try:
                w.call(f"embed {images} {reference}")
            finally:
                w.close()
        ref = load_file(str(reference))["embeddings"]
        log(f"forward {model} low precision: starting engines")
        workers = {"swift": swift_forward(bench_bin, dirs[model], args.threads, logs, f"{model}-swift-bf16", precision="bf16"),
                   "pytorch_bf16": python_forward("pytorch_bf16", dirs[model], args.threads, logs, f"{model}-pytorch-bf16"),
                   "onnxruntime_int8": python_forward("onnxruntime_int8", dirs[model], args.threads, logs,
                                                      f"{model}-onnxruntime-int8")}
        results.setdefault("kernels", {})[model] = workers["swift"].ready.get("kernel", "?")
        try:
            checks = {}
            for engine, w in workers.items():
                dst = check_dir / f"{model}_{engine}_lowp.safetensors"
                w.call(f"embed {images} {dst}")
                c = cosines(load_file(str(dst))["embeddings"], ref)
                checks[engine] = dict(min_cosine=float(c.min()), images=len(c))
                label = f"swift ({results['kernels'][model]})" if engine == "swift" else engine
                print(f"check {model}: {label} embedding cosine to pytorch fp32, minimum {c.min():.6f} over {len(c)} images",
                      flush=True)
            results.setdefault("low_precision_checks", {})[model] = checks
            measure_batches(args, workers, results, "forward_bf16", model, "swift bf16, pytorch bf16, onnxruntime int8")
        finally:
            for w in workers.values():
                w.close()


def run_train(args, bench_bin, out, results):
    results["train"] = compare_train_step(args, bench_bin, out, results, "bootmae", "train", ("loss", "pixel_loss", "feature_loss"),
                                          MAX_RELATIVE_DIFF)


# iBOT's losses must agree more closely than BootMAE's (issue 16): both sides run the same float32
# functions in nearly the same order.
IBOT_MAX_RELATIVE_DIFF = 1e-4


def run_ibot_train(args, bench_bin, out, results):
    results["ibot_train"] = compare_train_step(args, bench_bin, out, results, "ibot", "ibot-train", ("loss", "cls_loss", "patch_loss"),
                                               IBOT_MAX_RELATIVE_DIFF)


# LoMaR's loss must agree as closely: both sides run the official functions in nearly the same order
# (our fixture test holds the loss to 1e-5).
LOMAR_MAX_RELATIVE_DIFF = 1e-4


def run_lomar_train(args, bench_bin, out, results):
    results["lomar_train"] = compare_train_step(args, bench_bin, out, results, "lomar", "lomar-train", ("loss",),
                                                LOMAR_MAX_RELATIVE_DIFF)


# PeCo's loss must agree as closely as PeCoParityTests hold it (1e-5): at BEiT's init it sits near ln K, so a
# forward that differed would move only its fifth digit; and both tokenizers must give every patch the same code.
PECO_MAX_RELATIVE_DIFF = 1e-5


def run_peco_train(args, bench_bin, out, results):
    results["peco_train"] = compare_train_step(args, bench_bin, out, results, "peco", "peco-train", ("loss",),
                                               PECO_MAX_RELATIVE_DIFF, must_be_zero=("code_mismatches",))


def compare_train_step(args, bench_bin, out, results, objective, name, losses, tolerance, must_be_zero=()):
    """One pretraining step of `objective`, ours against PyTorch's (peer_worker.py train-step): PyTorch
    writes its network and a check file, ours loads both; the step is timed only when both give the
    same `losses` (the total first) within `tolerance` relative, and every count of our check named in
    `must_be_zero` (e.g. PeCo's patches whose code differs from PyTorch's) is 0; then the same step through
    torch.compile joins as a third peer (unless --skip-compile). Workers are named `name`-swift/-pytorch/-pytorch-compile."""
    logs = out / "logs"
    directory = out / f"{objective}_tiny"
    log(f"{objective} train step: starting PyTorch (writes {directory}), then ours")
    try:
        torch_w = Worker(f"{name}-pytorch", [sys.executable, str(HERE / "peer_worker.py"), "train-step", "--objective", objective,
                                             "--out", str(directory), "--batch", str(args.train_batch), "--threads", str(args.threads)],
                         logs)
    except WorkerError as e:   # e.g. LoMaR's official code is not on this machine: reported, not silently left out
        why = [line for line in str(e).splitlines() if line.strip()][-1].strip()
        print(f"check {objective} train step: not measured: the PyTorch peer did not start: {why}", flush=True)
        return dict(batch=args.train_batch, unavailable=f"the PyTorch peer did not start: {why}")
    swift_w = compiled_w = None
    try:
        swift_w = Worker(f"{name}-swift", [str(bench_bin), "train-step", "--objective", objective, "--model-dir", str(directory),
                                           "--batch", str(args.train_batch), "--threads", str(args.threads), "--serve"], logs)
        record_engine(results, torch_w)
        record_engine(results, swift_w)
        ours = swift_w.call(f"check {directory / 'check.safetensors'}")
        ref = torch_w.ready["check"]
        rel = max(abs(ours[k] - ref[k]) / abs(ref[k]) for k in losses)

        def spelled(side):
            parts = ", ".join(f"{k.removesuffix('_loss')} {side[k]:.6f}" for k in losses[1:])
            return f"{side[losses[0]]:.6f}" + (f" ({parts})" if parts else "")
        print(f"check {objective} train step: loss ours {spelled(ours)}, pytorch {spelled(ref)}; "
              f"worst relative difference {rel:.1e}", flush=True)
        if rel > tolerance and not args.allow_mismatch:
            sys.exit(f"error: our {objective} losses differ from PyTorch's (relative {rel:.1e} > {tolerance:.0e}); "
                     "the step would not be the same")
        if "ln_k" in ref:
            print(f"check {objective} train step: ln K = {ref['ln_k']:.6f} (the loss at BEiT's init sits just above it)", flush=True)
        for key in must_be_zero:
            print(f"check {objective} train step: {key.replace('_', ' ')} {ours[key]}", flush=True)
            if ours[key] != 0 and not args.allow_mismatch:
                sys.exit(f"error: our {objective} check counts {ours[key]} {key.replace('_', ' ')} against PyTorch; "
                         "the step would not be the same")
        if args.skip_compile:
            compiled = dict(skipped=True)
        else:
            compiled_w, compiled = start_compiled_peer(args, objective, name, losses, tolerance, logs)
            if compiled_w:
                record_engine(results, compiled_w)
        workers = {"swift": swift_w, "pytorch": torch_w} | ({"pytorch_compile": compiled_w} if compiled_w else {})
        log(f"{objective} train step batch {args.train_batch}: {args.rounds} rounds of {', '.join(workers)}")
        runs = alternate(list(workers.values()), f"measure {args.seconds} {args.min_iterations}", args.rounds,
                         on_result=lambda w, a: log(f"  {w.name}: {a['img_per_s']:.1f} img/s"))
        recompiled = sum(r.get("recompiled_frames", 0) for r in runs.get(f"{name}-pytorch-compile", []))
        if recompiled:
            compiled["warning"] = f"torch.compile recompiled {recompiled} frame(s) during the timed steps"
            log(f"warning: {compiled['warning']}")
        return dict(batch=args.train_batch, runs={engine: runs[w.name] for engine, w in workers.items()},
                    check=dict(swift=ours, pytorch=ref, relative=rel), compile=compiled)
    finally:
        for w in (swift_w, torch_w, compiled_w):
            if w:
                w.close()


def start_compiled_peer(args, objective, name, losses, tolerance, logs):
    """The `pytorch_compile` peer: the PyTorch step through torch.compile, compiled (and warmed up)
    before its ready line. Returns (worker, info) with the compile time and its same-loss check
    against eager PyTorch on one full batch, or (None, info) with `unavailable`: the reason it
    cannot run (the compiler stack failed, the worker died, or its losses differ from eager's)."""
    log(f"{objective} train step: compiling the PyTorch step with torch.compile (minutes on 2 cores; --skip-compile skips it)")
    # Inductor keeps what it compiled on disk (in the bench's folder: TORCHINDUCTOR_CACHE_DIR below), and
    # a later run reuses it: the report says whether an earlier run had compiled this step.
    cache = Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    marker = cache / f".compiled-{objective}-b{args.train_batch}-t{args.threads}"
    warm = marker.exists()
    log(f"  inductor cache {cache} ({'has this step from an earlier run' if warm else 'new for this step'})")
    try:
        worker = Worker(f"{name}-pytorch-compile",
                        [sys.executable, str(HERE / "peer_worker.py"), "train-step", "--objective", objective,
                         "--engine", "pytorch_compile", "--batch", str(args.train_batch),
                         "--threads", str(args.threads)], logs, start_timeout=3600)
    except WorkerError as e:   # it died, or was still compiling after an hour
        return None, unavailable(objective, str(e).splitlines()[0])
    info = {k: worker.ready[k] for k in ("compile_s", "warmup_steps", "check", "unavailable") if k in worker.ready}
    info["cache"] = ("an earlier run had compiled this step into inductor's cache" if warm
                     else "first compile of this step: no kernels cached by an earlier run")
    if "unavailable" not in info:
        eager, compiled = info["check"]["eager"], info["check"]["compiled"]
        info["relative"] = max(abs(compiled[k] - eager[k]) / abs(eager[k]) for k in losses)
        print(f"check {objective} train step: torch.compile loss {compiled[losses[0]]:.6f}, eager {eager[losses[0]]:.6f} "
              f"(full batch); worst relative difference {info['relative']:.1e}; compile and {info['warmup_steps']} "
              f"warm-up steps took {info['compile_s']:.0f} s ({info['cache']})", flush=True)
        if info["relative"] > tolerance and not args.allow_mismatch:
            info["unavailable"] = (f"the compiled step's losses differ from eager PyTorch's (relative "
                                   f"{info['relative']:.1e} > {tolerance:.0e})")
    if "unavailable" in info:
        worker.close()
        return None, unavailable(objective, info["unavailable"], info)
    cache.mkdir(parents=True, exist_ok=True)
    marker.touch()
    return worker, info


def unavailable(objective, why, info=None):
    print(f"check {objective} train step: pytorch_compile unavailable: {why}", flush=True)
    return dict(info or {}, unavailable=why)


def tensor_bytes(path):
    """Bytes of tensor data in a safetensors file (the file less its JSON header)."""
    with open(path, "rb") as f:
        header = int.from_bytes(f.read(8), "little")
    return os.path.getsize(path) - 8 - header


def run_http(args, dirs, bench_bin, serve_bin, out, results):
    model, batch = "vit_b16", 8
    if model not in dirs:
        log("HTTP: skipped (needs vit_b16 in --models)")
        return
    logs = out / "logs"
    serve_dir = out / "serve"
    serve_dir.mkdir(exist_ok=True)
    link = serve_dir / "vit-b16"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(dirs[model].resolve())
    jpeg = http_bench.photo_224(ROOT / "Tests" / "Fixtures" / "images" / "photo_512x384.jpg", out / "photo_224.jpg")
    log(f"HTTP: starting bootmae-serve (--max-batch {batch}) and an in-process worker")
    server = http_bench.Server(serve_bin, serve_dir, logs / "bootmae-serve.log", args.threads, batch, ROOT / "openapi.yaml")
    worker = None
    try:
        worker = swift_forward(bench_bin, dirs[model], args.threads, logs, "http-in-process")
        record_engine(results, worker)
        http_bench.check_answer(server.port, jpeg, batch, ENCODERS[model]["embed_dim"])
        rounds = []
        for r in range(args.http_rounds):
            time.sleep(0.3)
            inproc = worker.call(f"measure {batch} {args.seconds} {args.min_iterations}")
            log(f"  in-process b{batch}: {inproc['img_per_s']:.2f} img/s")
            time.sleep(0.3)
            sat = http_bench.saturate(server, jpeg, batch, args.http_clients, warmup_completions=2,
                                      min_seconds=args.http_min_seconds, min_completions=args.http_min_completions)
            log(f"  server at saturation: {sat['img_per_s']:.2f} img/s ({sat['requests']} requests)")
            rounds.append(dict(round=r, in_process=inproc, http=sat))
        log(f"HTTP latency: {args.latency_requests} sequential one-image requests")
        lat = http_bench.latency(server.port, jpeg, args.latency_requests)
        b1 = worker.call(f"measure 1 {args.seconds} {args.min_iterations}")
        memory = dict(server=server.status(), batch=batch, weights_bytes=tensor_bytes(dirs[model] / "model.safetensors"),
                      activation_bytes=activation_bytes(ENCODERS[model], batch),
                      all_blocks_bytes=activation_bytes(ENCODERS[model], batch, blocks=ENCODERS[model]["depth"]),
                      in_process_hwm_kib=max(r["in_process"]["vm_hwm_kib"] for r in rounds))
        results["http"] = dict(model=model, batch=batch, clients=args.http_clients, rounds=rounds, latency=lat,
                               in_process_b1_ms=b1["median_s"] * 1000, memory=memory)
    finally:
        if worker:
            worker.close()
        server.stop()


def main():
    args = parse_args()
    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    bench_bin = ROOT / ".build" / "release" / "bootmae-bench"
    serve_bin = ROOT / ".build" / "release" / "bootmae-serve"
    for b in (bench_bin, serve_bin):
        if not b.exists():
            sys.exit(f"error: {b} is missing; run bench/compare (it builds the release binaries) or `swift build -c release`")
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(out / "torchinductor"))   # for the torch.compile peer
    started = time.time()
    log("measuring background CPU use")
    background_before = busy_cores(1.0 if args.quick else 3.0)
    meta = machine_meta(args, bench_bin)
    dirs = prepare_models(args, out)
    results = {}
    if not args.skip_forward:
        run_forward(args, dirs, bench_bin, out, results)
    if not args.skip_low_precision:
        run_forward_low_precision(args, dirs, bench_bin, out, results)
    if not args.skip_train:
        run_train(args, bench_bin, out, results)
    if not args.skip_ibot:
        run_ibot_train(args, bench_bin, out, results)
    if not args.skip_lomar:
        run_lomar_train(args, bench_bin, out, results)
    if not args.skip_peco:
        run_peco_train(args, bench_bin, out, results)
    if not args.skip_http:
        run_http(args, dirs, bench_bin, serve_bin, out, results)
    background_after = busy_cores(1.0 if args.quick else 3.0)
    meta.update(background_before=background_before, background_after=background_after,
                contended=max(background_before, background_after) > 0.25, wall_seconds=time.time() - started)
    text, comparisons = report.text_report(results, meta)
    print(text, flush=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    record = dict(meta=meta, results=results, comparisons=comparisons)
    for name in (f"results-{stamp}.json", "results.json"):
        (out / name).write_text(json.dumps(record, indent=1, default=str) + "\n")
    if not args.no_docs:
        docs = Path(args.docs)
        kept = report.kept_notes(docs.read_text() if docs.exists() else "")
        docs.write_text(report.markdown(results, meta, comparisons) + kept)
        log(f"wrote {args.docs}")
    log(f"done in {meta['wall_seconds'] / 60:.1f} min; raw results in {out / 'results.json'}")


if __name__ == "__main__":
    try:
        main()
    except (WorkerError, RuntimeError, OSError) as e:
        sys.exit(f"error: {e}")
