"""torch.npu.config: backend switches, as torch_npu names them."""
import sys
import types

import torch

__all__ = ["allow_internal_format"]


class _Config(types.ModuleType):
    @property
    def allow_internal_format(self) -> bool:
        """Whether tensors may take private storage formats (npu_format_cast to NC1HWC0,
        FRACTAL_NZ, ...). Off by default, as in torch_npu on Atlas A2: casts then keep the
        base format."""
        return torch.ops.npu._internal_format_allowed()

    @allow_internal_format.setter
    def allow_internal_format(self, value: bool) -> None:
        torch.ops.npu._set_internal_format_allowed(bool(value))


sys.modules[__name__].__class__ = _Config
