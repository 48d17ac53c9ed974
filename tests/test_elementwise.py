"""Native elementwise ops, reductions, masked_select and cat against PyTorch CPU: dtypes,
type promotion, broadcasting, non-contiguous, zero-size and 0-dim inputs, in-place and out=."""
import pytest
import torch

import torch_npu  # noqa: F401
from helpers import DTYPES, FLOATS, check, make, no_fallback, without_device  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_fallback")


SHAPES = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((), (3,)), ((0, 3), (1, 3)), ((), ())]


@pytest.mark.parametrize("op", [torch.add, torch.sub, torch.mul, torch.div])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", SHAPES)
def test_arithmetic(op, dtype, shapes):
    a, b = make(shapes[0], dtype, 1), make(shapes[1], dtype, 2, positive=(op is torch.div))
    try:
        expected = op(a, b)
    except RuntimeError as e:  # e.g. subtracting bools: the NPU must refuse it the same way
        with pytest.raises(RuntimeError, match=str(e).split(",")[0][:30]):
            op(a.npu(), b.npu())
        return
    check(op(a.npu(), b.npu()), expected)


@pytest.mark.parametrize("op", [torch.eq, torch.ne, torch.lt, torch.le, torch.gt, torch.ge])
@pytest.mark.parametrize("dtype", DTYPES)
def test_comparisons(op, dtype):
    a, b = make((4, 5), dtype, 3), make((5,), dtype, 4)
    check(op(a.npu(), b.npu()), op(a, b))
    check(op(a.npu(), 1), op(a, 1))


@pytest.mark.parametrize("other", [2, 2.5, True, torch.tensor(3), torch.tensor(1.5, dtype=torch.float64),
                                   torch.tensor(1.25, dtype=torch.float16), torch.tensor(0.75, dtype=torch.bfloat16),
                                   torch.tensor(True), torch.tensor(-3, dtype=torch.int16),
                                   torch.tensor(2.0)._neg_view()])
@pytest.mark.parametrize("dtype", [torch.int32, torch.uint8, torch.float16, torch.bfloat16, torch.float32, torch.bool])
def test_type_promotion_with_scalars(dtype, other):
    a = make((3, 4), dtype, 5)
    for op in (torch.add, torch.mul, torch.div):
        if dtype == torch.bool and op is torch.add and isinstance(other, bool):
            continue
        expected = op(a, other)
        got = op(a.npu(), other)
        check(got, expected)


def test_mixed_dtype_tensors():
    a = make((3, 4), torch.int64, 1)
    b = make((3, 4), torch.float16, 2)
    check(a.npu() + b.npu(), a + b)
    check(make((4,), torch.uint8).npu() * make((4,), torch.int8).npu(), make((4,), torch.uint8) * make((4,), torch.int8))
    check(a.npu() + torch.tensor(2.5), a + torch.tensor(2.5))  # 0-dim CPU tensor beside npu


def test_alpha_in_place_and_out():
    a, b = make((3, 4), torch.float32, 1), make((4,), torch.float32, 2)
    check(torch.add(a.npu(), b.npu(), alpha=2.5), torch.add(a, b, alpha=2.5))
    check(torch.sub(a.npu(), 3, alpha=2), torch.sub(a, 3, alpha=2))
    n = a.npu()
    n.mul_(b.npu())
    check(n, a * b)
    n.add_(1)
    check(n, a * b + 1)
    out = torch.empty(0, device="npu")
    torch.mul(a.npu(), b.npu(), out=out)
    check(out, a * b)
    nc = a.npu().t()
    check(nc + nc, a.t() + a.t())
    with pytest.raises(RuntimeError, match="can't be cast"):
        torch.ones(3, dtype=torch.int64, device="npu").add_(1.5)
    with pytest.raises(RuntimeError, match="doesn't match the broadcast shape"):
        torch.ones(3, device="npu").add_(torch.ones(2, 3, device="npu"))
    with pytest.raises(RuntimeError, match="alpha"):
        torch.add(torch.ones(3, dtype=torch.int64, device="npu"), 1, alpha=0.5)


def test_bitwise():
    for dtype in (torch.bool, torch.int32, torch.uint8):
        a, b = make((4, 4), dtype, 1), make((4, 4), dtype, 2)
        check(a.npu() & b.npu(), a & b)
        check(a.npu() | b.npu(), a | b)
        check(a.npu() ^ b.npu(), a ^ b)


@pytest.mark.parametrize("name", ["abs", "neg", "ceil", "floor", "trunc", "sqrt", "rsqrt", "exp", "log",
                                  "sin", "cos", "tanh", "sigmoid", "reciprocal"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int32, torch.int64])
def test_unary(name, dtype):
    positive = name in ("sqrt", "rsqrt", "log", "reciprocal")
    a = make((5, 6), dtype, 7, positive=positive)
    fn = getattr(torch, name)
    try:
        expected = fn(a)
    except RuntimeError:
        with pytest.raises(RuntimeError):
            fn(a.npu())
        return
    check(fn(a.npu()), expected)
    check(fn(a.npu()[:, ::2]), fn(a[:, ::2]))
    if expected.dtype == a.dtype:
        n = a.npu()
        getattr(n, name + "_")()
        check(n, expected)


def test_predicates():
    a = torch.tensor([1.0, float("nan"), float("inf"), -float("inf"), 0.0])
    for name in ("isnan", "isinf", "isfinite", "logical_not"):
        check(getattr(torch, name)(a.npu()), getattr(torch, name)(a))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_mean_max_min(dtype):
    a = make((6, 7, 5), dtype, 9)
    check(a.npu().sum(), a.sum())
    check(a.npu().sum(1), a.sum(1))
    check(a.npu().sum((0, 2), keepdim=True), a.sum((0, 2), keepdim=True))
    check(a.npu().max(), a.max())
    check(a.npu().min(), a.min())
    if dtype.is_floating_point:
        check(a.npu().mean(-1), a.mean(-1))
        check(a.npu().sum(0, dtype=torch.float64), a.sum(0, dtype=torch.float64))
    assert torch.zeros(0, 3, device="npu").sum().item() == 0
    with pytest.raises(RuntimeError, match="numel"):
        torch.zeros(0, device="npu").max()


def test_large_sum_is_accurate():
    a = torch.full((1 << 22,), 0.1)
    assert abs(a.npu().sum().item() - a.double().sum().item()) / a.double().sum().item() < 1e-5


def test_masked_select_and_cat():
    a = make((4, 5), torch.float32, 1)
    m = a > 0
    check(torch.masked_select(a.npu(), m.npu()), torch.masked_select(a, m))
    check(torch.masked_select(a.npu(), m.npu()[0]), torch.masked_select(a, m[0]))
    b = make((2, 5), torch.float16, 2)
    check(torch.cat([a.npu(), b.npu()]), torch.cat([a, b]))
    check(torch.cat([a.npu().t(), a.npu().t()], dim=1), torch.cat([a.t(), a.t()], dim=1))
    check(torch.cat([torch.empty(0).npu(), a.npu()]), torch.cat([torch.empty(0), a]))
    check(torch.stack([a.npu(), a.npu()], 1), torch.stack([a, a], 1))
    with pytest.raises(RuntimeError, match="Sizes of tensors must match"):
        torch.cat([a.npu(), make((2, 3), torch.float32).npu()])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.bool, torch.uint8])
def test_print_runs_natively(dtype):
    for shape in ((4, 5), (60, 70), ()):
        c = make(shape, dtype, 3)
        assert without_device(str(c.npu())) == without_device(str(c))


def test_overlapping_writes_are_refused_like_cpu():
    for device in ("cpu", "npu"):
        a = torch.arange(6.0).to(device)
        with pytest.raises(RuntimeError, match="single memory location"):
            a[1:].add_(a[:-1])
        b = torch.zeros(1, device=device).expand(3)
        with pytest.raises(RuntimeError, match="single memory location"):
            b.add_(1)
        c = torch.arange(4.0).to(device)
        torch.mul(c, 2, out=c)  # exactly in place is allowed
        assert c.cpu().tolist() == [0.0, 2.0, 4.0, 6.0]
        c.add_(c)
        assert c.cpu().tolist() == [0.0, 4.0, 8.0, 12.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.uint8])
def test_pow(dtype):
    base = make((4, 5), dtype, 1, positive=True)
    exps = [2, 3, 0, 1] + ([0.5, -0.5, -1, -2, 2.5] if dtype.is_floating_point else [])
    for e in exps:
        check(torch.pow(base.npu(), e), torch.pow(base, e))
    ex = make((5,), dtype, 2, positive=True) % 4 if not dtype.is_floating_point else make((5,), dtype, 2)
    check(torch.pow(base.npu(), ex.npu()), torch.pow(base, ex))     # tensor ** broadcast tensor
    check(torch.pow(2, ex.npu()), torch.pow(2, ex))                 # scalar base
    x = base.npu()
    x.pow_(2)
    check(x, base.pow(2))
    out = torch.empty(0, dtype=dtype, device="npu")
    torch.pow(base.npu(), 3, out=out)
    check(out, torch.pow(base, 3))


def test_pow_negative_integer_exponent_fails_at_the_call():
    with pytest.raises(RuntimeError, match="Integers to negative integer powers are not allowed"):
        torch.pow(torch.ones(3, dtype=torch.int64, device="npu"), -1)
    torch.npu.synchronize()  # nothing left pending


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int32, torch.int64, torch.uint8])
def test_clamp(dtype):
    x = make((4, 5), dtype, 1)
    lo, hi = make((5,), dtype, 2), make((4, 1), dtype, 3)
    forms = [
        lambda t, l, h: t.clamp(-3, 5), lambda t, l, h: t.clamp(min=2), lambda t, l, h: t.clamp(max=1),
        lambda t, l, h: t.clamp(3, 1),  # min > max gives max
        lambda t, l, h: torch.clamp(t, l, h), lambda t, l, h: torch.clamp(t, min=l), lambda t, l, h: t.clamp_min(l),
        lambda t, l, h: t.clamp_max(h), lambda t, l, h: t.clamp_min(1), lambda t, l, h: t.clamp_max(2),
        lambda t, l, h: t.clamp(2, 7.5),  # a float bound promotes integer tensors
    ]
    for f in forms:
        check(f(x.npu(), lo.npu(), hi.npu()), f(x, lo, hi))
    y, yn = x.clone(), x.npu()
    y.clamp_(min=0)
    yn.clamp_(min=0)
    check(yn, y)
    out = torch.empty(0, dtype=dtype).npu()
    torch.clamp(x.npu(), lo.npu(), hi.npu(), out=out)
    check(out, torch.clamp(x, lo, hi))


def test_clamp_nan_backward_and_errors():
    x = torch.tensor([float("nan"), -2.0, 0.25, 3.0])
    check(x.npu().clamp(-1, 1), x.clamp(-1, 1))
    check(x.npu().clamp(torch.tensor(float("nan")).npu()), x.clamp(torch.tensor(float("nan"))))
    a, an = x[1:].clone().requires_grad_(), x[1:].npu().requires_grad_()
    a.clamp(-1, 1).sum().backward()
    an.clamp(-1, 1).sum().backward()
    check(an.grad, a.grad)
    with pytest.raises(RuntimeError, match="At least one of 'min' or 'max'"):
        torch.clamp(x.npu())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int32, torch.bool])
def test_nan_to_num(dtype):
    x = torch.tensor([float("nan"), float("inf"), -float("inf"), 1.5, -0.0]).to(dtype)
    for kw in ({}, dict(nan=2.0), dict(nan=-1.0, posinf=7.0, neginf=-7.0), dict(posinf=1e30)):
        check(torch.nan_to_num(x.npu(), **kw), torch.nan_to_num(x, **kw))
    y, yn = x.clone(), x.npu()
    y.nan_to_num_(nan=3.0)
    yn.nan_to_num_(nan=3.0)
    check(yn, y)
    if dtype.is_floating_point:
        a, an = x.clone().requires_grad_(), x.npu().requires_grad_()
        torch.nan_to_num(a).sum().backward()
        torch.nan_to_num(an).sum().backward()
        check(an.grad, a.grad)


def test_eye():
    for args in ((3,), (2, 5), (4, 1), (0,), (0, 3)):
        for dtype in (torch.float32, torch.int64, torch.bool, torch.bfloat16):
            check(torch.eye(*args, dtype=dtype, device="npu"), torch.eye(*args, dtype=dtype))
    out = torch.empty(7, device="npu")
    torch.eye(2, 3, out=out)
    check(out, torch.eye(2, 3))
    with pytest.raises(RuntimeError, match="greater or equal to 0"):
        torch.eye(-1, device="npu")


@pytest.mark.parametrize("dtype", [torch.float32, torch.int64, torch.bfloat16])
def test_rsub_and_logical_not_variants(dtype):
    a, b = make((3, 4), dtype, 1), make((4,), dtype, 2)
    check(torch.rsub(a.npu(), b.npu(), alpha=2), torch.rsub(a, b, alpha=2))
    check(torch.rsub(a.npu(), 5), torch.rsub(a, 5))
    check(5 - a.npu(), 5 - a)
    out = torch.empty(3, 4, dtype=torch.float32, device="npu")
    torch.logical_not(a.npu(), out=out)
    check(out, torch.logical_not(a).float())
    x, xn = a.clone(), a.npu()
    x.logical_not_()
    xn.logical_not_()
    check(xn, x)


@pytest.mark.parametrize("dtype", FLOATS)
def test_round_decimals(dtype):
    x = (make((50,), torch.float32, 3) * 37).to(dtype)
    for d in [0, 2, -1, -3]:
        check(torch.round(x.npu(), decimals=d), torch.round(x, decimals=d))
    xn = x.npu()
    xn.round_(decimals=1)
    check(xn, x.round(decimals=1))
