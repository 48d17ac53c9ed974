"""NpuFusedLamb: LAMB (You et al., "Large Batch Optimization for Deep Learning") with
torch_npu's formulas, over combined buffers:

    g      = grad / max(global_grad_norm, 1)            (with use_global_grad_norm)
    m      = beta1 m + (1 - beta1) g
    v      = beta2 v + (1 - beta2) g^2
    u      = m / (sqrt(v) + eps) + weight_decay p       (no bias correction)
    trust  = clamp(|p|, 0, 10) / |u| per parameter       (1 when either norm is 0, or adam=True)
    p     -= lr trust u

Nothing here waits for the device: the norms stay on it."""
import torch

from ._checks import check_betas, check_nonnegative
from .npu_fused_optim_base import NpuFusedOptimizerBase

__all__ = ["NpuFusedLamb"]


class NpuFusedLamb(NpuFusedOptimizerBase):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0, adam=False,
                 use_global_grad_norm=False):
        check_nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        check_betas(betas)
        self.adam = adam
        self.use_global_grad_norm = use_global_grad_norm
        self.global_grad_norm = None
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _state_names(self, group):
        return ["exp_avg", "exp_avg_sq"]

    def _prepare_step(self):
        if self.use_global_grad_norm:
            grads = [g for g in self.grads_all_group_combined if g is not None]
            if not grads:
                return
            norms = torch.stack([torch.linalg.vector_norm(g, dtype=torch.float32) for g in grads])
            self.global_grad_norm = torch.linalg.vector_norm(norms)

    def _slice_step(self, group, s):
        beta1, beta2 = group["betas"]
        grad = s.grad
        if self.use_global_grad_norm and self.global_grad_norm is not None:
            grad = grad / self.global_grad_norm.clamp(min=1.0).to(grad.dtype)
        exp_avg, exp_avg_sq = s.state["exp_avg"], s.state["exp_avg_sq"]
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        update = exp_avg / exp_avg_sq.sqrt().add_(group["eps"])
        if group["weight_decay"] != 0:
            update.add_(s.param, alpha=group["weight_decay"])
        if not self.adam:
            sizes = [p.numel() for p in s.params]
            weight_norms = torch.stack(torch._foreach_norm(list(s.param.split(sizes)))).clamp(0, 10)
            update_norms = torch.stack(torch._foreach_norm(list(update.split(sizes))))
            trust = torch.where((weight_norms == 0) | (update_norms == 0), 1.0, weight_norms / update_norms)
            torch._foreach_mul_(list(update.split(sizes)), list(trust.to(update.dtype).unbind()))
        s.param.add_(update, alpha=-group["lr"])
