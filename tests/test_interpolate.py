"""F.interpolate on npu against PyTorch CPU: nearest, nearest-exact, linear, bilinear,
trilinear, bicubic; sizes and scale factors (up and down), align_corners, channels-last and
non-contiguous inputs, every float dtype, forward and backward."""
import pytest
import torch
import torch.nn.functional as F

import torch_npu  # noqa: F401
from helpers import FLOATS, check, make, no_fallback  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_fallback")

CASES = [
    ("nearest", (2, 3, 5), dict(size=11)),
    ("nearest", (2, 3, 5, 6), dict(scale_factor=2)),
    ("nearest", (2, 3, 7, 9), dict(size=(3, 4))),
    ("nearest", (1, 2, 3, 4, 5), dict(scale_factor=(1.5, 2, 0.6))),
    ("nearest-exact", (2, 3, 5, 6), dict(size=(7, 13))),
    ("nearest-exact", (2, 3, 9), dict(scale_factor=0.4)),
    ("nearest-exact", (1, 2, 3, 4, 5), dict(size=(4, 2, 7))),
    ("linear", (2, 3, 6), dict(size=13)),
    ("linear", (2, 3, 6), dict(scale_factor=0.5, align_corners=True)),
    ("bilinear", (2, 3, 5, 6), dict(size=(7, 13))),
    ("bilinear", (2, 3, 8, 8), dict(scale_factor=0.75)),
    ("bilinear", (2, 3, 5, 6), dict(scale_factor=(1.7, 2.3), align_corners=True)),
    ("bilinear", (1, 2, 5, 6), dict(scale_factor=1.7, recompute_scale_factor=True)),
    ("trilinear", (1, 2, 3, 4, 5), dict(size=(5, 3, 8))),
    ("trilinear", (1, 2, 3, 4, 5), dict(scale_factor=2, align_corners=True)),
    ("bicubic", (2, 3, 5, 6), dict(size=(9, 4))),
    ("bicubic", (2, 3, 5, 6), dict(scale_factor=2.5, align_corners=True)),
    ("bicubic", (1, 1, 1, 1), dict(size=(3, 2))),
]


def run(fn, x, dtype, **tol):
    x = x.to(dtype)
    a, an = x.clone().requires_grad_(), x.npu().requires_grad_()
    y, yn = fn(a), fn(an)
    check(yn, y, **tol)
    g = make(y.shape, dtype, 9)
    y.backward(g)
    yn.backward(g.npu())
    check(an.grad, a.grad, **tol)


def tol(dtype):
    return {torch.float16: dict(atol=2e-2, rtol=1e-2), torch.bfloat16: dict(atol=0.15, rtol=2e-2)}.get(dtype, {})


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("dtype", FLOATS)
def test_interpolate(case, dtype):
    mode, shape, kw = CASES[case]
    run(lambda t: F.interpolate(t, mode=mode, **kw), make(shape, torch.float32, case), dtype, **tol(dtype))


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic"])
def test_channels_last_and_strided(mode):
    x = make((2, 3, 6, 10), torch.float32, 1)
    cl = x.contiguous(memory_format=torch.channels_last)
    y = F.interpolate(cl, size=(9, 7), mode=mode)
    yn = F.interpolate(cl.npu(), size=(9, 7), mode=mode)
    check(yn, y)
    assert yn.is_contiguous(memory_format=torch.channels_last)
    check(F.interpolate(x.npu()[..., ::2], scale_factor=1.5, mode=mode), F.interpolate(x[..., ::2], scale_factor=1.5, mode=mode))


def test_uint8_nearest_and_empty_batch():
    x = torch.randint(0, 256, (2, 3, 4, 5), dtype=torch.uint8)
    check(F.interpolate(x.npu(), size=(7, 3)), F.interpolate(x, size=(7, 3)))
    e = torch.zeros(0, 3, 4, 5)
    check(F.interpolate(e.npu(), scale_factor=2, mode="bilinear"), F.interpolate(e, scale_factor=2, mode="bilinear"))


def test_bad_sizes_raise():
    x = torch.zeros(1, 1, 4, 4).npu()
    with pytest.raises(RuntimeError, match="greater than 0"):
        torch.ops.aten.upsample_bilinear2d(x, [0, 3], False)
    with pytest.raises(RuntimeError, match="greater than 0"):
        torch.ops.aten.upsample_nearest2d(torch.zeros(1, 1, 0, 4).npu(), [2, 2])
    assert x.add(1).sum().item() == 16.0  # the device still works


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("channels", [1, 3, 5])
def test_uint8_bilinear_bicubic_bit_exact(mode, channels):
    """PyTorch CPU's fixed-point uint8 path (both its AVX2 and generic forms agree)."""
    g = torch.Generator().manual_seed(channels)
    for size, kw in [((7, 9), dict(size=(13, 4))), ((8, 8), dict(scale_factor=0.37)), ((5, 6), dict(scale_factor=(2.5, 1.0))),
                     ((6, 11), dict(size=(6, 23), align_corners=True)), ((16, 3), dict(size=(5, 9))), ((1, 4), dict(size=(3, 1)))]:
        x = torch.randint(0, 256, (2, channels, *size), dtype=torch.uint8, generator=g)
        for xx in (x, x.contiguous(memory_format=torch.channels_last)):
            want = F.interpolate(xx, mode=mode, **kw)
            got = F.interpolate(xx.npu(), mode=mode, **kw)
            torch.testing.assert_close(got.cpu(), want, atol=0, rtol=0, msg=lambda m: f"{size} {kw}: {m}")
