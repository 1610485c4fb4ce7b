"""PyTorch references for the pieces new pretraining objectives share (iBOT, BEiT/PeCo):
L2 normalization, the soft-target cross-entropy of DINO/iBOT and the weight-normalized linear layer
of iBOT's head. Writes Tests/Fixtures/ops/{l2_normalize, soft_target_ce, weight_norm_linear,
weight_norm_linear_frozen}.safetensors: inputs, outputs and every gradient.

Written from the formulas (torch.nn.functional.normalize; iBOT's per-row loss
sum(-t * log_softmax(s / temp)); torch.nn.utils.weight_norm), seeded, float32, single-threaded;
a re-run rewrites byte-identical files. Run with the reference venv:
    .venv-ref/bin/python tools/reference/make_objective_fixtures.py
"""
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import FixtureWriter, leaf, rand, seed

SCRIPT = "tools/reference/make_objective_fixtures.py"
WRITER = FixtureWriter(SCRIPT, max_file_bytes=100 * 1024, max_total_bytes=400 * 1024)
save = WRITER.save


def agree64(what, ours, reference, tol=1e-6):
    """The float32 result against the same computation replayed in float64: the references must be
    good far below the Swift tolerance (1e-5 relative)."""
    err = (ours.double() - reference).abs().max() / reference.abs().max()
    assert err < tol, f"{what}: float32 vs float64 relative error {err:.3g}"


def op_l2_normalize():
    """F.normalize(x, dim=-1) (eps 1e-12 clamp on the norm), rows of very different scales, and a
    separate case whose norms lie below eps (the clamp is active: y = x / eps, dx = dy / eps)."""
    s = seed(101)
    x = leaf(rand(3, 5, 16) * torch.tensor([0.01, 1.0, 30.0]).view(3, 1, 1))
    dy = rand(3, 5, 16)
    y = F.normalize(x, dim=-1)
    y.backward(dy)
    tiny = leaf(rand(2, 16) * 1e-14)
    dy_tiny = rand(2, 16)
    y_tiny = F.normalize(tiny, dim=-1)
    y_tiny.backward(dy_tiny)
    assert (tiny.detach().norm(dim=-1) < 1e-12).all()
    x64 = leaf(x.detach().double())
    y64 = F.normalize(x64, dim=-1)
    y64.backward(dy.double())
    agree64("l2 y", y, y64.detach())
    agree64("l2 dx", x.grad, x64.grad)
    save("ops/l2_normalize.safetensors",
         dict(x=x, dy=dy, y=y, dx=x.grad, x_tiny=tiny, dy_tiny=dy_tiny, y_tiny=y_tiny, dx_tiny=tiny.grad),
         meta={"eps": "1e-12", "dim": "-1"}, seed=s)


def op_soft_target_ce():
    """iBOT's loss on student logits s against the teacher's centred, sharpened softmax t:
    per row l = sum_k -t_k log_softmax(s / student_temp)_k. Two reductions, each with its gradient
    from loss.backward(): `loss_mean` = mean over all rows ([CLS] loss), `loss_masked` = per image
    sum(l * mask) / max(mask.sum(), 1), then mean over images (patch loss); image 2 has no masked
    patch. `row_loss` holds l."""
    s = seed(102)
    student_temp, teacher_temp = 0.1, 0.04
    student = rand(3, 6, 40) * 2.0
    teacher_logits = rand(3, 6, 40) * 2.0
    center = rand(1, 40) * 0.3
    target = F.softmax((teacher_logits - center) / teacher_temp, dim=-1)
    mask = torch.zeros(3, 6)
    mask[0, [0, 2, 3]] = 1
    mask[1, [1, 2, 3, 4, 5]] = 1

    def row_loss(s_):
        return torch.sum(-target * F.log_softmax(s_ / student_temp, dim=-1), dim=-1)

    s_mean = leaf(student)
    loss_mean = row_loss(s_mean).mean()
    loss_mean.backward()
    s_masked = leaf(student)
    per_image = torch.sum(row_loss(s_masked) * mask, dim=-1) / mask.sum(dim=-1).clamp(min=1.0)
    loss_masked = per_image.mean()
    loss_masked.backward()
    s64 = leaf(student.double())
    t64 = F.softmax((teacher_logits.double() - center.double()) / teacher_temp, dim=-1)
    rows64 = torch.sum(-t64 * F.log_softmax(s64 / student_temp, dim=-1), dim=-1)
    m64 = mask.double()
    loss64 = rows64.mean() + (torch.sum(rows64 * m64, dim=-1) / m64.sum(dim=-1).clamp(min=1.0)).mean()
    loss64.backward()
    agree64("soft-target loss", loss_mean.detach() + loss_masked.detach(), loss64.detach())
    agree64("soft-target gradient", s_mean.grad + s_masked.grad, s64.grad)
    save("ops/soft_target_ce.safetensors",
         dict(student=student, target=target, mask=mask, row_loss=row_loss(student).detach(),
              loss_mean=loss_mean.reshape(1), dstudent_mean=s_mean.grad,
              loss_masked=loss_masked.reshape(1), dstudent_masked=s_masked.grad),
         meta={"student_temp": str(student_temp), "teacher_temp": str(teacher_temp)}, seed=s)


def weight_norm_linear(in_features, out_features, trainable_g):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the deprecated API is the one iBOT uses
        layer = nn.utils.weight_norm(nn.Linear(in_features, out_features, bias=False))
    with torch.no_grad():
        layer.weight_v.copy_(rand(out_features, in_features) / in_features ** 0.5)
        if trainable_g:
            layer.weight_g.copy_(0.5 + torch.rand(out_features, 1))
        else:
            layer.weight_g.fill_(1)
            layer.weight_g.requires_grad = False
    return layer


def op_weight_norm_linear(rel, trainable_g, s):
    """torch.nn.utils.weight_norm(nn.Linear(12, 20, bias=False)): W = g * v / ||v|| per output row.
    Trainable g ~ U(0.5, 1.5); frozen g = 1 without gradient (iBOT's norm_last_layer)."""
    seed(s)
    layer = weight_norm_linear(12, 20, trainable_g)
    x = leaf(rand(2, 5, 12))
    dy = rand(2, 5, 20)
    y = layer(x)
    y.backward(dy)
    g64, v64 = leaf(layer.weight_g.detach().double()), leaf(layer.weight_v.detach().double())
    x64 = leaf(x.detach().double())
    y64 = F.linear(x64, v64 * (g64 / v64.norm(dim=1, keepdim=True)))
    y64.backward(dy.double())
    agree64("weight-norm y", y, y64.detach())
    agree64("weight-norm dx", x.grad, x64.grad)
    agree64("weight-norm dv", layer.weight_v.grad, v64.grad)
    if trainable_g:
        agree64("weight-norm dg", layer.weight_g.grad, g64.grad)
    tensors = dict(x=x, dy=dy, y=y, dx=x.grad, weight_g=layer.weight_g, weight_v=layer.weight_v,
                   weight=layer.weight, dweight_v=layer.weight_v.grad)
    if trainable_g:
        tensors["dweight_g"] = layer.weight_g.grad
    else:
        assert layer.weight_g.grad is None
    save(rel, tensors, meta={"trainable_g": str(trainable_g).lower()}, seed=s)


def main():
    op_l2_normalize()
    op_soft_target_ce()
    op_weight_norm_linear("ops/weight_norm_linear.safetensors", True, 103)
    op_weight_norm_linear("ops/weight_norm_linear_frozen.safetensors", False, 104)
    WRITER.check()


if __name__ == "__main__":
    main()
