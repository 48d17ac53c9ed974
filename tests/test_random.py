"""Random ops on the device generator: reproducibility, state, distributions."""
import math

import pytest
import torch

import torch_npu


def test_manual_seed_reproducible():
    torch.npu.manual_seed(123)
    a = torch.randn(1000, device="npu").cpu()
    b = torch.rand(10, device="npu").cpu()
    torch.npu.manual_seed(123)
    assert torch.equal(torch.randn(1000, device="npu").cpu(), a)
    assert torch.equal(torch.rand(10, device="npu").cpu(), b)
    assert not torch.equal(torch.randn(1000, device="npu").cpu(), a)
    assert torch.npu.initial_seed() == 123


def test_torch_manual_seed_seeds_npu():
    torch.manual_seed(7)
    a = torch.randn(64, device="npu").cpu()
    torch.manual_seed(7)
    assert torch.equal(torch.randn(64, device="npu").cpu(), a)


def test_rng_state_roundtrip():
    torch.npu.manual_seed(5)
    state = torch.npu.get_rng_state()
    assert state.dtype == torch.uint8 and state.device.type == "cpu"
    a = torch.rand(100, device="npu").cpu()
    torch.npu.set_rng_state(state)
    assert torch.equal(torch.rand(100, device="npu").cpu(), a)
    states = torch.npu.get_rng_state_all()
    assert len(states) == torch.npu.device_count()
    torch.npu.set_rng_state_all(states)
    torch.npu.seed()
    torch.npu.seed_all()
    torch.npu.manual_seed_all(1)
    with pytest.raises((ValueError, RuntimeError)):
        torch.npu.set_rng_state(torch.zeros(3, dtype=torch.uint8))


def test_generator_object():
    g = torch.Generator(device="npu")
    assert g.device == torch.device("npu:0")
    g.manual_seed(42)
    a = torch.randn(50, device="npu", generator=g).cpu()
    g.manual_seed(42)
    assert torch.equal(torch.randn(50, device="npu", generator=g).cpu(), a)
    g2 = torch.Generator(device="npu").manual_seed(42)
    assert torch.equal(torch.randn(50, device="npu", generator=g2).cpu(), a)
    with pytest.raises(RuntimeError):
        torch.randn(3, device="npu", generator=torch.Generator())


def test_same_results_on_any_stream():
    torch.npu.manual_seed(9)
    a = torch.randn(4096, device="npu").cpu()
    torch.npu.manual_seed(9)
    with torch.npu.stream(torch.npu.Stream()):
        b = torch.randn(4096, device="npu")
    torch.npu.synchronize()
    assert torch.equal(b.cpu(), a)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_uniform_and_normal_distributions(dtype):
    n = 200_000
    u = torch.empty(n, device="npu", dtype=dtype).uniform_(-2, 3).cpu().double()
    assert u.min() >= -2 and u.max() < 3
    assert abs(u.mean().item() - 0.5) < 0.05
    x = torch.empty(n, device="npu", dtype=dtype).normal_(1.5, 2.0).cpu().double()
    assert abs(x.mean().item() - 1.5) < 0.05
    assert abs(x.std().item() - 2.0) < 0.05


def test_bernoulli_random_exponential_and_friends():
    n = 100_000
    b = torch.empty(n, device="npu").bernoulli_(0.3).cpu()
    assert set(b.unique().tolist()) <= {0.0, 1.0} and abs(b.mean().item() - 0.3) < 0.01
    p = torch.full((n,), 0.8, device="npu")
    assert abs(torch.bernoulli(p).cpu().mean().item() - 0.8) < 0.01
    r = torch.randint(3, 9, (n,), device="npu").cpu()
    assert r.dtype == torch.int64 and set(r.unique().tolist()) == set(range(3, 9))
    r8 = torch.empty(n, dtype=torch.uint8, device="npu").random_().cpu()
    assert r8.max() > 250
    e = torch.empty(n, device="npu").exponential_(2.0).cpu()
    assert e.min() > 0 and abs(e.mean().item() - 0.5) < 0.02
    ln = torch.empty(n, device="npu").log_normal_(0.0, 0.5).cpu()
    assert abs(ln.log().mean().item()) < 0.02
    g = torch.empty(n, device="npu").geometric_(0.5).cpu()
    assert g.min() >= 1 and abs(g.mean().item() - 2.0) < 0.05
    c = torch.empty(n, device="npu").cauchy_(0.0, 1.0).cpu()
    assert abs(c.median().item()) < 0.05
    rb = torch.empty(1000, dtype=torch.bool, device="npu").random_().cpu()
    assert rb.any() and not rb.all()


def test_randperm():
    torch.npu.manual_seed(3)
    p = torch.randperm(1000, device="npu")
    assert p.device.type == "npu"
    assert torch.equal(p.cpu().sort().values, torch.arange(1000))
    torch.npu.manual_seed(3)
    assert torch.equal(torch.randperm(1000, device="npu").cpu(), p.cpu())
    assert torch.randperm(0, device="npu").numel() == 0


def test_random_argument_errors():
    t = torch.empty(3, device="npu")
    with pytest.raises(RuntimeError, match="std"):
        t.normal_(0, -1)
    with pytest.raises(RuntimeError, match="from"):
        t.random_(5, 2)
    with pytest.raises(RuntimeError, match="p"):
        t.bernoulli_(1.5)
    with pytest.raises(NotImplementedError):
        torch.empty(3, dtype=torch.int32, device="npu").uniform_()


def test_normal_with_tensor_arguments():
    mean = torch.arange(4.0).repeat(50_000).reshape(50_000, 4)
    std = torch.tensor([0.5, 1.0, 2.0, 0.0])
    torch.npu.manual_seed(11)
    a = torch.normal(mean.npu(), std.npu())
    assert a.shape == (50_000, 4) and a.device.type == "npu"
    c = a.cpu()
    torch.testing.assert_close(c.mean(0), torch.arange(4.0), atol=0.03, rtol=0)
    torch.testing.assert_close(c.std(0), std, atol=0.03, rtol=0)
    torch.npu.manual_seed(11)
    assert torch.equal(torch.normal(mean.npu(), std.npu()).cpu(), c)
    b = torch.normal(mean.npu(), 2.0).cpu()
    assert abs(b.std().item() - (2.0 ** 2 + 1.25) ** 0.5) < 0.05
    f = torch.normal(3.0, std.npu()).cpu()
    assert f.shape == (4,) and f[3].item() == 3.0
    with pytest.raises(RuntimeError, match="std"):
        torch.normal(mean.npu(), -1.0)
