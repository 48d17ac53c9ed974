"""Native core ops: allocation, copies, views, fill, item, printing — against PyTorch CPU."""
import itertools


import pytest
import torch

import torch_npu


from helpers import DTYPES, without_device


def sample(dtype, shape=(3, 4)):
    g = torch.Generator().manual_seed(0)
    if dtype == torch.bool:
        return torch.rand(shape, generator=g) > 0.5
    if dtype.is_floating_point:
        return (torch.randn(shape, generator=g) * 10).to(dtype)
    lo = 0 if dtype == torch.uint8 else -100
    return torch.randint(lo, 100, shape, generator=g, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_and_roundtrip(dtype):
    c = sample(dtype)
    n = c.to("npu")
    assert n.device.type == "npu" and n.dtype == dtype and n.shape == c.shape
    assert torch.equal(n.cpu(), c)
    e = torch.empty((2, 0, 3), dtype=dtype, device="npu")
    assert e.shape == (2, 0, 3) and e.cpu().numel() == 0
    z = torch.empty((), dtype=dtype, device="npu")
    assert z.dim() == 0


def test_empty_strided_and_memory_format():
    t = torch.empty_strided((2, 3), (1, 2), device="npu")
    assert t.stride() == (1, 2)
    cl = torch.empty((2, 3, 4, 5), device="npu", memory_format=torch.channels_last)
    assert cl.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("src,dst", list(itertools.product(DTYPES, DTYPES)))
def test_copy_with_dtype_conversion(src, dst):
    c = sample(src)
    expected = c.to(dst)
    # host -> device with conversion, device -> device with conversion, device -> host.
    assert torch.equal(c.to("npu", dst).cpu(), expected)
    assert torch.equal(c.npu().to(dst).cpu(), expected)
    assert torch.equal(c.npu().to("cpu", dst), expected)


def test_copy_non_contiguous_and_broadcast():
    c = torch.arange(24.0).reshape(2, 3, 4)
    n = c.npu()
    assert torch.equal(n.transpose(0, 2).contiguous().cpu(), c.transpose(0, 2).contiguous())
    assert torch.equal(n[:, ::2, 1:].cpu(), c[:, ::2, 1:])
    d = torch.zeros(2, 3, 4, device="npu")
    d.copy_(torch.arange(4.0))  # broadcast from the host
    assert torch.equal(d.cpu(), torch.arange(4.0).expand(2, 3, 4))
    d[:, 1].copy_(n[:, 0])  # strided device -> device
    expected = torch.arange(4.0).expand(2, 3, 4).clone()
    expected[:, 1] = c[:, 0]
    assert torch.equal(d.cpu(), expected)
    host = torch.empty(4, 3).t()
    host.copy_(n[0])
    assert torch.equal(host, c[0])


def test_copy_across_devices():
    a = torch.arange(10.0, device="npu:0")
    b = a.to("npu:1")
    assert b.device == torch.device("npu:1")
    assert torch.equal(b.cpu(), torch.arange(10.0))
    c = torch.zeros(10, device="npu:2", dtype=torch.float64)
    c.copy_(b)
    assert torch.equal(c.cpu(), torch.arange(10.0, dtype=torch.float64))


def test_non_blocking_copies_pinned():
    src = torch.arange(1 << 16, dtype=torch.float32).pin_memory()
    assert src.is_pinned()
    n = src.to("npu", non_blocking=True)
    out = torch.empty(1 << 16).pin_memory()
    out.copy_(n, non_blocking=True)
    torch.npu.synchronize()
    assert torch.equal(out, src)
    # Pageable memory: non_blocking copies still deliver the data before returning.
    page = torch.arange(100.0)
    assert torch.equal(page.to("npu", non_blocking=True).cpu(), page)


def test_views_alias_device_memory():
    n = torch.zeros(4, 6, device="npu")
    v = n.view(2, 12)
    v[1].fill_(3.0)
    assert n.cpu()[2:].eq(3).all()
    s = n.as_strided((2, 2), (6, 1), 1)
    s.zero_()
    s.fill_(7)
    assert n.cpu()[0, 1:3].eq(7).all() and n.cpu()[1, 1:3].eq(7).all()
    u = n.unfold(1, 2, 2)
    assert u.shape == (4, 3, 2)
    u[0, 0].fill_(-1)
    assert n.cpu()[0, :2].eq(-1).all()
    r = n.reshape(24)
    assert r.data_ptr() == n.data_ptr()
    t = n.t()
    assert t.data_ptr() == n.data_ptr() and t.stride() == (1, 6)
    assert n[1:, 2].untyped_storage().data_ptr() == n.untyped_storage().data_ptr()
    d = n.view(torch.int32)
    assert d.dtype == torch.int32 and d.data_ptr() == n.data_ptr()


def test_view_as_real_and_complex():
    c = torch.randn(3, 2, dtype=torch.complex64)
    n = c.npu()
    assert torch.equal(n.cpu(), c)
    r = torch.view_as_real(n)
    assert r.shape == (3, 2, 2) and torch.equal(r.cpu(), torch.view_as_real(c))
    r[0, 0, 1].fill_(5.0)
    assert n.cpu()[0, 0].imag == 5.0
    back = torch.view_as_complex(r)
    assert back.data_ptr() == n.data_ptr()


def test_resize_and_set():
    n = torch.arange(6.0, device="npu")
    n.resize_(2, 3)
    assert torch.equal(n.cpu(), torch.arange(6.0).reshape(2, 3))
    n.resize_(4, 5)  # grows: keeps the first elements
    assert torch.equal(n.cpu().flatten()[:6], torch.arange(6.0))
    m = torch.empty(0, device="npu")
    m.set_(n)
    assert m.data_ptr() == n.data_ptr() and m.shape == n.shape
    k = torch.empty(0, device="npu")
    k.set_(n.untyped_storage(), 2, (2, 2), (1, 2))
    assert torch.equal(k.cpu(), n.cpu().flatten()[2:].as_strided((2, 2), (1, 2)))
    e = torch.ones(3, device="npu").set_()
    assert e.numel() == 0 and e.device.type == "npu"
    s = torch.ones(2, device="npu").untyped_storage()
    s.resize_(64)
    assert s.nbytes() == 64


def test_resize_waits_only_when_bytes_move():
    a = torch.randn(1024, 1024, device="npu")
    # growing a storage with bytes in it copies them: after the queued work that writes them
    x = torch.zeros(4, device="npu")
    a @ a @ a  # keeps the stream busy for a while
    x.add_(1)
    x.resize_(1 << 20)
    assert torch.equal(x[:4].cpu(), torch.ones(4))
    # an out= tensor with no bytes yet (arange makes one) is resized without waiting
    a @ a @ a
    out = torch.empty(0, device="npu")
    torch.arange(10, out=out)
    assert not torch.npu.current_stream().query()
    assert torch.equal(out.cpu(), torch.arange(10))
    # so is one whose storage already holds the new size
    a @ a @ a
    x.resize_(3, 5)
    assert not torch.npu.current_stream().query()
    assert torch.equal(x.flatten()[:4].cpu(), torch.ones(4))


@pytest.mark.parametrize("dtype", DTYPES)
def test_fill_and_zero(dtype):
    n = torch.empty(5, 3, dtype=dtype, device="npu")
    n.fill_(1)
    assert torch.equal(n.cpu(), torch.ones(5, 3, dtype=dtype))
    n[:, 1].zero_()
    expected = torch.ones(5, 3, dtype=dtype)
    expected[:, 1] = 0
    assert torch.equal(n.cpu(), expected)
    n.fill_(torch.tensor(0))
    assert not n.cpu().any()
    if dtype.is_floating_point:
        n.fill_(torch.tensor(2.5, device="npu"))
        assert torch.equal(n.cpu(), torch.full((5, 3), 2.5, dtype=dtype))
    with pytest.raises(RuntimeError, match="0-dimension"):
        n.fill_(torch.ones(2))


@pytest.mark.parametrize("dtype", DTYPES)
def test_item(dtype):
    c = sample(dtype, (2,))
    assert c.npu()[1].item() == c[1].item()


def test_full_and_zeros_factories():
    assert torch.equal(torch.zeros(3, 2, device="npu").cpu(), torch.zeros(3, 2))
    assert torch.equal(torch.ones(3, device="npu", dtype=torch.int64).cpu(), torch.ones(3, dtype=torch.int64))
    assert torch.equal(torch.full((2, 2), 7.5, device="npu").cpu(), torch.full((2, 2), 7.5))
    assert torch.equal(torch.zeros_like(torch.ones(2, device="npu")).cpu(), torch.zeros(2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.int64, torch.bool])
def test_print_matches_cpu(dtype):
    c = sample(dtype, (4, 5))
    r = repr(c.npu())
    assert "device='npu:0'" in r
    assert r.replace(", device='npu:0'", "") == repr(c)
    big = torch.arange(5000.0).reshape(50, 100).to(dtype)
    assert without_device(str(big.npu())) == without_device(str(big))


def test_clone_and_contiguous():
    n = torch.arange(12.0, device="npu").reshape(3, 4)
    c = n.t().clone()
    assert c.data_ptr() != n.data_ptr() and torch.equal(c.cpu(), torch.arange(12.0).reshape(3, 4).t())
    assert n.t().contiguous().is_contiguous()
