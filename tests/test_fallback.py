"""The CPU fallback: results, warnings, counts, the off switch, devices."""
import warnings

import pytest
import torch

import torch_npu

from conftest import run_python


def test_fallback_results_match_cpu():
    a = torch.randn(4, 5)
    b = torch.randn(4, 5)
    na, nb = a.npu(), b.npu()
    assert torch.allclose((na + nb).cpu(), a + b)
    assert torch.allclose(torch.matmul(na, nb.t()).cpu(), a @ b.t())
    assert torch.equal(na.argmax(1).cpu(), a.argmax(1))
    out = na * 2
    assert out.device == torch.device("npu:0")


def test_fallback_in_place_writes_device_memory():
    n = torch.ones(3, 3, device="npu")
    v = n[1]
    v.add_(5)
    assert n.cpu()[1].eq(6).all() and n.cpu()[0].eq(1).all()
    n.t().mul_(2)
    assert n.cpu()[1].eq(12).all()


def test_fallback_out_argument_resized():
    out = torch.empty(0, device="npu")
    torch.add(torch.ones(2, 3, device="npu"), 1, out=out)
    assert out.shape == (2, 3) and out.cpu().eq(2).all()
    a = torch.ones(4, device="npu")
    torch.add(a, a, out=a)
    assert a.cpu().eq(2).all()


def test_fallback_factory_with_device():
    x = torch.arange(5, device="npu")
    assert x.device.type == "npu" and torch.equal(x.cpu(), torch.arange(5))
    e = torch.eye(3, device="npu:2")
    assert e.device == torch.device("npu:2") and torch.equal(e.cpu(), torch.eye(3))


def test_fallback_returning_views_keeps_aliasing():
    n = torch.arange(12.0, device="npu").reshape(3, 4)
    parts = torch.split(n, 2, dim=1)
    parts[0].fill_(0)
    assert n.cpu()[:, :2].eq(0).all()


def test_warns_once_and_counts():
    torch.npu.sim.reset_fallback_counts()
    x = torch.ones(3, device="npu")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        torch.special.bessel_j0(x)
        torch.special.bessel_j0(x)
    msgs = [str(m.message) for m in w if "falls back to the CPU" in str(m.message)]
    assert len(msgs) == 1 and "aten::special_bessel_j0" in msgs[0]
    counts = torch.npu.sim.fallback_counts()
    assert sum(n for op, n in counts.items() if op.startswith("aten::special_bessel_j0")) == 2
    assert "aten::fill_.Scalar" not in counts


def test_native_ops_do_not_fall_back():
    torch.npu.sim.reset_fallback_counts()
    x = torch.empty(4, 4, device="npu")
    x.fill_(1)
    x.zero_()
    x.uniform_()
    x.normal_()
    y = x.t().contiguous().view(16)[::2]
    y.cpu()
    x.to("npu:1").to(torch.float16).cpu()
    torch.randn(1, device="npu").item()
    assert torch.npu.sim.fallback_counts() == {}


def test_disabled_fallback_is_an_error_naming_the_op():
    r = run_python("""
        import torch, torch_npu
        x = torch.ones(3, device='npu')
        try:
            torch.special.bessel_j0(x)
        except NotImplementedError as e:
            print('NotImplementedError', 'aten::special_bessel_j0' in str(e))
        x.fill_(2)
        print(x.cpu().tolist())
    """, env={"TORCH_NPU_FALLBACK_CPU_DISABLE": "1"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["NotImplementedError True", "[2.0, 2.0, 2.0]"]


def test_mixed_devices_are_errors():
    a = torch.ones(3, device="npu:0")
    with pytest.raises(RuntimeError, match="same device"):
        a + torch.ones(3, device="npu:1")
    with pytest.raises(RuntimeError, match="same device"):
        a + torch.ones(3)
    # A 0-dim CPU tensor is a scalar, as on CUDA.
    assert (a + torch.tensor(2.0)).cpu().eq(3).all()
    with pytest.raises(RuntimeError, match="same device"):
        torch.ones(3, device="npu:2").bernoulli_(torch.full((3,), 0.5, device="npu:3"))
    assert (a * 3).cpu().eq(3).all()


def test_conj_and_neg_views_resolve_on_copy():
    c = torch.randn(4, 3, dtype=torch.complex64)
    n = c.npu()
    assert torch.equal(n.conj().resolve_conj().cpu(), c.conj().resolve_conj())
    assert torch.equal(n.conj().cpu(), c.conj())
    assert torch.equal(n.conj().clone().cpu(), c.conj())
    assert torch.equal(torch._neg_view(n).cpu(), -c)
    assert torch.equal(torch._neg_view(n.conj()).resolve_neg().resolve_conj().cpu(), -c.conj())
    r = torch.randn(5)
    assert torch.equal(torch._neg_view(r.npu()).cpu(), -r)
    back = torch.empty(4, 3, dtype=torch.complex64, device="npu").conj()
    back.copy_(c)  # destination carries the bit
    assert torch.equal(back.cpu(), c)
    # Ops that fall back on conjugate views (the Conjugate fallback clones, then copies).
    assert torch.allclose((n.conj() * 2).cpu(), c.conj() * 2)


def test_native_ops_hand_complex_inputs_to_the_fallback():
    torch.npu.sim.reset_fallback_counts()
    c = torch.randn(3, 4, dtype=torch.complex64)
    n = c.npu()
    torch.testing.assert_close((n * n + 1).cpu(), c * c + 1)
    torch.testing.assert_close(n.sum(0).cpu(), c.sum(0))
    counts = torch.npu.sim.fallback_counts()
    assert counts.get("aten::mul.Tensor", 0) >= 1 and counts.get("aten::sum.dim_IntList", 0) >= 1
