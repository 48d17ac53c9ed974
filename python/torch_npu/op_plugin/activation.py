"""Activations: npu_silu, npu_gelu, npu_fast_gelu / fast_gelu, npu_swiglu, npu_geglu,
npu_gelu_mul."""
import torch
import torch.nn.functional as F

from ._registry import composite, float_math


def _gelu_mode(approximate) -> str:
    if approximate in ("none", "tanh"):
        return approximate
    raise RuntimeError(f"approximate must be 'none' or 'tanh', got {approximate!r}")


@composite("npu_silu(Tensor self) -> Tensor")
def npu_silu(self):
    return F.silu(self)


@composite("npu_gelu(Tensor self, *, str approximate='none') -> Tensor")
def npu_gelu(self, approximate="none"):
    return F.gelu(self, approximate=_gelu_mode(approximate))


def _fast_gelu(x):
    # Atlas A2's formula: x / (1 + exp(-1.702 x)) = x * sigmoid(1.702 x)
    xf = float_math(x)
    return (xf * torch.sigmoid(1.702 * xf)).to(x.dtype)


@composite("npu_fast_gelu(Tensor self) -> Tensor")
def npu_fast_gelu(self):
    return _fast_gelu(self)


@composite("fast_gelu(Tensor self) -> Tensor")
def fast_gelu(self):
    return _fast_gelu(self)


def _halves(x, dim, op):
    if x.dim() == 0:
        raise RuntimeError(f"{op}: expected a tensor with at least one dim")
    if x.shape[dim] % 2:
        raise RuntimeError(f"{op}: the size of dim {dim} ({x.shape[dim]}) must be even")
    return x.chunk(2, dim)


@composite("npu_swiglu(Tensor self, int dim=-1) -> Tensor")
def npu_swiglu(self, dim=-1):
    """silu(A) * B, A and B the halves of self along dim."""
    a, b = _halves(self, dim, "npu_swiglu")
    return (F.silu(float_math(a)) * float_math(b)).to(self.dtype)


@composite("npu_geglu(Tensor self, int dim=-1, int approximate=1, bool activate_left=False) -> (Tensor, Tensor)")
def npu_geglu(self, dim=-1, approximate=1, activate_left=False):
    """(x * gelu(g), gelu(g)): the halves of self along dim are (x, g), or (g, x) with
    activate_left. approximate: 0 erf, 1 tanh."""
    if approximate not in (0, 1):
        raise RuntimeError(f"npu_geglu: approximate must be 0 (none) or 1 (tanh), got {approximate}")
    left, right = _halves(self, dim, "npu_geglu")
    gate, lin = (left, right) if activate_left else (right, left)
    gelu = F.gelu(float_math(gate), approximate="tanh" if approximate else "none").to(self.dtype)
    return (float_math(lin) * float_math(gelu)).to(self.dtype), gelu


@composite("npu_gelu_mul(Tensor input, *, str approximate='none') -> Tensor")
def npu_gelu_mul(input, approximate="none"):
    """gelu(x1) * x2, x1 and x2 the halves of the last dim."""
    x1, x2 = _halves(input, -1, "npu_gelu_mul")
    return (F.gelu(float_math(x1), approximate=_gelu_mode(approximate)) * float_math(x2)).to(input.dtype)
