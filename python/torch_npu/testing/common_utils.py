"""Inputs and skips for npu operator tests, with torch_npu's semantics: ``create_common_tensor``
makes a CPU tensor and its npu twin (optionally cast to an npu storage format) from NumPy
random data."""
import functools
import os
import unittest
from contextlib import contextmanager
from itertools import product
from typing import List

import numpy as np
import torch

import torch_npu

__all__ = ["freeze_rng_state", "iter_indices", "is_iterable", "set_npu_device", "get_npu_device",
           "create_common_tensor", "create_dtype_tensor", "test_2args_broadcast", "check_operators_in_prof",
           "SkipIfNoLapack", "SupportedDevices"]


@contextmanager
def freeze_rng_state():
    state = torch.get_rng_state()
    try:
        yield
    finally:
        torch.set_rng_state(state)


def iter_indices(tensor):
    """Every index of ``tensor``: ints for 1-D, tuples for more dims, none for 0-dim."""
    if tensor.dim() == 0:
        return range(0)
    if tensor.dim() == 1:
        return range(tensor.size(0))
    return product(*(range(s) for s in tensor.size()))


def is_iterable(obj) -> bool:
    try:
        iter(obj)
        return True
    except TypeError:
        return False


def get_npu_device() -> str:
    """``npu:<SET_NPU_DEVICE>`` (``npu:0`` when unset)."""
    index = os.environ.get("SET_NPU_DEVICE")
    return "npu:0" if index is None else f"npu:{index}"


def set_npu_device() -> str:
    device = get_npu_device()
    torch.npu.set_device(device)
    return device


def _to_npu(cpu: torch.Tensor, npu_format, device):
    npu = cpu.to(device)
    if npu_format != -1:
        npu = torch_npu.npu_format_cast(npu, npu_format)
    return npu


def create_common_tensor(item, minValue, maxValue, device=None):
    """``item = [numpy dtype, npu format (-1: none), shape]``: uniform random values in
    [minValue, maxValue) (drawn in float64, so rounding to a narrow dtype can reach maxValue)
    as a CPU tensor and the same values on the npu."""
    dtype, npu_format, shape = item[0], item[1], item[2]
    data = np.random.uniform(minValue, maxValue, shape).astype(dtype)
    return torch.from_numpy(data), _to_npu(torch.from_numpy(data), npu_format, device or get_npu_device())


def create_dtype_tensor(shape, dtype, npu_format=-1, min_value=-5, max_value=5, no_zero=False, device=None):
    """A CPU tensor and its npu twin of a torch dtype: bools at random, floats uniform in
    [min_value, max_value), other dtypes int32 integers in [min_value, max_value]; zeros
    replaced by ones with ``no_zero``. The format applies to float and half tensors only."""
    if dtype == torch.bool:
        data = np.random.randint(0, 2, size=shape).astype(bool)
    elif dtype == torch.half:
        data = np.random.uniform(min_value, max_value, shape).astype(np.float16)
    elif dtype == torch.float:
        data = np.random.uniform(min_value, max_value, shape).astype(np.float32)
    else:
        data = np.random.randint(min_value, max_value + 1, size=shape).astype(np.int32)
    if no_zero:
        data = np.where(data != 0, data, np.ones_like(data))
    fmt = npu_format if dtype in (torch.float, torch.half) else -1
    return torch.from_numpy(data), _to_npu(torch.from_numpy(data), fmt, device or get_npu_device())


def _broadcast_cases(device):
    for x_shape, y_shape in (((2, 3, 4, 5), (1, 1, 1)), ((2, 3, 4, 5), (4, 5))):
        x = np.random.rand(*x_shape).astype(np.float32)
        y = np.random.rand(*y_shape).astype(np.float32)
        yield torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)


def test_2args_broadcast(fn):
    """``[[cpu result, npu result], ...]`` (NumPy arrays) of ``fn`` over two broadcasting cases."""
    return [[fn(cx, cy).numpy(), fn(nx, ny).to("cpu").numpy()] for cx, cy, nx, ny in _broadcast_cases(get_npu_device())]


test_2args_broadcast.__test__ = False  # a helper, not a pytest test


def check_operators_in_prof(expected_operators, prof, unexpected_operators=None):
    """True when the profile ``prof`` ran every expected operator and none of the unexpected
    ones (``cached_`` prefixes ignored)."""
    expected = list(expected_operators)
    unexpected = set(unexpected_operators or [])
    events = prof.key_averages()
    if not events:
        print("torch profiling is empty, please check it")
        return None
    for event in events:
        key = event.key.replace("cached_", "")
        if key in unexpected:
            return False
        if key in expected:
            expected.remove(key)
    return not expected


class SkipIfNoLapack:
    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if not torch._C.has_lapack:
                raise unittest.SkipTest("PyTorch compiled without Lapack")
            return fn(*args, **kwargs)
        return wrapper


class SupportedDevices:
    """Skips the test unless the SoC (``torch.npu.get_device_name``, as torch_npu abbreviates
    it: ``Ascend910B``, ``Ascend910_93``, ``Ascend950``...) is one of ``supported_devices``."""

    def __init__(self, supported_devices: List[str]) -> None:
        self.supported_devices = supported_devices

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(slf, *args, **kwargs):
            name = torch_npu.npu.get_device_name(0)
            short = name[:10]
            if short == "Ascend910_":
                short = name[:12]
            elif short.startswith("Ascend950"):
                short = name[:9]
            if short not in self.supported_devices:
                raise unittest.SkipTest(f"Only run on {self.supported_devices!r}, current device is {short}.")
            return fn(slf, *args, **kwargs)
        return wrapper
