"""AdamW reference trajectory from torch.optim.AdamW (Tests/Fixtures/optim/adamw.safetensors).

Two parameters, one with weight decay and one without (the trainer's two groups), three steps with a
different learning rate each step and fixed gradients per step. Run with the reference venv:
    .venv-ref/bin/python tools/reference/make_optim_fixtures.py
"""
import pathlib
import torch
from safetensors.torch import save_file

OUT = pathlib.Path(__file__).resolve().parents[2] / "Tests" / "Fixtures" / "optim"
OUT.mkdir(parents=True, exist_ok=True)
torch.manual_seed(11)
w = torch.nn.Parameter(torch.randn(4, 3))
b = torch.nn.Parameter(torch.randn(3))
tensors = {"w0": w.detach().clone(), "b0": b.detach().clone()}
opt = torch.optim.AdamW([{"params": [w], "weight_decay": 0.05}, {"params": [b], "weight_decay": 0.0}],
                        lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
lrs = [1e-3, 3e-3, 5e-4]
for step, lr in enumerate(lrs):
    for g in opt.param_groups:
        g["lr"] = lr
    gw, gb = torch.randn(4, 3), torch.randn(3) * 1e-3
    w.grad, b.grad = gw.clone(), gb.clone()
    opt.step()
    tensors[f"gw{step}"], tensors[f"gb{step}"] = gw, gb
    tensors[f"w{step + 1}"], tensors[f"b{step + 1}"] = w.detach().clone(), b.detach().clone()
tensors["lrs"] = torch.tensor(lrs, dtype=torch.float32)
save_file({k: v.contiguous().float() for k, v in tensors.items()}, str(OUT / "adamw.safetensors"),
          metadata={"generator": "tools/reference/make_optim_fixtures.py", "torch": torch.__version__,
                    "betas": "0.9,0.95", "eps": "1e-8", "weight_decay": "0.05"})
print("wrote", OUT / "adamw.safetensors")
