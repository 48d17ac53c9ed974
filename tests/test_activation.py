"""Activations and their gradients on npu against PyTorch CPU: every activation of torch.nn
that has a native kernel, over float dtypes, non-contiguous and 0-dim/zero-size inputs,
in-place and out= forms, and int inputs where PyTorch takes (or refuses) them."""
import pytest
import torch
import torch.nn.functional as F

import torch_npu  # noqa: F401
from helpers import FLOATS, check, make, no_fallback  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_fallback")

ACTIVATIONS = {
    "relu": F.relu,
    "relu6": F.relu6,
    "gelu": F.gelu,
    "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
    "silu": F.silu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "leaky_relu": lambda t: F.leaky_relu(t, 0.2),
    "elu": lambda t: F.elu(t, 1.5),
    "selu": F.selu,
    "celu": lambda t: F.celu(t, 0.7),
    "softplus": lambda t: F.softplus(t, beta=2.0, threshold=4.0),
    "hardswish": F.hardswish,
    "hardsigmoid": F.hardsigmoid,
    "mish": F.mish,
    "hardtanh": lambda t: F.hardtanh(t, -2.0, 1.5),
    "threshold": lambda t: F.threshold(t, 0.5, -3.0),
}


def tol(dtype):
    return {torch.float16: dict(atol=2e-3, rtol=2e-3), torch.bfloat16: dict(atol=2e-2, rtol=2e-2)}.get(dtype, {})


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(7, 9), (), (0, 3)])
def test_forward_and_backward(name, dtype, shape):
    f = ACTIVATIONS[name]
    x = make(shape, dtype, 1)
    a, an = x.clone().requires_grad_(), x.npu().requires_grad_()
    y, yn = f(a), f(an)
    check(yn, y, **tol(dtype))
    g = make(shape, dtype, 2)
    y.backward(g)
    yn.backward(g.npu())
    check(an.grad, a.grad, **tol(dtype))


@pytest.mark.parametrize("name", ["relu", "gelu", "silu", "leaky_relu", "hardswish", "elu", "mish"])
def test_non_contiguous_in_place_and_out(name):
    f = ACTIVATIONS[name]
    x = make((6, 10), torch.float32, 3)[:, ::2].t()
    check(f(x.npu()), f(x))
    inplace = {"relu": F.relu_, "leaky_relu": lambda t: F.leaky_relu_(t, 0.2), "elu": lambda t: F.elu_(t, 1.5),
               "silu": lambda t: F.silu(t, inplace=True), "hardswish": lambda t: F.hardswish(t, inplace=True),
               "mish": lambda t: F.mish(t, inplace=True), "gelu": lambda t: torch.ops.aten.gelu_(t)}[name]
    xc, xn = x.clone(), x.npu()
    inplace(xc)
    inplace(xn)
    check(xn, xc)
    out = torch.empty(0, device="npu")
    {"relu": lambda: torch.ops.aten.relu.out(x.npu(), out=out), "gelu": lambda: torch.ops.aten.gelu.out(x.npu(), out=out),
     "silu": lambda: torch.ops.aten.silu.out(x.npu(), out=out),
     "leaky_relu": lambda: torch._C._nn.leaky_relu(x.npu(), 0.2, out=out),
     "hardswish": lambda: torch._C._nn.hardswish(x.npu(), out=out), "elu": lambda: torch._C._nn.elu(x.npu(), 1.5, out=out),
     "mish": lambda: torch.ops.aten.mish.out(x.npu(), out=out)}[name]()
    check(out, f(x))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8])
def test_integer_inputs(dtype):
    x = make((5, 6), dtype, 4)
    for f in (F.relu, lambda t: F.hardtanh(t, 0, 5), lambda t: F.threshold(t, 2, 9)):
        check(f(x.npu()), f(x))
    with pytest.raises(RuntimeError, match="not implemented for"):
        F.gelu(x.npu())
    with pytest.raises(RuntimeError, match="not implemented for"):
        F.leaky_relu(x.npu())
    with pytest.raises(RuntimeError, match="approximate"):
        F.gelu(torch.ones(2, device="npu"), approximate="fast")


BINARY = {
    "remainder": torch.remainder, "fmod": torch.fmod, "atan2": torch.atan2, "maximum": torch.maximum,
    "minimum": torch.minimum, "fmax": torch.fmax, "fmin": torch.fmin, "hypot": torch.hypot,
    "copysign": torch.copysign, "xlogy": torch.xlogy, "logical_and": torch.logical_and,
    "logical_or": torch.logical_or, "logical_xor": torch.logical_xor, "floor_divide": torch.floor_divide,
    "div_trunc": lambda a, b: torch.div(a, b, rounding_mode="trunc"),
    "div_floor": lambda a, b: torch.div(a, b, rounding_mode="floor"),
}
FLOAT_ONLY = {"atan2", "hypot", "copysign", "xlogy"}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int16, torch.uint8])
def test_binary_ops(name, dtype):
    f = BINARY[name]
    a, b = make((4, 5), dtype, 1), make((5,), dtype, 2, positive=True)
    if name in ("hypot",) and not dtype.is_floating_point:
        with pytest.raises(RuntimeError, match="not implemented"):
            f(a.npu(), b.npu())
        return
    if name in FLOAT_ONLY and dtype in (torch.float16, torch.bfloat16) and name == "xlogy":
        b = b.abs()
    check(f(a.npu(), b.npu()), f(a, b), **tol(dtype))
    check(f(a.npu(), 3), f(a, 3), **tol(dtype)) if name not in ("atan2", "hypot", "maximum", "minimum", "fmax", "fmin",
                                                                  "logical_and", "logical_or", "logical_xor", "xlogy") else None


def test_bitwise_shifts_and_unary_additions():
    a, s = make((10,), torch.int32, 1), torch.randint(0, 8, (10,), dtype=torch.int32)
    check(torch.bitwise_left_shift(a.npu(), s.npu()), torch.bitwise_left_shift(a, s))
    check(torch.bitwise_right_shift(a.npu(), s.npu()), torch.bitwise_right_shift(a, s))
    check(torch.bitwise_not(a.npu()), torch.bitwise_not(a))
    x = make((4, 6), torch.float32, 5)
    for f in (torch.erf, torch.erfc, torch.expm1, torch.exp2, torch.tan, torch.atan, torch.sinh, torch.cosh,
              torch.asinh, torch.round, torch.frac, torch.sign, torch.isposinf, torch.isneginf, torch.signbit):
        check(f(x.npu()), f(x))
    y = x.abs() + 1.1
    for f in (torch.log2, torch.log10, torch.log1p, torch.acosh):
        check(f(y.npu()), f(y))
    z = x.clamp(-0.9, 0.9)
    for f in (torch.asin, torch.acos, torch.atanh):
        check(f(z.npu()), f(z))
    with pytest.raises(RuntimeError, match="not implemented for 'Float'"):
        torch.bitwise_not(x.npu())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_logit_and_shrinks(dtype):
    tol = {torch.bfloat16: dict(atol=2e-2, rtol=2e-2), torch.float16: dict(atol=2e-3, rtol=2e-3)}.get(dtype, {})
    x = (torch.rand(40, generator=torch.Generator().manual_seed(0)) * 1.2 - 0.1).to(dtype)
    for fn in [torch.logit, lambda t: torch.logit(t, eps=0.05), lambda t: F.hardshrink(t * 4, 0.7), lambda t: F.softshrink(t * 4, 0.7)]:
        a, an = x.clone().requires_grad_(), x.npu().requires_grad_()
        y, yn = fn(a), fn(an)
        torch.testing.assert_close(yn.cpu(), y, equal_nan=True, **tol)
        y.backward(torch.ones_like(y))
        yn.backward(torch.ones_like(yn))
        torch.testing.assert_close(an.grad.cpu(), a.grad, equal_nan=True, **tol)
    check(torch.logit(torch.tensor([0, 1, 2]).npu()), torch.logit(torch.tensor([0, 1, 2])))
    with pytest.raises(RuntimeError, match="lambda must be greater or equal to 0"):
        F.softshrink(x.npu(), -1.0)
