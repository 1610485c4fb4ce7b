"""The `pytorch_compile` peer of the training steps: the step of torch_train.py, torch_ibot.py, torch_lomar.py
or torch_peco.py with its two parts compiled by `torch.compile` (default inductor backend, CPU), as
PyTorch's tutorials do it: the forward and loss (`losses`; AOTAutograd compiles the backward from
the same graph) and the update (`update`: clip, AdamW, EMA; "Compiling the optimizer with torch.compile"). The masks are
drawn outside, as in the eager step, so no value of theirs is baked into a graph; iBOT's scheduled
weight decay and momentum are kept at their first timed values (`pin_schedule`).

Compiling happens before any timing: `compile_step` runs the first compiled call (the same-loss
check) and a few warm-up steps, and says how long that took. Inductor generates C++ and needs a
C++ compiler (g++ here); whatever fails is returned as a reason for the report, not raised.
"""

import time

import torch

# Steps after the check call before timing: the first step compiles the backward and the update;
# the second recompiles the update once AdamW's state exists; the third must find every graph made.
WARMUP_STEPS = 3


def compiled_frames():
    """Frames dynamo has compiled so far in this process (a recompilation adds one)."""
    from torch._dynamo.utils import counters
    return counters["frames"]["total"]


def compile_step(step):
    """Compiles `step` in place. Returns dict(check=dict(eager=..., compiled=...), compile_s=...,
    warmup_steps=...) or dict(unavailable=reason)."""
    args = step.check_batch()
    with step.unchanged():
        eager = {k: v.item() for k, v in step.losses(*args).items()}
    pin_schedule(step)
    try:
        step.losses = torch.compile(step.losses)
        step.update = torch.compile(step.update)
        start = time.perf_counter()
        with step.unchanged():
            compiled = {k: v.item() for k, v in step.losses(*args).items()}
        for _ in range(WARMUP_STEPS):
            step.step()
        seconds = time.perf_counter() - start
    except Exception as e:  # noqa: BLE001 (any failure of the compiler stack makes the peer unavailable)
        return dict(unavailable=reason(e))
    return dict(check=dict(eager=eager, compiled=compiled), compile_s=seconds, warmup_steps=WARMUP_STEPS,
                frames=compiled_frames())


def pin_schedule(step):
    """Keeps the scheduled values of the step's first timed iteration (iBOT: weight decay, teacher
    momentum). Dynamo guards on Python floats the update reads, so a value that changes every step
    would recompile the update every step (and after 8 recompilations fall back to eager). At the
    timed point of iBOT's 100-epoch schedules the weight decay moves by 1.8e-10 per step and the
    momentum by 2e-12: keeping them changes no measured work."""
    if hasattr(step, "schedule"):
        values = step.schedule()
        step.schedule = lambda: values


def reason(error):
    """One line for the report: the exception's type and the first line of its message."""
    first = next((line for line in str(error).splitlines() if line.strip()), "")
    return f"{type(error).__name__}: {first}"[:300]
