"""Data-dependent ops on npu against PyTorch CPU: repeat_interleave, bincount, histc,
searchsorted, bucketize, unique / unique_consecutive (flat and along a dim), linspace and
logspace; with their errors."""
import math

import pytest
import torch

import torch_npu  # noqa: F401
from helpers import FLOATS, check, make, no_fallback  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_fallback")


def same(fn, *args, **tol):
    cpu = fn(*args)
    npu = fn(*[a.npu() if isinstance(a, torch.Tensor) else a for a in args])
    cpu, npu = (cpu, npu) if isinstance(cpu, tuple) else ((cpu,), (npu,))
    assert len(cpu) == len(npu)
    for c, n in zip(cpu, npu):
        check(n, c, **tol)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32])
def test_repeat_interleave(dtype):
    r = torch.tensor([2, 0, 3, 1], dtype=dtype)
    same(torch.repeat_interleave, r)
    x = make((4, 3), torch.float32)
    same(lambda x, r: torch.repeat_interleave(x, r, dim=0), x, r)
    same(lambda x, r: torch.repeat_interleave(x, r[:3], dim=1), x, r)
    same(lambda r: torch.repeat_interleave(r, output_size=6), r)
    same(torch.repeat_interleave, torch.tensor([], dtype=dtype))


def test_repeat_interleave_errors():
    with pytest.raises(RuntimeError, match="negative"):
        torch.repeat_interleave(torch.tensor([1, -1]).npu())
    with pytest.raises(RuntimeError, match="does not match"):
        torch.repeat_interleave(torch.tensor([1, 2]).npu(), output_size=4)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.int8])
def test_bincount(dtype):
    x = torch.tensor([3, 1, 1, 7, 0, 3, 3], dtype=dtype)
    same(torch.bincount, x)
    same(lambda x: torch.bincount(x, minlength=12), x)
    for w in [torch.linspace(-1, 2, 7), torch.arange(7, dtype=torch.float64), torch.arange(7, dtype=torch.int32)]:
        same(torch.bincount, x, w)
    same(torch.bincount, torch.tensor([], dtype=dtype))


def test_bincount_errors():
    with pytest.raises(RuntimeError, match="non-negative"):
        torch.bincount(torch.tensor([1, -2]).npu())
    with pytest.raises(RuntimeError, match="same length"):
        torch.bincount(torch.tensor([1, 2]).npu(), torch.ones(3).npu())
    assert torch.bincount(torch.tensor([2]).npu()).tolist() == [0, 0, 1]


@pytest.mark.parametrize("dtype", FLOATS)
def test_histc(dtype):
    x = make((1000,), torch.float32).to(dtype)
    same(torch.histc, x)
    same(lambda x: torch.histc(x, bins=7, min=-3, max=5), x)
    same(lambda x: torch.histc(x, bins=4, min=0, max=0), torch.full((5,), 2.0, dtype=dtype))
    same(lambda x: torch.histc(x, bins=6, min=-1, max=1), torch.tensor([-1, -0.5, 0, 0.5, 1, float("nan"), 3], dtype=dtype))


def test_histc_errors():
    with pytest.raises(RuntimeError, match="not finite"):
        torch.histc(torch.tensor([1.0, float("inf")]).npu()).cpu()
    with pytest.raises(RuntimeError, match="larger than min"):
        torch.histc(torch.ones(3).npu(), min=2, max=1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64, torch.int64, torch.int32, torch.uint8])
def test_searchsorted_and_bucketize(dtype):
    seq = torch.tensor([0, 1, 1, 3, 5, 5, 9], dtype=dtype)
    v = torch.tensor([[0, 1, 2], [5, 9, 10]], dtype=dtype)
    for right in [False, True]:
        same(lambda s, v: torch.searchsorted(s, v, right=right), seq, v)
        same(lambda v, s: torch.bucketize(v, s, right=right, out_int32=True), v, seq)
    rows = torch.tensor([[0, 2, 4], [1, 3, 5]], dtype=dtype)
    same(lambda s, v: torch.searchsorted(s, v, side="right"), rows, v)
    perm = torch.tensor([2, 0, 1])
    same(lambda s, v, p: torch.searchsorted(s, v, sorter=p.expand(2, 3).contiguous()), rows[:, [1, 2, 0]].contiguous(), v, perm)
    same(lambda s: torch.searchsorted(s, 3), seq)
    same(lambda s: torch.bucketize(4, s), seq)


def test_searchsorted_nan_noncontiguous_and_errors():
    seq = torch.tensor([-1.0, 0.0, 2.0, float("nan")])
    v = torch.tensor([float("nan"), 1.0, -5.0, 2.0])
    same(torch.searchsorted, seq, v)
    same(lambda s, v: torch.searchsorted(s, v, right=True), seq, v)
    big = torch.arange(20.0).reshape(4, 5)
    same(lambda s, v: torch.searchsorted(s, v), big.t().contiguous(), big.t() + 0.5)
    with pytest.raises(RuntimeError, match="opposites"):
        torch.searchsorted(seq.npu(), v.npu(), right=True, side="left")
    with pytest.raises(RuntimeError, match="first N-1 dimensions"):
        torch.searchsorted(torch.zeros(2, 3).npu(), torch.zeros(3, 3).npu())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.int64, torch.uint8, torch.bool])
def test_unique(dtype):
    x = make((6, 5), torch.float32).div(3).round().to(dtype)
    for inv in [False, True]:
        for cnt in [False, True]:
            same(lambda x: torch.unique(x, return_inverse=inv, return_counts=cnt), x)
            same(lambda x: torch.unique_consecutive(x, return_inverse=inv, return_counts=cnt), x)
    for dim in [0, 1, -1]:
        same(lambda x: torch.unique(x, dim=dim, return_inverse=True, return_counts=True), x)
        same(lambda x: torch.unique_consecutive(x, dim=dim, return_inverse=True, return_counts=True), x)
    same(lambda x: torch.unique(x, dim=0), torch.cat([x, x[:2]]))
    same(torch.unique, x.t())
    same(torch.unique, torch.empty(0, dtype=dtype))


def test_unique_nan_and_large_int64():
    x = torch.tensor([2.0, float("nan"), 1.0, float("nan"), 2.0])
    same(lambda x: torch.unique(x, return_inverse=True, return_counts=True), x)
    big = torch.tensor([2**62 + 1, 2**62, 2**62 + 1, -(2**62)])
    same(lambda x: torch.unique(x, return_counts=True), big)


@pytest.mark.parametrize("dtype", FLOATS + [torch.int64, torch.int32, torch.uint8, torch.int8])
def test_linspace_logspace(dtype):
    for start, end, steps in [(0, 10, 5), (-3.5, 7.25, 33), (5, -5, 11), (2, 2, 1), (0, 1, 0), (1, 1000, 1000)]:
        if dtype in (torch.uint8, torch.int8) and (min(start, end) < 0 or end > 127):
            if dtype == torch.uint8 and end > 255:
                with pytest.raises(RuntimeError, match="overflow"):
                    torch.linspace(start, end, steps, dtype=dtype, device="npu")
            continue
        check(torch.linspace(start, end, steps, dtype=dtype, device="npu"), torch.linspace(start, end, steps, dtype=dtype))
        if dtype.is_floating_point:
            check(torch.logspace(start / 10, end / 100, steps, base=2, dtype=dtype, device="npu"),
                  torch.logspace(start / 10, end / 100, steps, base=2, dtype=dtype))
    out = torch.empty(3, dtype=dtype, device="npu")
    torch.linspace(0, 4, 9, out=out)
    check(out, torch.linspace(0, 4, 9, dtype=dtype))
    with pytest.raises(RuntimeError, match="non-negative"):
        torch.linspace(0, 1, -1, device="npu")
    assert math.isclose(torch.linspace(0, 1, 3, device="npu")[1].item(), 0.5)
