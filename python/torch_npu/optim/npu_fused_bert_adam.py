"""NpuFusedBertAdam: BERT's Adam (no bias correction, decoupled weight decay, per-buffer gradient
clipping, warm-up schedules) with torch_npu's formulas, over combined buffers:

    g   = grad * min(1, max_grad_norm / (|grad| + 1e-6))      (with max_grad_norm > 0)
    m   = b1 m + (1 - b1) g
    v   = b2 v + (1 - b2) g^2
    u   = m / (sqrt(v) + e) + weight_decay p
    p  -= lr schedule((step - 1) / t_total, warmup) u       (lr alone when t_total is -1)

The clipping norm is that of the param group's gradients of one dtype, as in torch_npu."""
import math

import torch
from torch.optim.optimizer import required

from ._checks import check_nonnegative
from .npu_fused_optim_base import NpuFusedOptimizerBase

__all__ = ["NpuFusedBertAdam"]


def _warmup_cosine(x, warmup=0.002):
    return x / warmup if x < warmup else 0.5 * (1.0 + math.cos(math.pi * x))


def _warmup_constant(x, warmup=0.002):
    return x / warmup if x < warmup else 1.0


def _warmup_linear(x, warmup=0.002):
    return x / warmup if x < warmup else max((x - 1.0) / (warmup - 1.0), 0.0)


def _warmup_poly(x, warmup=0.002, degree=0.5):
    return x / warmup if x < warmup else (1.0 - x) ** degree


SCHEDULES = {
    "warmup_cosine": _warmup_cosine,
    "warmup_constant": _warmup_constant,
    "warmup_linear": _warmup_linear,
    "warmup_poly": _warmup_poly,
}


class NpuFusedBertAdam(NpuFusedOptimizerBase):
    def __init__(self, params, lr=required, warmup=-1, t_total=-1, schedule="warmup_linear", b1=0.9, b2=0.999,
                 e=1e-6, weight_decay=0.01, max_grad_norm=1.0):
        if lr is not required:
            check_nonnegative(lr=lr)
        if schedule not in SCHEDULES:
            raise ValueError(f"Invalid schedule parameter: {schedule}")
        if not 0.0 <= warmup < 1.0 and warmup != -1:
            raise ValueError(f"Invalid warmup: {warmup} - should be in [0.0, 1.0[ or -1")
        for i, b in enumerate((b1, b2)):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"Invalid b{i + 1} parameter: {b} - should be in [0.0, 1.0[")
        check_nonnegative(eps=e)
        self.max_grad_norm = max_grad_norm
        super().__init__(params, dict(lr=lr, schedule=schedule, warmup=warmup, t_total=t_total, b1=b1, b2=b2, e=e,
                                      weight_decay=weight_decay, max_grad_norm=max_grad_norm))

    def _state_names(self, group):
        return ["exp_avg", "exp_avg_sq"]

    def _slice_step(self, group, s):
        beta1, beta2 = group["b1"], group["b2"]
        grad = s.grad
        if self.max_grad_norm > 0:
            norm = torch.linalg.vector_norm(grad, dtype=torch.float32)
            grad.mul_((self.max_grad_norm / (norm + 1e-6)).clamp(max=1.0))
        exp_avg, exp_avg_sq = s.state["exp_avg"], s.state["exp_avg_sq"]
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        update = exp_avg / exp_avg_sq.sqrt().add_(group["e"])
        if group["weight_decay"] > 0.0:
            update.add_(s.param, alpha=group["weight_decay"])
        lr = group["lr"]
        if group["t_total"] != -1:
            lr *= SCHEDULES[group["schedule"]]((s.step - 1) / group["t_total"], group["warmup"])
        s.param.add_(update, alpha=-lr)
