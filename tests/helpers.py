"""Helpers shared by the op tests: sample data, comparison with CPU, the no-fallback fixture."""
import re

import pytest
import torch

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.uint8,
          torch.int16, torch.int32, torch.int64, torch.bool]
FLOATS = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


def without_device(text):
    """A tensor's repr without its device suffix, whitespace normalised (the suffix wraps)."""
    return re.sub(r"\s+", " ", re.sub(r",\s*device='npu:0'", "", text))


def make(shape, dtype, seed=0, positive=False):
    """Reproducible sample data of `dtype`: floats ~N(0, 16), integers in [-20, 20)."""
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.rand(shape, generator=g) > 0.5
    if dtype.is_floating_point:
        x = torch.randn(shape, generator=g) * 4
        return (x.abs() + 0.1 if positive else x).to(dtype)
    lo = 1 if positive else (0 if dtype == torch.uint8 else -20)
    return torch.randint(lo, 20, shape, generator=g, dtype=dtype)


def check(npu_result, cpu_result, **tol):
    """The npu result lives on npu, has CPU's dtype and matches CPU's values."""
    assert npu_result.device.type == "npu"
    assert npu_result.dtype == cpu_result.dtype
    torch.testing.assert_close(npu_result.cpu(), cpu_result, equal_nan=True, **tol)


@pytest.fixture
def no_fallback(monkeypatch):
    """Ops under test must run natively: the CPU fallback would hide a missing kernel."""
    monkeypatch.setenv("TORCH_NPU_FALLBACK_CPU_DISABLE", "1")
