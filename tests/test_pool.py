"""Pooling on npu against PyTorch CPU: max (with indices), average and adaptive average,
1d/2d/3d, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override,
channels-last and unbatched inputs, forward and backward."""
import pytest
import torch
import torch.nn.functional as F

import torch_npu  # noqa: F401
from helpers import check, make, no_fallback  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_fallback")


def run(fn, x, dtype=torch.float32, **tol):
    x = x.to(dtype)
    a, an = x.clone().requires_grad_(), x.npu().requires_grad_()
    y, yn = fn(a), fn(an)
    ys, yns = (y, yn) if isinstance(y, tuple) else ((y,), (yn,))
    for u, un in zip(ys, yns):
        check(un, u, **tol)
    g = make(ys[0].shape, dtype, 9)
    ys[0].backward(g)
    yns[0].backward(g.npu())
    check(an.grad, a.grad, **tol)


MAX = [
    (lambda t: F.max_pool2d(t, 2), (2, 3, 8, 8)),
    (lambda t: F.max_pool2d(t, 3, stride=2, padding=1, return_indices=True), (2, 3, 9, 7)),
    (lambda t: F.max_pool2d(t, (3, 2), stride=(2, 1), dilation=(2, 1), ceil_mode=True, return_indices=True), (1, 2, 11, 6)),
    (lambda t: F.max_pool2d(t, 2, ceil_mode=True), (3, 7, 7)),
    (lambda t: F.max_pool1d(t, 3, stride=2, padding=1), (2, 4, 10)),
    (lambda t: F.max_pool3d(t, 2, stride=1, padding=1, return_indices=True), (1, 2, 4, 5, 3)),
]


@pytest.mark.parametrize("case", range(len(MAX)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_max_pool(case, dtype):
    fn, shape = MAX[case]
    # overlapping windows add several gradients into one input: CPU rounds each addition to
    # bf16, the npu adds in f32 and rounds once
    tol = dict(atol=5e-2, rtol=3e-2) if dtype == torch.bfloat16 else {}
    run(fn, make(shape, torch.float32, case), dtype, **tol)


def test_max_pool_nan_ties_and_channels_last():
    x = torch.tensor([[[[1.0, float("nan"), 2.0, 2.0], [0.0, 1.0, 2.0, 2.0]]]])
    check(F.max_pool2d(x.npu(), 2, return_indices=True)[1], F.max_pool2d(x, 2, return_indices=True)[1])
    check(F.max_pool2d(x.npu(), 2), F.max_pool2d(x, 2))
    run(lambda t: F.max_pool2d(t, 2), make((2, 3, 6, 6), torch.float32, 1).to(memory_format=torch.channels_last))


AVG = [
    (lambda t: F.avg_pool2d(t, 2), (2, 3, 8, 8)),
    (lambda t: F.avg_pool2d(t, 3, stride=2, padding=1), (2, 3, 9, 7)),
    (lambda t: F.avg_pool2d(t, 3, stride=2, padding=1, count_include_pad=False, ceil_mode=True), (2, 3, 9, 7)),
    (lambda t: F.avg_pool2d(t, 2, divisor_override=3), (1, 2, 6, 6)),
    (lambda t: F.avg_pool1d(t, 3, stride=2, padding=1), (2, 4, 10)),
    (lambda t: F.avg_pool3d(t, 2, stride=1, padding=1), (1, 2, 4, 5, 3)),
    (lambda t: F.adaptive_avg_pool2d(t, (3, 2)), (2, 3, 7, 5)),
    (lambda t: F.adaptive_avg_pool2d(t, 1), (2, 3, 7, 5)),
    (lambda t: F.adaptive_avg_pool1d(t, 4), (2, 3, 10)),
    (lambda t: F.adaptive_avg_pool3d(t, (2, 2, 3)), (1, 2, 5, 4, 7)),
]


@pytest.mark.parametrize("case", range(len(AVG)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_avg_pool(case, dtype):
    fn, shape = AVG[case]
    if dtype == torch.bfloat16 and len(shape) == 5 and case == 5:
        pytest.skip("PyTorch CPU has no bf16 avg_pool3d to compare with")
    tol = dict(atol=2e-2, rtol=2e-2) if dtype == torch.bfloat16 else {}
    run(fn, make(shape, torch.float32, case), dtype, **tol)


def test_pool_errors():
    x = torch.randn(1, 2, 3, 3, device="npu")
    with pytest.raises(RuntimeError, match="pad should be at most half"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(RuntimeError, match="too small|Output size"):
        F.max_pool2d(x, 5)
    with pytest.raises(RuntimeError, match="not implemented for 'Bool'"):
        F.max_pool2d(torch.ones(1, 1, 4, 4, dtype=torch.bool, device="npu"), 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("shape,size", [((2, 3, 7, 5), (3, 2)), ((3, 10), 4), ((1, 2, 5, 4, 7), (2, 2, 3)), ((2, 3, 6, 6), 1)])
def test_adaptive_max_pool(dtype, shape, size):
    # spatial dims: the size tuple's length, else all but (N, C) of a batched input
    nd = len(size) if isinstance(size, tuple) else len(shape) - (1 if len(shape) == 2 else 2)
    fn = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}[nd]
    run(lambda t: fn(t, size, return_indices=True), make(shape, torch.float32, 3), dtype)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.int8])
def test_integer_pooling(dtype):
    x = make((2, 3, 6, 7), dtype, 1)
    check(F.max_pool2d(x.npu(), 3, stride=2, padding=1), F.max_pool2d(x, 3, stride=2, padding=1))
    check(F.max_pool2d(x.npu(), 2, return_indices=True)[1], F.max_pool2d(x, 2, return_indices=True)[1])
    if dtype == torch.int64:
        check(F.avg_pool2d(x.npu(), 3, stride=2, padding=1), F.avg_pool2d(x, 3, stride=2, padding=1))
    else:
        with pytest.raises(RuntimeError, match="not implemented"):
            F.avg_pool2d(x.npu(), 2)
