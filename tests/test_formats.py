"""Private storage formats (torch_npu.npu_format_cast): real padded layouts and storage sizes,
values kept through every op, in-place writes that keep the format, views that alias, and the
format kept by clone, printing, deepcopy and torch.save/torch.load."""
import copy
import io
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

import torch_npu
from torch_npu import Format

C0 = 16


@pytest.fixture(autouse=True)
def internal_formats():
    prev = torch.npu.config.allow_internal_format
    torch.npu.config.allow_internal_format = True
    yield
    torch.npu.config.allow_internal_format = prev


def cdiv(a, b):
    return -(-a // b)


def expected_storage_shape(fmt, shape, dtype):
    """The device's storage shapes, written out from torch_npu's layout definitions."""
    c0 = 32 if dtype.itemsize == 1 else 16
    if fmt in (Format.NC1HWC0, Format.FRACTAL_Z):
        n, c, h, w = (list(shape) + [1] * 4)[:4] if len(shape) > 1 else [1, shape[0], 1, 1]
        if fmt == Format.NC1HWC0:
            return [n, cdiv(c, c0), h, w, c0]
        return [cdiv(c, c0) * h * w, cdiv(n, 16), 16, c0]
    if fmt == Format.FRACTAL_NZ:
        *batch, m, k = [1] + list(shape) if len(shape) == 1 else list(shape)
        return batch + [cdiv(k, c0), cdiv(m, 16), 16, c0]
    if fmt == Format.NHWC:
        n, c, h, w = shape
        return [n, h, w, c]
    if fmt == Format.NDC1HWC0:
        n, c, d, h, w = shape
        return [n, d, cdiv(c, c0), h, w, c0]
    if fmt == Format.FRACTAL_Z_3D:
        n, c, d, h, w = shape
        return [d * cdiv(c, c0) * h * w, cdiv(n, 16), 16, c0]
    if fmt == Format.NDHWC:
        n, c, d, h, w = shape
        return [n, d, h, w, c]
    return list(shape)


CASTS = [
    (Format.NC1HWC0, (2, 17, 3, 4)), (Format.NC1HWC0, (3, 40)), (Format.FRACTAL_Z, (33, 17, 3, 3)),
    (Format.FRACTAL_NZ, (5, 33)), (Format.FRACTAL_NZ, (2, 3, 20, 17)), (Format.FRACTAL_NZ, (7,)),
    (Format.NHWC, (2, 3, 4, 5)), (Format.NDHWC, (2, 3, 2, 4, 5)), (Format.NDC1HWC0, (1, 20, 2, 3, 3)),
    (Format.FRACTAL_Z_3D, (17, 3, 2, 3, 3)), (Format.ND, (4, 5)), (Format.NCHW, (2, 3, 4, 5)),
]


@pytest.mark.parametrize("fmt, shape", CASTS, ids=lambda c: str(c))
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.bfloat16, torch.int8])
def test_cast_layout_sizes_and_values(fmt, shape, dtype):
    x = (torch.randn(shape) * 50).to(dtype)
    y = torch_npu.npu_format_cast(x.npu(), fmt)
    assert torch_npu.get_npu_format(y) == fmt and isinstance(torch_npu.get_npu_format(y), Format)
    assert y.shape == x.shape and y.is_contiguous() and y.dtype == dtype
    storage = expected_storage_shape(fmt, shape, dtype)
    assert torch.ops.npu.npu_storage_shape(y) == storage
    assert y.untyped_storage().nbytes() == math.prod(storage) * dtype.itemsize
    assert torch.equal(y.cpu(), x)
    # from one private format to another, and back to plain
    z = torch_npu.npu_format_cast(y, Format.FRACTAL_NZ)
    assert torch.equal(z.cpu(), x) and torch.equal(torch_npu.npu_format_cast(z, Format.ND).cpu(), x)


def test_set_on_the_storage_makes_it_plain():
    x = torch.arange(3.0, device="npu").reshape(1, 3, 1, 1)
    y = torch_npu.npu_format_cast(x, Format.NC1HWC0)
    raw = torch.empty(0, device="npu").set_(y.untyped_storage())  # all its bytes, as float32
    assert torch_npu.get_npu_format(y) == Format.NCHW  # another view of the storage: now plain
    assert raw.shape == (16,) and torch.equal(raw.cpu()[:3], torch.arange(3.0))


def test_new_tensors_are_labelled_by_rank():
    assert torch_npu.get_npu_format(torch.empty(2, 3, 4, 5, device="npu")) == Format.NCHW
    assert torch_npu.get_npu_format(torch.empty(2, 3, 4, 5, 6, device="npu")) == Format.NCDHW
    assert torch_npu.get_npu_format(torch.empty(2, 3, device="npu")) == Format.ND
    assert torch_npu.npu_format_cast(torch.empty(2, 3, device="npu"), 2).shape == (2, 3)


def private(x, fmt):
    return torch_npu.npu_format_cast(x.npu(), fmt)


def test_ops_read_private_inputs_and_leave_them_alone():
    a, b = torch.randn(2, 17, 5, 5), torch.randn(2, 17, 5, 5)
    na, nb = private(a, Format.NC1HWC0), private(b, Format.NHWC)
    torch.testing.assert_close((na + nb).cpu(), a + b)
    torch.testing.assert_close(na.sum((0, 2)).cpu(), a.sum((0, 2)))
    w = torch.randn(8, 17, 3, 3)
    nw = private(w, Format.FRACTAL_Z)
    torch.testing.assert_close(F.conv2d(na, nw, padding=1).cpu(), F.conv2d(a, w, padding=1), rtol=1e-4, atol=1e-4)
    m, k = torch.randn(20, 33), torch.randn(33, 7)
    torch.testing.assert_close((private(m, Format.FRACTAL_NZ) @ private(k, Format.FRACTAL_NZ)).cpu(), m @ k,
                               rtol=1e-4, atol=1e-4)
    assert torch_npu.get_npu_format(na) == Format.NC1HWC0 and torch_npu.get_npu_format(nw) == Format.FRACTAL_Z
    assert na[0, 1, 2, 3].item() == a[0, 1, 2, 3].item()  # indexing is a view: values still right
    assert na.max().item() == a.max().item()


def test_fallback_ops_read_private_inputs():
    x = torch.rand(4, 20) + 0.5
    nx = private(x, Format.FRACTAL_NZ)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.testing.assert_close(torch.logcumsumexp(nx, 1).cpu(), torch.logcumsumexp(x, 1))
        y = private(x, Format.FRACTAL_NZ)
        y.renorm_(2, 0, 1.0)
    torch.testing.assert_close(y.cpu(), x.renorm(2, 0, 1.0))
    assert torch_npu.get_npu_format(nx) == torch_npu.get_npu_format(y) == Format.FRACTAL_NZ


def test_in_place_writes_keep_the_format():
    x = torch.randn(3, 20, 2, 2)
    n = private(x, Format.NC1HWC0)
    n.add_(1).mul_(2)
    torch.testing.assert_close(n.cpu(), (x + 1) * 2)
    n.copy_(torch.ones(3, 20, 2, 2))
    assert n.cpu().eq(1).all()
    n.zero_()
    torch.add(torch.ones(3, 20, 2, 2, device="npu"), 2, out=n)
    assert n.cpu().eq(3).all() and torch_npu.get_npu_format(n) == Format.NC1HWC0
    assert torch.ops.npu.npu_storage_shape(n) == [3, 2, 2, 2, 16]


def test_views_alias_and_make_the_storage_plain():
    x = torch.arange(2 * 17 * 2 * 2, dtype=torch.float32).reshape(2, 17, 2, 2)
    n = private(x, Format.NC1HWC0)
    row = n[1]  # a view
    assert torch_npu.get_npu_format(n) == Format.NCHW  # the storage is plain now
    row.fill_(-1)
    assert n.cpu()[1].eq(-1).all() and torch.equal(n.cpu()[0], x[0])
    t = private(torch.randn(5, 33), Format.FRACTAL_NZ)
    want = t.cpu().t()
    assert torch.equal(t.t().cpu(), want) and torch.equal(t.view(-1).cpu(), want.t().reshape(-1))
    u = private(x, Format.NC1HWC0)
    assert torch.equal(u.unfold(1, 4, 3).cpu(), x.unfold(1, 4, 3))
    assert torch.equal(private(x, Format.NC1HWC0).as_strided((3, 4), (2, 5), 1).cpu(), x.as_strided((3, 4), (2, 5), 1))


def test_clone_print_deepcopy_keep_format():
    x = torch.randn(2, 17, 2, 3)
    n = private(x, Format.NC1HWC0)
    assert torch_npu.get_npu_format(n.clone()) == Format.NC1HWC0
    plain = x.npu()
    assert repr(n) == repr(plain) and str(n) == str(plain)
    assert torch_npu.get_npu_format(n) == Format.NC1HWC0  # printing changed nothing
    c = copy.deepcopy(n)
    assert torch_npu.get_npu_format(c) == Format.NC1HWC0 and torch.equal(c.cpu(), x)
    p = copy.deepcopy(torch.nn.Parameter(private(x, Format.NHWC)))
    assert type(p) is torch.nn.Parameter and torch_npu.get_npu_format(p) == Format.NHWC


def test_save_load_keeps_values_and_format():
    w = torch.randn(8, 3, 3, 3)
    model = torch.nn.Conv2d(3, 8, 3).npu()
    with torch.no_grad():
        model.weight.copy_(w)
    model.weight.data = private(model.weight.data, Format.FRACTAL_Z)
    buf = io.BytesIO()
    torch.save({"state": model.state_dict(), "t": private(torch.ones(4, 5), Format.FRACTAL_NZ)}, buf)
    buf.seek(0)
    loaded = torch.load(buf)  # weights_only, the default
    assert torch_npu.get_npu_format(loaded["state"]["weight"]) == Format.FRACTAL_Z
    assert torch.equal(loaded["state"]["weight"].cpu(), w)
    assert torch_npu.get_npu_format(loaded["t"]) == Format.FRACTAL_NZ and loaded["t"].cpu().eq(1).all()
    buf.seek(0)
    on_cpu = torch.load(buf, map_location="cpu")
    assert on_cpu["state"]["weight"].device.type == "cpu" and torch.equal(on_cpu["state"]["weight"], w)


def test_training_with_private_weights():
    """A conv weight in FRACTAL_Z trains like a plain one and keeps its format through the
    optimizer's in-place updates; gradients through npu_format_cast are the identity's."""
    torch.manual_seed(0)
    ref = torch.nn.Conv2d(3, 16, 3).npu()
    mod = copy.deepcopy(ref)
    mod.weight.data = private(mod.weight.data, Format.FRACTAL_Z)
    x = torch.randn(2, 3, 8, 8, device="npu")
    for m in (ref, mod):
        opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        for _ in range(3):
            opt.zero_grad()
            m(x).square().mean().backward()
            opt.step()
    torch.testing.assert_close(mod.weight.cpu(), ref.weight.cpu(), rtol=1e-5, atol=1e-6)
    assert torch_npu.get_npu_format(mod.weight) == Format.FRACTAL_Z
    a = torch.randn(4, 20, device="npu", requires_grad=True)
    (torch_npu.npu_format_cast(a, Format.FRACTAL_NZ) * 3).sum().backward()
    assert a.grad.cpu().eq(3).all()


def test_in_place_cast_and_empty_with_format():
    x = torch.randn(4, 20, device="npu")
    same = x
    assert x.npu_format_cast_(Format.FRACTAL_NZ) is same
    assert torch_npu.get_npu_format(x) == Format.FRACTAL_NZ
    y = torch.randn(4, 20, device="npu")
    torch_npu.npu_format_cast_(y, x)
    assert torch_npu.get_npu_format(y) == Format.FRACTAL_NZ
    e = torch_npu.empty_with_format((16, 3, 3, 3), dtype=torch.float16, device="npu", acl_format=Format.FRACTAL_Z)
    assert e.shape == (16, 3, 3, 3) and e.dtype == torch.float16
    assert torch_npu.get_npu_format(e) == Format.FRACTAL_Z and torch.ops.npu.npu_storage_shape(e) == [9, 1, 16, 16]
    assert torch_npu.get_npu_format(torch_npu.empty_with_format((2, 3), device="npu")) == Format.ND


def test_internal_formats_disallowed_keep_the_base_format():
    torch.npu.config.allow_internal_format = False
    assert torch.npu.config.allow_internal_format is False
    with pytest.warns(UserWarning, match="allow_internal_format"):
        y = torch_npu.npu_format_cast(torch.randn(2, 17, 3, 3, device="npu"), Format.NC1HWC0)
    assert torch_npu.get_npu_format(y) == Format.NCHW


def test_bad_casts_are_clear_errors():
    x = torch.randn(2, 3, device="npu")
    with pytest.raises(ValueError, match="format 12 is not supported"):
        torch_npu.npu_format_cast(x, 12)
    with pytest.raises(RuntimeError, match="NHWC format needs a tensor of 4 dims, got 2"):
        torch_npu.npu_format_cast(x, Format.NHWC)
    with pytest.raises(RuntimeError, match="FRACTAL_Z_3D format needs a tensor of 5 dims"):
        torch_npu.npu_format_cast(x, Format.FRACTAL_Z_3D)
    with pytest.raises(RuntimeError, match="expected an npu tensor"):
        torch_npu.npu_format_cast(torch.randn(2, 3), Format.ND)
    with pytest.raises(TypeError, match="acl_format must be an int"):
        torch_npu.npu_format_cast(x, "NZ")
    assert torch.equal(x, x)  # the process goes on
