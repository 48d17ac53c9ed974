"""NpuFusedRMSprop: torch.optim.RMSprop (momentum, centered, weight decay) over combined buffers."""
from ._checks import check_nonnegative
from .npu_fused_optim_base import NpuFusedOptimizerBase

__all__ = ["NpuFusedRMSprop"]


class NpuFusedRMSprop(NpuFusedOptimizerBase):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False):
        check_nonnegative(lr=lr, eps=eps, momentum=momentum, weight_decay=weight_decay, alpha=alpha)
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered, weight_decay=weight_decay)
        super().__init__(params, defaults)

    def _state_names(self, group):
        return (["square_avg"] + (["momentum_buffer"] if group["momentum"] > 0 else [])
                + (["grad_avg"] if group["centered"] else []))

    def _slice_step(self, group, s):
        grad, alpha = s.grad, group["alpha"]
        if group["weight_decay"] != 0:
            grad = grad.add(s.param, alpha=group["weight_decay"])
        square_avg = s.state["square_avg"]
        square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
        if group["centered"]:
            grad_avg = s.state["grad_avg"]
            grad_avg.lerp_(grad, 1 - alpha)
            avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_().add_(group["eps"])
        else:
            avg = square_avg.sqrt().add_(group["eps"])
        if group["momentum"] > 0:
            buf = s.state["momentum_buffer"]
            buf.mul_(group["momentum"]).addcdiv_(grad, avg)
            s.param.add_(buf, alpha=-group["lr"])
        else:
            s.param.addcdiv_(grad, avg, value=-group["lr"])
