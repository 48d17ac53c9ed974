"""torch.npu's autocast queries (torch_npu's names): the state of ``torch.autocast("npu")``
in the current thread. The per-op cast policy is PyTorch's, registered by the native module."""
import torch

__all__ = ["get_amp_supported_dtype", "is_autocast_enabled", "set_autocast_enabled", "get_autocast_dtype",
           "set_autocast_dtype"]


def get_amp_supported_dtype() -> list:
    """The lower-precision dtypes ``torch.autocast("npu")`` accepts (PyTorch asks the device
    module for them)."""
    return [torch.float16, torch.bfloat16]


def is_autocast_enabled() -> bool:
    return torch.is_autocast_enabled("npu")


def set_autocast_enabled(enable: bool) -> None:
    torch.set_autocast_enabled("npu", enable)


def get_autocast_dtype() -> torch.dtype:
    """The dtype autocast lowers to on the npu (float16 unless set otherwise)."""
    return torch.get_autocast_dtype("npu")


def set_autocast_dtype(dtype: torch.dtype) -> None:
    if dtype not in get_amp_supported_dtype():
        raise ValueError(f"torch.npu.set_autocast_dtype: autocast on the npu supports {get_amp_supported_dtype()}, "
                         f"got {dtype}")
    torch.set_autocast_dtype("npu", dtype)
