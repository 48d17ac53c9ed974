"""Device-argument handling shared by torch.npu's functions."""
from typing import Any

import torch

from .. import _C


def _get_device_index(device: Any, optional: bool = False) -> int:
    """Index of ``device`` (int, str, torch.device, or None for the current device)."""
    if device is None:
        if optional:
            return _C.current_device()
        raise ValueError("Expected an npu device, but got None")
    if isinstance(device, int):
        idx = device
    else:
        if hasattr(device, "idx"):  # torch.npu.device
            return device.idx
        if isinstance(device, str):
            device = torch.device(device)
        if not isinstance(device, torch.device):
            raise TypeError(f"Expected an npu device, but got {type(device).__name__}: {device!r}")
        if device.type != "npu":
            raise ValueError(f"Expected an npu device, but got: {device}")
        if device.index is None:
            if optional:
                return _C.current_device()
            raise ValueError(f"Expected an npu device with an index, but got: {device}")
        idx = device.index
    return idx


def _checked_index(device: Any = None) -> int:
    """Like _get_device_index(optional=True), and raises if the device does not exist."""
    idx = _get_device_index(device, optional=True)
    _C.check_device(idx)
    return idx
