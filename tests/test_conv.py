"""Convolution on npu against PyTorch CPU: 1d/2d/3d, stride, padding, dilation, groups,
transposed with output padding, with and without bias, forward and backward, f32/f64/f16/bf16,
channels-last and unbatched inputs, zero-size batches, and clear errors."""
import copy

import pytest
import torch
import torch.nn.functional as F

import torch_npu  # noqa: F401
from helpers import check, make, no_fallback  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_fallback")


def tol(dtype):
    return {torch.float16: dict(atol=2e-2, rtol=2e-2), torch.bfloat16: dict(atol=0.25, rtol=5e-2),
            torch.float32: dict(atol=1e-4, rtol=1e-4)}.get(dtype, {})


def compare_module(module, x, dtype=torch.float32, grad_tol=1.0):
    """Forward and backward of `module` on CPU and npu from the same weights and input."""
    module = module.to(dtype)
    module_n = copy.deepcopy(module).npu()
    x = x.to(dtype).requires_grad_()
    xn = x.detach().npu().requires_grad_()
    y, yn = module(x), module_n(xn)
    check(yn, y, **tol(dtype))
    g = make(y.shape, dtype, 9)
    y.backward(g)
    yn.backward(g.npu())
    t = {k: v * grad_tol for k, v in tol(dtype).items()}
    check(xn.grad, x.grad, **t)
    for p, pn in zip(module.parameters(), module_n.parameters()):
        check(pn.grad, p.grad, **t)


CASES = [
    (torch.nn.Conv1d, dict(in_channels=4, out_channels=6, kernel_size=3), (2, 4, 11)),
    (torch.nn.Conv1d, dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=2, dilation=2, groups=2), (2, 4, 12)),
    (torch.nn.Conv2d, dict(in_channels=3, out_channels=8, kernel_size=3, padding=1), (2, 3, 9, 9)),
    (torch.nn.Conv2d, dict(in_channels=3, out_channels=8, kernel_size=(3, 2), stride=(2, 1), padding=(0, 1), bias=False), (2, 3, 9, 7)),
    (torch.nn.Conv2d, dict(in_channels=8, out_channels=8, kernel_size=3, padding=1, groups=8), (2, 8, 6, 6)),  # depthwise
    (torch.nn.Conv2d, dict(in_channels=6, out_channels=4, kernel_size=1), (3, 6, 5, 5)),  # pointwise
    (torch.nn.Conv2d, dict(in_channels=3, out_channels=4, kernel_size=3, padding="same", dilation=2), (1, 3, 8, 8)),
    (torch.nn.Conv3d, dict(in_channels=2, out_channels=4, kernel_size=(2, 3, 3), padding=1, stride=(1, 2, 2)), (2, 2, 4, 6, 6)),
    (torch.nn.ConvTranspose1d, dict(in_channels=4, out_channels=2, kernel_size=4, stride=2, padding=1), (2, 4, 7)),
    (torch.nn.ConvTranspose2d, dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, output_padding=1, groups=2), (2, 4, 5, 5)),
    (torch.nn.ConvTranspose2d, dict(in_channels=3, out_channels=3, kernel_size=1, dilation=2, stride=1, output_padding=1), (1, 3, 4, 4)),
    (torch.nn.ConvTranspose3d, dict(in_channels=2, out_channels=3, kernel_size=3, stride=2, bias=False), (1, 2, 3, 3, 3)),
]


@pytest.mark.parametrize("cls,kwargs,shape", CASES, ids=lambda v: getattr(v, "__name__", None) if isinstance(v, type) else None)
def test_convolution_forward_backward(cls, kwargs, shape):
    torch.manual_seed(0)
    compare_module(cls(**kwargs), make(shape, torch.float32, 1))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_dtypes(dtype):
    torch.manual_seed(0)
    compare_module(torch.nn.Conv2d(3, 5, 3, padding=1, stride=2), make((2, 3, 7, 7), torch.float32, 1), dtype,
                   grad_tol=4.0)
    compare_module(torch.nn.ConvTranspose2d(3, 5, 3, stride=2), make((2, 3, 4, 4), torch.float32, 2), dtype,
                   grad_tol=4.0)


@pytest.mark.parametrize("padding,hw", [(1, 20), (0, 17), (2, 14)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_winograd_sized_convolutions(padding, hw, dtype):
    """3x3 stride-1 convolutions with >= 16 channels and >= 12x12 outputs run as Winograd
    F(2x2, 3x3): random values, odd sizes, paddings 0-2. Forward and input gradient against
    CPU; the weight gradient (~1200 products of values up to ~20 per element) against an f64
    reference, relative to the sum of the products' magnitudes, where CPU's own error is ~2e-7."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(24, 32, 3, padding=padding, bias=False).to(dtype)
    x = make((3, 24, hw, hw), torch.float32, 1).to(dtype)
    xn, wn = x.npu().requires_grad_(), conv.weight.detach().npu().requires_grad_()
    yn = F.conv2d(xn, wn, padding=padding)
    xc = x.clone().requires_grad_()
    y = conv(xc)
    check(yn, y, **tol(dtype))
    g = make(y.shape, dtype, 9)
    y.backward(g)
    yn.backward(g.npu())
    check(xn.grad, xc.grad, **tol(dtype))
    d = torch.float64
    ref = torch.nn.grad.conv2d_weight(x.to(d), conv.weight.shape, g.to(d), padding=padding)
    scale = torch.nn.grad.conv2d_weight(x.to(d).abs(), conv.weight.shape, g.to(d).abs(), padding=padding)
    bound = 1e-6 if dtype == torch.float32 else 1e-2
    assert ((wn.grad.cpu().to(d) - ref).abs() / scale).max() < bound


def test_channels_last_and_unbatched_inputs():
    torch.manual_seed(0)
    x = make((2, 3, 6, 6), torch.float32, 1).to(memory_format=torch.channels_last)
    compare_module(torch.nn.Conv2d(3, 4, 3), x)
    compare_module(torch.nn.Conv2d(3, 4, 3), make((3, 6, 6), torch.float32, 2))  # no batch dim


def test_zero_batch():
    torch.manual_seed(0)
    compare_module(torch.nn.Conv2d(3, 4, 3), make((0, 3, 6, 6), torch.float32, 1))


def test_functional_with_strided_weight():
    x, w = make((1, 4, 6, 6), torch.float32, 1), make((4, 5, 3, 3), torch.float32, 2).transpose(0, 1)
    check(F.conv2d(x.npu(), w.npu()), F.conv2d(x, w), **tol(torch.float32))


def test_errors_are_clear_and_harmless():
    conv = torch.nn.Conv2d(3, 4, 3).npu()
    with pytest.raises(RuntimeError, match="expected input.* to have 3 channels, but got 5"):
        conv(torch.randn(1, 5, 6, 6, device="npu"))
    with pytest.raises(RuntimeError, match="should be the same|same dtype|expected scalar type"):
        conv(torch.randn(1, 3, 6, 6, device="npu", dtype=torch.float64))
    with pytest.raises(RuntimeError, match="same device|should be the same"):
        conv(torch.randn(1, 3, 6, 6))
    with pytest.raises(RuntimeError, match="Kernel size can't be greater|too small"):
        conv(torch.randn(1, 3, 2, 2, device="npu"))
    with pytest.raises(RuntimeError, match="not implemented for 'Short'"):  # as on CPU
        F.conv2d(torch.ones(1, 3, 6, 6, dtype=torch.int16, device="npu"),
                 torch.ones(4, 3, 3, 3, dtype=torch.int16, device="npu"))
    x = make((1, 3, 6, 6), torch.float32)
    check(conv(x.npu()), conv.cpu()(x), **tol(torch.float32))


def test_int64_convolution_is_exact():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-9, 10, (2, 4, 7, 6), generator=g)
    w = torch.randint(-9, 10, (6, 2, 3, 2), generator=g)
    b = torch.randint(-9, 10, (6,), generator=g)
    check(F.conv2d(x.npu(), w.npu(), b.npu(), stride=(2, 1), padding=1, groups=2),
          F.conv2d(x, w, b, stride=(2, 1), padding=1, groups=2))
    wt = torch.randint(-9, 10, (4, 3, 2, 3), generator=g)
    check(F.conv_transpose2d(x.npu(), wt.npu(), stride=2, output_padding=1), F.conv_transpose2d(x, wt, stride=2, output_padding=1))
    with pytest.raises(RuntimeError, match="not implemented for 'Int'"):
        F.conv2d(x.int().npu(), w.int().npu(), groups=2)
