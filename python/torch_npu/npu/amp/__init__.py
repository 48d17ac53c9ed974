"""torch.npu.amp: mixed precision on the npu, laid out like torch.cuda.amp and torch_npu's."""
from .autocast_mode import autocast, custom_bwd, custom_fwd
from .grad_scaler import GradScaler

__all__ = ["autocast", "GradScaler", "custom_fwd", "custom_bwd"]
