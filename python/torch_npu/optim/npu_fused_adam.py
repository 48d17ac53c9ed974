"""NpuFusedAdam: torch.optim.Adam (L2 weight decay, AMSGrad) over combined buffers, one
`_fused_adam_` launch per param group and dtype."""
import torch

from ._checks import check_betas, check_nonnegative
from .npu_fused_optim_base import NpuFusedOptimizerBase

__all__ = ["NpuFusedAdam"]


class NpuFusedAdam(NpuFusedOptimizerBase):
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False):
        check_nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        check_betas(betas)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad))

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("amsgrad", False)

    def _state_names(self, group):
        return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if group["amsgrad"] else [])

    def _slice_step(self, group, s):
        # The kernel reads the step count on the stream, from a device scalar.
        if "step_tensor" not in s.state:
            s.state["step_tensor"] = torch.zeros((), dtype=torch.float32, device=s.param.device)
        s.state["step_tensor"].fill_(s.step)
        beta1, beta2 = group["betas"]
        fused = torch._fused_adamw_ if self._decoupled else torch._fused_adam_
        fused([s.param], [s.grad], [s.state["exp_avg"]], [s.state["exp_avg_sq"]],
              [s.state["max_exp_avg_sq"]] if group["amsgrad"] else [], [s.state["step_tensor"]],
              lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
              amsgrad=group["amsgrad"], maximize=False)
