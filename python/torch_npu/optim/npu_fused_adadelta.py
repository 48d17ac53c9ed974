"""NpuFusedAdadelta: torch.optim.Adadelta over combined buffers."""
from ._checks import check_nonnegative
from .npu_fused_optim_base import NpuFusedOptimizerBase

__all__ = ["NpuFusedAdadelta"]


class NpuFusedAdadelta(NpuFusedOptimizerBase):
    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0):
        check_nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay))

    def _state_names(self, group):
        return ["square_avg", "acc_delta"]

    def _slice_step(self, group, s):
        grad, rho, eps = s.grad, group["rho"], group["eps"]
        if group["weight_decay"] != 0:
            grad = grad.add(s.param, alpha=group["weight_decay"])
        square_avg, acc_delta = s.state["square_avg"], s.state["acc_delta"]
        square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
        std = square_avg.add(eps).sqrt_()
        delta = acc_delta.add(eps).sqrt_().div_(std).mul_(grad)
        acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)
        s.param.add_(delta, alpha=-group["lr"])
