"""Reductions beyond sum/mean on npu against PyTorch CPU: prod, nansum, amax/amin, any/all,
max/min along a dim (values and indices), argmax/argmin, linalg.vector_norm."""
import pytest
import torch

import torch_npu  # noqa: F401
from helpers import DTYPES, check, make, no_fallback  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_fallback")


def tol(dtype):
    return {torch.float16: dict(atol=1e-2, rtol=1e-2), torch.bfloat16: dict(atol=5e-2, rtol=5e-2)}.get(dtype, {})


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 4, 5), (), (0, 3)])
def test_reductions(dtype, shape):
    x = make(shape, dtype, 1)
    xn = x.npu()
    dims = [None] + ([0, -1, (0, 2)] if len(shape) == 3 else [0] if shape else [])
    for dim in dims:
        for keepdim in (False, True):
            kw = {} if dim is None else dict(dim=dim, keepdim=keepdim)
            if dim is None or isinstance(dim, int):
                check(torch.any(xn, **kw), torch.any(x, **kw))
                check(torch.all(xn, **kw), torch.all(x, **kw))
            if dtype != torch.bool and (dim is None or isinstance(dim, int)):
                small = (x % 3) if not dtype.is_floating_point else x / 4
                check(torch.prod(small.npu(), **kw), torch.prod(small, **kw), **tol(dtype))
            if dtype.is_floating_point:
                check(torch.nansum(xn, **kw), torch.nansum(x, **kw), **tol(dtype))
                if x.numel():
                    check(torch.linalg.vector_norm(xn, 3, **kw), torch.linalg.vector_norm(x, 3, **kw), **tol(dtype))
            if x.numel() and dtype != torch.bool:
                if dim is not None:
                    check(torch.amax(xn, **kw), torch.amax(x, **kw))
                    check(torch.amin(xn, **kw), torch.amin(x, **kw))
                if dim is None or isinstance(dim, int):
                    check(torch.argmax(xn, **kw), torch.argmax(x, **kw))
                    check(torch.argmin(xn, **kw), torch.argmin(x, **kw))
                if isinstance(dim, int):
                    for f in (torch.max, torch.min):
                        v, i = f(xn, dim, keepdim)
                        ev, ei = f(x, dim, keepdim)
                        check(v, ev)
                        check(i, ei)


def test_nan_and_errors():
    x = torch.tensor([[1.0, float("nan"), 3.0], [2.0, 0.0, -1.0]])
    for f in (torch.amax, torch.amin):
        check(f(x.npu(), 1), f(x, 1))
    check(torch.max(x.npu(), 1)[0], torch.max(x, 1)[0])
    check(torch.argmax(x.npu(), 1), torch.argmax(x, 1))
    check(torch.nansum(x.npu()), torch.nansum(x))
    with pytest.raises((IndexError, RuntimeError), match="numel|non-zero size|specified"):
        torch.argmax(torch.ones(0, device="npu"))
    with pytest.raises(IndexError, match="non-zero size"):
        torch.max(torch.ones(2, 0, device="npu"), 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("dim,correction,keepdim", [(None, 1, False), (1, 0, True), ((0, 2), 2, False), (-1, 1, True)])
def test_var_std(dtype, dim, correction, keepdim):
    x = make((3, 4, 5), dtype, 2)
    for f in (torch.var, torch.std):
        check(f(x.npu(), dim=dim, correction=correction, keepdim=keepdim), f(x, dim=dim, correction=correction, keepdim=keepdim), **tol(dtype))
    for f in (torch.var_mean, torch.std_mean):
        (v, m), (ev, em) = f(x.npu(), dim=dim, correction=correction, keepdim=keepdim), f(x, dim=dim, correction=correction, keepdim=keepdim)
        check(v, ev, **tol(dtype))
        check(m, em, **tol(dtype))
    a, an = x.clone().float().requires_grad_(), x.float().npu().requires_grad_()
    torch.std(a, dim=dim).sum().backward()
    torch.std(an, dim=dim).sum().backward()
    check(an.grad, a.grad, atol=1e-4, rtol=1e-4)


def test_group_norm_forward_runs_natively():
    # native_group_norm has an npu kernel (PyTorch's default composes it from var_mean)
    torch.manual_seed(0)
    gn = torch.nn.GroupNorm(2, 6)
    gn_n = torch.nn.GroupNorm(2, 6).npu()
    gn_n.load_state_dict(gn.state_dict())
    x = make((3, 6, 4, 4), torch.float32, 7)
    with torch.no_grad():
        check(gn_n(x.npu()), gn(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_legacy_norm_dist_and_distances(dtype):
    a, b = make((5, 6), dtype, 1), make((5, 6), dtype, 2)
    tol = dict(atol=0.1, rtol=2e-2) if dtype == torch.bfloat16 else {}
    for p in [1, 2, 3.5, float("inf")]:
        check(torch.dist(a.npu(), b.npu(), p), torch.dist(a, b, p), **tol)
        check(torch.norm(a.npu(), p, dim=1, keepdim=True), torch.norm(a, p, dim=1, keepdim=True), **tol)
    check(torch.nn.functional.pairwise_distance(a.npu(), b.npu()), torch.nn.functional.pairwise_distance(a, b), **tol)
    with pytest.raises(RuntimeError, match="floating point"):
        torch.ops.aten.norm.Scalar(torch.ones(3, dtype=torch.int64).npu())
