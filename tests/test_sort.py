"""sort / argsort / topk on npu against PyTorch CPU: dtypes, dims, NaN, ties (stable),
non-contiguous, 0-dim and empty, out=, backward, bad k."""
import pytest
import torch

import torch_npu  # noqa: F401
from helpers import DTYPES, check, make, no_fallback  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_fallback")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("descending", [False, True])
def test_sort_stable(dtype, descending):
    x = make((6, 9), dtype, 1)  # integer data has ties: stable order decides the indices
    for dim in (0, 1, -1):
        a = torch.sort(x, dim=dim, descending=descending, stable=True)
        b = torch.sort(x.npu(), dim=dim, descending=descending, stable=True)
        check(b.values, a.values)
        check(b.indices, a.indices)
    check(torch.argsort(x.t().npu(), dim=1, descending=descending, stable=True), torch.argsort(x.t(), dim=1, descending=descending, stable=True))


def test_sort_nan_scalar_empty_out_and_backward():
    x = torch.tensor([1.0, float("nan"), -2.0, float("inf"), 3.0])
    for d in (False, True):
        check(torch.sort(x.npu(), descending=d).values, torch.sort(x, descending=d).values)
        check(torch.sort(x.npu(), descending=d).indices, torch.sort(x, descending=d).indices)
    s = torch.tensor(2.5)
    check(torch.sort(s.npu()).values, torch.sort(s).values)
    e = torch.empty(0, 3)
    check(torch.sort(e.npu(), dim=0).indices, torch.sort(e, dim=0).indices)
    v, i = torch.empty(0).npu(), torch.empty(0, dtype=torch.long).npu()
    torch.sort(x.npu(), out=(v, i))
    check(v, torch.sort(x).values)
    y = make((4, 5), torch.float32, 2)
    a, an = y.clone().requires_grad_(), y.npu().requires_grad_()
    (torch.sort(a, 1).values * torch.arange(5.0)).sum().backward()
    (torch.sort(an, 1).values * torch.arange(5.0).npu()).sum().backward()
    check(an.grad, a.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int32, torch.int64])
@pytest.mark.parametrize("largest", [True, False])
def test_topk(dtype, largest):
    x = torch.randperm(60, generator=torch.Generator().manual_seed(3)).reshape(6, 10).to(dtype)  # no ties
    for dim, k in ((1, 3), (0, 2), (1, 10), (1, 0)):
        a, b = torch.topk(x, k, dim=dim, largest=largest), torch.topk(x.npu(), k, dim=dim, largest=largest)
        check(b.values, a.values)
        check(b.indices, a.indices)


def test_topk_backward_out_and_bad_k():
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(4))
    a, an = x.clone().requires_grad_(), x.npu().requires_grad_()
    torch.topk(a, 2).values.sum().backward()
    torch.topk(an, 2).values.sum().backward()
    check(an.grad, a.grad)
    v, i = torch.empty(0).npu(), torch.empty(0, dtype=torch.long).npu()
    torch.topk(x.npu(), 3, out=(v, i))
    check(v, torch.topk(x, 3).values)
    with pytest.raises(RuntimeError, match="out of range"):
        torch.topk(x.npu(), 9)
    check(x.npu() + 1, x + 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.int64, torch.int32, torch.float16, torch.uint8])
def test_isin(dtype):
    x = make((4, 6), dtype, 1)
    t = make((7,), dtype, 2)
    for invert in (False, True):
        check(torch.isin(x.npu(), t.npu(), invert=invert), torch.isin(x, t, invert=invert))
        check(torch.isin(x.npu(), 3, invert=invert), torch.isin(x, 3, invert=invert))
    check(torch.isin(x.t().npu(), t.npu()), torch.isin(x.t(), t))
    check(torch.isin(x.npu(), t[2]), torch.isin(x, t[2]))  # a 0-dim test tensor on the host
    nan = torch.tensor([float("nan"), 1.0, -0.0])
    check(torch.isin(nan.npu(), torch.tensor([float("nan"), 0.0]).npu()), torch.isin(nan, torch.tensor([float("nan"), 0.0])))
    out = torch.empty(0, dtype=torch.bool).npu()
    torch.isin(x.npu(), t.npu(), out=out)
    check(out, torch.isin(x, t))
