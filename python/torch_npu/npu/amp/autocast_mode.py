"""``torch.npu.amp.autocast``: ``torch.autocast("npu")`` with torch_npu's default dtype."""
import functools

import torch

__all__ = ["autocast", "custom_fwd", "custom_bwd"]


class autocast(torch.amp.autocast_mode.autocast):
    """``torch.npu.amp.autocast(...)`` is ``torch.autocast("npu", ...)``; float16 by default."""

    def __init__(self, enabled: bool = True, dtype: torch.dtype = torch.float16, cache_enabled: bool = True):
        super().__init__("npu", enabled=enabled, dtype=dtype, cache_enabled=cache_enabled)


def custom_fwd(fwd=None, *, cast_inputs=None):
    """``torch.amp.custom_fwd(..., device_type="npu")``, for custom autograd functions."""
    return functools.partial(torch.amp.custom_fwd, device_type="npu")(fwd=fwd, cast_inputs=cast_inputs)


def custom_bwd(bwd):
    """``torch.amp.custom_bwd(..., device_type="npu")``, for custom autograd functions."""
    return functools.partial(torch.amp.custom_bwd, device_type="npu")(bwd)
