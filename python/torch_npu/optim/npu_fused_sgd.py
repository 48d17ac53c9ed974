"""NpuFusedSGD: torch.optim.SGD (momentum, dampening, Nesterov, weight decay) over combined
buffers, one `_fused_sgd_` launch per param group and dtype."""
import torch
from torch.optim.optimizer import required

from ._checks import check_nonnegative
from .npu_fused_optim_base import NpuFusedOptimizerBase

__all__ = ["NpuFusedSGD"]


class NpuFusedSGD(NpuFusedOptimizerBase):
    _tracks_step = False

    def __init__(self, params, lr=required, momentum=0, dampening=0, weight_decay=0, nesterov=False):
        if lr is not required:
            check_nonnegative(lr=lr)
        check_nonnegative(momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("nesterov", False)

    def _state_names(self, group):
        return ["momentum_buffer"] if group["momentum"] != 0 else []

    def _slice_step(self, group, s):
        buf = [s.state["momentum_buffer"]] if group["momentum"] != 0 else []
        torch._fused_sgd_([s.param], [s.grad], buf, weight_decay=group["weight_decay"], momentum=group["momentum"],
                          lr=group["lr"], dampening=group["dampening"], nesterov=group["nesterov"], maximize=False,
                          is_first_step=s.first)
        s.first = False
