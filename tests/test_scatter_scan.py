"""gather / scatter / scatter_add / scatter_reduce, cumsum / cumprod and flip on npu against
PyTorch CPU: forward, backward, dtypes, non-contiguous, 0-dim, empty, bad indices."""
import pytest
import torch

import torch_npu  # noqa: F401
from helpers import DTYPES, FLOATS, check, make, no_fallback  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_fallback")


def index(shape, bound, seed=0):
    return torch.randint(0, bound, shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_gather(dtype, dim):
    x = make((5, 6), dtype, 1)
    idx = index((3, 4), x.shape[dim], 2)
    check(torch.gather(x.npu(), dim, idx.npu()), torch.gather(x, dim, idx))
    # non-contiguous input and index
    xt, it = x.t(), index((4, 3), 5, 3).t()
    check(torch.gather(xt.npu(), dim, it.npu()), torch.gather(xt, dim, it))


def test_gather_zero_dim_empty_and_backward():
    x = torch.tensor(3.5)
    check(torch.gather(x.npu(), 0, torch.tensor(0).npu()), torch.gather(x, 0, torch.tensor(0)))
    e = torch.empty(0, 3, dtype=torch.long)
    check(torch.gather(torch.ones(2, 3).npu(), 0, e.npu()), torch.gather(torch.ones(2, 3), 0, e))
    x = make((4, 5), torch.float32, 4)
    idx = index((6, 5), 4, 5)  # repeated rows: gradients accumulate
    a, an = x.clone().requires_grad_(), x.npu().requires_grad_()
    torch.gather(a, 0, idx).pow(2).sum().backward()
    torch.gather(an, 0, idx.npu()).pow(2).sum().backward()
    check(an.grad, a.grad)


@pytest.mark.parametrize("dtype", DTYPES)
def test_scatter_src_value_and_add(dtype):
    x = make((4, 5), dtype, 1)
    src = make((3, 5), dtype, 2)
    # a permutation per column: scatter (assignment) has no duplicates to order
    idx = torch.stack([torch.randperm(4, generator=torch.Generator().manual_seed(c))[:3] for c in range(5)], 1)
    check(x.npu().scatter(0, idx.npu(), src.npu()), x.scatter(0, idx, src))
    check(x.npu().scatter(1, idx.t()[:4].contiguous().npu(), 1), x.scatter(1, idx.t()[:4].contiguous(), 1))
    y, yn = x.clone(), x.npu()
    dup = index((6, 5), 4, 7)
    src6 = make((6, 5), dtype, 8)
    if dtype != torch.bool:
        y.scatter_add_(0, dup, src6)
        yn.scatter_add_(0, dup.npu(), src6.npu())
        # 16-bit sums round at every step; CPU orders some of them differently (same error
        # against f64, different last bits)
        tol = {torch.float16: dict(atol=1e-2, rtol=1e-2), torch.bfloat16: dict(atol=0.25, rtol=2e-2)}.get(dtype, {})
        check(yn, y, **tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32])
@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce(dtype, reduce, include_self):
    x = make((5, 4), dtype, 1)
    src = make((7, 4), dtype, 2)
    if dtype.is_floating_point and reduce == "prod":
        x, src = x / 8, src / 8
    idx = index((7, 4), 5, 3)
    want = x.scatter_reduce(0, idx, src, reduce, include_self=include_self)
    got = x.npu().scatter_reduce(0, idx.npu(), src.npu(), reduce, include_self=include_self)
    tol = dict(atol=2e-2, rtol=2e-2) if dtype in (torch.float16, torch.bfloat16) else {}
    check(got, want, **tol)


def test_scatter_legacy_reduce_out_and_backward():
    x, src = make((4, 3), torch.float32, 1), make((4, 3), torch.float32, 2)
    idx = index((4, 3), 4, 5)
    for r in ("add", "multiply"):
        check(x.npu().scatter(0, idx.npu(), src.npu(), reduce=r), x.scatter(0, idx, src, reduce=r))
    out = torch.empty(4, 3).npu()
    torch.scatter_add(x.npu(), 0, idx.npu(), src.npu(), out=out)
    check(out, torch.scatter_add(x, 0, idx, src))
    a, s = x.clone().requires_grad_(), src.clone().requires_grad_()
    an, sn = x.npu().requires_grad_(), src.npu().requires_grad_()
    (torch.scatter_add(a, 0, idx, s) ** 2).sum().backward()
    (torch.scatter_add(an, 0, idx.npu(), sn) ** 2).sum().backward()
    check(an.grad, a.grad)
    check(sn.grad, s.grad)


def test_bad_scatter_and_gather_arguments_raise_and_the_device_survives():
    x = torch.zeros(3, 4).npu()
    with pytest.raises(RuntimeError, match="int64"):
        torch.gather(x, 0, torch.zeros(2, 4).npu())
    check(torch.gather(x, 0, torch.ones(2, 4, dtype=torch.int32).npu()), torch.zeros(2, 4))  # int32 indices are fine
    with pytest.raises(RuntimeError, match="no larger|Size does not match"):
        torch.gather(x, 0, torch.zeros(2, 5, dtype=torch.long).npu())
    with pytest.raises(RuntimeError, match="dtype"):
        x.scatter_add(0, torch.zeros(1, 4, dtype=torch.long).npu(), torch.ones(1, 4, dtype=torch.float64).npu())
    with pytest.raises(RuntimeError, match="out of bounds"):
        torch.gather(x, 0, torch.full((1, 4), 3).npu()).cpu()
    y = torch.arange(4.0).npu()
    with pytest.raises(RuntimeError, match="out of bounds"):
        y.scatter_(0, torch.tensor([1, -1]).npu(), torch.tensor([9.0, 9.0]).npu())
        torch.npu.synchronize()
    check(y, torch.arange(4.0))  # nothing written
    check(x + 1, torch.ones(3, 4))


@pytest.mark.parametrize("fn", ["cumsum", "cumprod"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_scans(fn, dtype):
    x = make((4, 33), dtype, 1)
    if dtype.is_floating_point and fn == "cumprod":
        x = x / 4
    tol = dict(atol=1e-2, rtol=1e-2) if dtype in (torch.float16, torch.bfloat16) else {}
    for dim in (0, 1, -1):
        check(getattr(x.npu(), fn)(dim), getattr(x, fn)(dim), **tol)
    check(getattr(x.t().npu(), fn)(0), getattr(x.t(), fn)(0), **tol)
    check(getattr(x.npu(), fn)(1, dtype=torch.float64), getattr(x, fn)(1, dtype=torch.float64))


def test_scan_forms_and_backward():
    s = torch.tensor(2.5)
    check(s.npu().cumsum(0), s.cumsum(0))
    check(torch.empty(0, 3).npu().cumprod(0), torch.empty(0, 3).cumprod(0))
    x = make((3, 5), torch.float32, 2)
    y, yn = x.clone(), x.npu()
    y.cumsum_(1)
    yn.cumsum_(1)
    check(yn, y)
    out = torch.empty(3, 5, dtype=torch.float64).npu()
    torch.cumsum(x.npu(), 0, out=out)
    check(out, torch.cumsum(x, 0).double())
    for fn in ("cumsum", "cumprod"):
        a, an = x.clone().requires_grad_(), x.npu().requires_grad_()
        g = make((3, 5), torch.float32, 3)
        getattr(a, fn)(1).backward(g)
        getattr(an, fn)(1).backward(g.npu())
        check(an.grad, a.grad, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_flip(dtype):
    x = make((3, 4, 5), dtype, 1)
    for dims in ([0], [1, 2], [-1, 0], [0, 1, 2]):
        check(torch.flip(x.npu(), dims), torch.flip(x, dims))
    check(torch.flip(x.transpose(0, 2).npu(), [1]), torch.flip(x.transpose(0, 2), [1]))
    check(torch.flip(torch.tensor(1.0).npu(), [0]), torch.flip(torch.tensor(1.0), [0]))
    with pytest.raises(RuntimeError, match="multiple times"):
        torch.flip(x.npu(), [0, 0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_roll(dtype):
    x = make((3, 4, 5), dtype, 1)
    for shifts, dims in ((1, 0), (-2, 1), (7, 2), ((1, -3), (0, 2)), ((2, 1, 9), (0, 1, 2)), (5, None), (-13, None)):
        check(torch.roll(x.npu(), shifts, dims), torch.roll(x, shifts, dims))
    xt = x.transpose(0, 2)
    check(torch.roll(xt.npu(), 3), torch.roll(xt, 3))  # flattened, non-contiguous input
    check(torch.roll(xt.npu(), (1, 2), (0, 1)), torch.roll(xt, (1, 2), (0, 1)))
    check(torch.roll(torch.empty(0, 3, dtype=dtype).npu(), 1, 0), torch.roll(torch.empty(0, 3, dtype=dtype), 1, 0))


def test_roll_backward_and_errors():
    x = make((4, 6), torch.float32, 2)
    a, an = x.clone().requires_grad_(), x.npu().requires_grad_()
    (torch.roll(a, (1, 2), (0, 1)) * torch.arange(24.0).reshape(4, 6)).sum().backward()
    (torch.roll(an, (1, 2), (0, 1)) * torch.arange(24.0).reshape(4, 6).npu()).sum().backward()
    check(an.grad, a.grad)
    with pytest.raises(RuntimeError, match="align"):
        torch.roll(x.npu(), (1, 2), (0,))
