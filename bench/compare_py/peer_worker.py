#!/usr/bin/env python3
"""The Python side of bench/compare: one process per engine, driven over stdin/stdout.

    peer_worker.py prepare --out DIR [--force]                 write the encoders' model directories
    peer_worker.py forward --engine pytorch|onnxruntime|pytorch_bf16|onnxruntime_int8 --model-dir D [--threads 2]
    peer_worker.py train-step [--out DIR] [--objective bootmae|ibot|lomar|peco] [--engine pytorch|pytorch_compile] [--batch 128] [--threads 2]

`forward` and `train-step` speak the protocol of `bootmae-bench forward|train-step --serve`: a
`ready` JSON line, then one JSON line per command (`measure ...`, `embed IN OUT`, `quit`).
`train-step` first writes its network into DIR (a pretraining directory our side then loads); its
step is torch_train.py's (BootMAE), torch_ibot.py's (iBOT), torch_lomar.py's (LoMaR) or torch_peco.py's (PeCo
stage 2, which also writes the frozen tokenizer it reads into DIR/tokenizer). With `--engine pytorch_compile` it writes
nothing: it compiles the same step (torch_compiled.py) and its ready line carries the compile time and
the compiled-vs-eager losses of one batch, or `unavailable` with the reason torch.compile failed.
The low-precision engines are what a user who wants speed picks: `pytorch_bf16` runs the fp32 module
under CPU autocast to bf16, `onnxruntime_int8` the ONNX export through `quantize_dynamic` (int8
weights, activations quantized per call; written next to model.onnx once).
"""

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def emit(obj):
    print(json.dumps(obj, sort_keys=True), flush=True)


def time_runs(seconds, min_iterations, body):
    """Seconds per call and minor page faults per call: one untimed call, then calls until
    `seconds` passed and `min_iterations` ran (the same rule as Measure.swift)."""
    body()
    times = []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    while len(times) < min_iterations or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        body()
        times.append(time.perf_counter() - t0)
    return times, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / len(times)


def vm_status():
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmHWM:", "VmRSS:")):
            out["vm_hwm_kib" if line.startswith("VmHWM") else "vm_rss_kib"] = int(line.split()[1])
    return out


def kernel_path(engine):
    """What a peer's kernels were picked by: PyTorch's ATen CPU capability (with MKL / oneDNN GEMMs,
    which dispatch by CPUID themselves); onnxruntime's MLAS, which picks its kernels by CPUID."""
    if engine == "onnxruntime":
        return "MLAS (CPUID dispatch)"
    import torch
    return f"ATen {torch.backends.cpu.get_cpu_capability()}, MKL/oneDNN GEMM (CPUID dispatch)"


def serve(ready, handlers):
    emit(dict(ready, event="ready"))
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        try:
            if words[0] not in handlers:
                raise ValueError(f"unknown command '{words[0]}' ({', '.join(sorted(handlers))}, quit)")
            emit(handlers[words[0]](*words[1:]))
        except Exception as e:  # answer and keep serving: the orchestrator decides what fails
            emit({"event": "error", "message": f"{type(e).__name__}: {e}"})


# ------------------------------------------------------------------------------------------------
def forward_worker(args):
    import torch
    from safetensors.numpy import load_file, save_file
    from models import build_vit, flops_per_image
    torch.set_num_threads(args.threads)
    config = json.loads((Path(args.model_dir) / "config.json").read_text())
    spec = {k: config[k] for k in ("img_size", "patch_size", "embed_dim", "depth", "num_heads")}
    flops = flops_per_image(spec)
    name = Path(args.model_dir).name
    if args.engine in ("pytorch", "pytorch_bf16"):
        from safetensors.torch import load_file as load_torch
        model = build_vit(spec).eval()
        model.load_state_dict(load_torch(str(Path(args.model_dir) / "model.safetensors")), strict=True)
        bf16 = args.engine == "pytorch_bf16"

        def run(x):
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return model(torch.from_numpy(x)).float().numpy()
        version = torch.__version__
    else:
        import onnxruntime as ort
        onnx_path = Path(args.model_dir) / "model.onnx"
        if args.engine == "onnxruntime_int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic
            quantized = Path(args.model_dir) / "model.int8.onnx"
            if not quantized.exists() or quantized.stat().st_mtime < onnx_path.stat().st_mtime:
                partial_path = quantized.with_suffix(".partial.onnx")
                quantize_dynamic(str(onnx_path), str(partial_path), weight_type=QuantType.QInt8)
                partial_path.rename(quantized)
            onnx_path = quantized
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(onnx_path), options,
                                       providers=["CPUExecutionProvider"])

        def run(x):
            return session.run(None, {"images": x})[0]
        version = ort.__version__

    def measure(batch, seconds, min_iterations):
        batch = int(batch)
        x = np.random.default_rng(batch).standard_normal((batch, 3, spec["img_size"], spec["img_size"]), dtype=np.float32)
        times, faults = time_runs(float(seconds), int(min_iterations), lambda: run(x))
        t = float(np.median(times))
        return dict(event="forward", engine=args.engine, model=name, batch=batch, threads=args.threads,
                    iterations=len(times), median_s=t, img_per_s=batch / t, gflop_per_s=flops * batch / t / 1e9,
                    faults_per_call=faults, **vm_status())

    def embed(src, dst):
        y = run(np.ascontiguousarray(load_file(src)["images"], dtype=np.float32))
        save_file({"embeddings": np.ascontiguousarray(y, dtype=np.float32)}, dst)
        return dict(event="embed", output=dst, shape=list(y.shape))

    serve(dict(engine=args.engine, model=name, threads=args.threads, version=version, kernel_path=kernel_path(args.engine)),
          {"measure": measure, "embed": embed})


def train_worker(args):
    import torch
    if args.objective == "ibot":
        from torch_ibot import TorchIBOTStep as TorchStep
    elif args.objective == "lomar":
        from torch_lomar import TorchLoMaRStep as TorchStep
    elif args.objective == "peco":
        from torch_peco import TorchPeCoStep as TorchStep
    else:
        from torch_train import TorchBootMAEStep as TorchStep
    step = TorchStep(args.batch)
    torch.set_num_threads(args.threads)   # after the reference import, which sets one thread
    ready = dict(engine=args.engine, batch=args.batch, threads=args.threads, version=torch.__version__,
                 kernel_path=kernel_path("pytorch"))
    if args.engine == "pytorch":
        ready.update(check=step.write_directory(Path(args.out)), directory=args.out)
    else:
        import torch_compiled
        ready.update(torch_compiled.compile_step(step))
        ready["kernel_path"] += "; torch.compile (inductor, C++)"

    def measure(seconds, min_iterations):
        if "unavailable" in ready:
            raise RuntimeError(f"torch.compile is unavailable: {ready['unavailable']}")
        frames = torch_compiled.compiled_frames() if args.engine == "pytorch_compile" else 0
        times, faults = time_runs(float(seconds), int(min_iterations), step.step)
        t = float(np.median(times))
        answer = dict(event="train_step", engine=args.engine, batch=args.batch, threads=args.threads,
                      iterations=len(times), median_s=t, img_per_s=args.batch / t, faults_per_call=faults, **vm_status())
        if args.engine == "pytorch_compile":   # a recompilation while timed would put compile time in the steps
            answer["recompiled_frames"] = torch_compiled.compiled_frames() - frames
        return answer

    serve(ready, {"measure": measure})


def prepare_command(args):
    from models import ENCODERS, prepare
    missing = [n for n in args.models.split(",") if n not in ENCODERS]
    if missing:
        sys.exit(f"error: unknown model(s) {missing}; known: {', '.join(ENCODERS)}")
    dirs = prepare(args.out, args.models.split(","), force=args.force)
    emit({name: str(d) for name, d in dirs.items()})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", required=True)
    p.add_argument("--models", default="vit_tiny,vit_b16")
    p.add_argument("--force", action="store_true")
    f = sub.add_parser("forward")
    f.add_argument("--engine", choices=["pytorch", "onnxruntime", "pytorch_bf16", "onnxruntime_int8"], required=True)
    f.add_argument("--model-dir", required=True)
    f.add_argument("--threads", type=int, default=2)
    t = sub.add_parser("train-step")
    t.add_argument("--out", help="the directory to write (engine pytorch)")
    t.add_argument("--objective", choices=["bootmae", "ibot", "lomar", "peco"], default="bootmae")
    t.add_argument("--engine", choices=["pytorch", "pytorch_compile"], default="pytorch",
                   help="pytorch_compile: the same step through torch.compile (compiled before the ready line; "
                        "the network is not written)")
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.command == "train-step" and args.engine == "pytorch" and not args.out:
        parser.error("train-step --engine pytorch needs --out")
    {"prepare": prepare_command, "forward": forward_worker, "train-step": train_worker}[args.command](args)


if __name__ == "__main__":
    main()
