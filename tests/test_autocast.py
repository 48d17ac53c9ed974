"""torch.autocast("npu"): PyTorch's per-op casting policy (lower precision for matmuls and
convolutions, float32 for softmax, norms and losses, promotion for mixed inputs)."""
import pytest
import torch
import torch.nn.functional as F

import torch_npu  # noqa: F401
from helpers import check, make, no_fallback  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_fallback")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cast_policy(dtype):
    a, w = make((4, 8), torch.float32).npu(), make((6, 8), torch.float32, 1).npu()
    conv = torch.nn.Conv2d(3, 4, 3).npu()
    with torch.autocast("npu", dtype=dtype):
        assert torch.is_autocast_enabled("npu") and torch.get_autocast_dtype("npu") == dtype
        y = F.linear(a, w)
        assert y.dtype == dtype
        assert (a @ w.t()).dtype == dtype
        assert conv(make((1, 3, 6, 6), torch.float32).npu()).dtype == dtype
        assert torch.softmax(y, -1).dtype == torch.float32
        assert F.layer_norm(y, (6,)).dtype == torch.float32
        assert F.cross_entropy(y, torch.zeros(4, dtype=torch.long, device="npu")).dtype == torch.float32
        assert torch.addcmul(y.float(), y, y).dtype == torch.float32  # promote
        with pytest.raises(RuntimeError, match="unsafe to autocast"):
            F.binary_cross_entropy(torch.sigmoid(y), torch.rand_like(y.float()))
    assert not torch.is_autocast_enabled("npu")
    assert (a @ w.t()).dtype == torch.float32
    with torch.autocast("npu"):
        assert (a @ w.t()).dtype == torch.float16  # torch_npu's default


def test_bf16_training_tracks_cpu_autocast():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 4))
    model_n = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 4)).npu()
    model_n.load_state_dict(model.state_dict())
    x, y = make((64, 16), torch.float32, 1), torch.randint(0, 4, (64,), generator=torch.Generator().manual_seed(2))
    losses = {}
    for m, dev in ((model, "cpu"), (model_n, "npu")):
        opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
        losses[dev] = []
        for _ in range(10):
            opt.zero_grad()
            with torch.autocast(dev, dtype=torch.bfloat16):
                loss = F.cross_entropy(m(x.to(dev)), y.to(dev))
            loss.backward()
            opt.step()
            losses[dev].append(loss.item())
    for a, b in zip(losses["npu"], losses["cpu"]):
        assert abs(a - b) <= 0.02 * abs(b) + 1e-3, (losses["npu"], losses["cpu"])


def test_autocast_queries():
    assert torch.npu.get_amp_supported_dtype() == [torch.float16, torch.bfloat16]
    assert torch.npu.is_bf16_supported()
    assert not torch.npu.is_autocast_enabled()
    with torch.npu.amp.autocast():
        assert torch.npu.is_autocast_enabled() and torch.npu.get_autocast_dtype() == torch.float16
    with torch.npu.amp.autocast(dtype=torch.bfloat16):
        assert torch.npu.get_autocast_dtype() == torch.bfloat16
        assert (torch.ones(2, 2, device="npu") @ torch.ones(2, 2, device="npu")).dtype == torch.bfloat16
    prev = torch.npu.get_autocast_dtype()
    try:
        torch.npu.set_autocast_dtype(torch.bfloat16)
        with torch.autocast("npu"):
            assert torch.npu.get_autocast_dtype() == torch.bfloat16
        with pytest.raises(ValueError, match="supports"):
            torch.npu.set_autocast_dtype(torch.float64)
    finally:
        torch.npu.set_autocast_dtype(prev)
    torch.npu.set_autocast_enabled(True)
    try:
        assert torch.is_autocast_enabled("npu")
    finally:
        torch.npu.set_autocast_enabled(False)


class _Twice(torch.autograd.Function):
    @staticmethod
    @torch.npu.amp.custom_fwd(cast_inputs=torch.float32)
    def forward(ctx, x):
        return x * 2

    @staticmethod
    @torch.npu.amp.custom_bwd
    def backward(ctx, g):
        return g * 2


def test_custom_fwd_casts_inputs():
    x = torch.ones(3, device="npu", dtype=torch.float16, requires_grad=True)
    with torch.npu.amp.autocast():
        y = _Twice.apply(x)
    assert y.dtype == torch.float32
    y.sum().backward()
    assert x.grad.dtype == torch.float16 and (x.grad == 2).all()


def _grads(dtype, seed):
    """Gradients with NaN and infinities here and there, in several layouts."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(6, 10, generator=g) * 1e3
    base[1, 3], base[4, 7] = float("inf"), float("nan")
    clean = torch.randn(5, 4, generator=g)
    return [base.to(dtype), base.to(dtype).t(), base.to(dtype)[:, ::3], clean.to(dtype), torch.zeros(0, 3, dtype=dtype),
            torch.tensor(2.5, dtype=dtype)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("inv_scale", [0.5, 1.0, 1 / 3])
def test_unscale_and_check_matches_cpu(dtype, inv_scale):
    for pick in ([0, 3], [3, 4, 5], [1], [2, 5]):
        cpu = [_grads(dtype, 0)[i].clone() for i in pick]
        npu = [t.npu() for t in cpu]
        npu = [t.t() if i == 1 else t for i, t in zip(pick, npu)]  # keep the transposed layout
        cpu = [t.t() if i == 1 else t for i, t in zip(pick, cpu)]
        fc, fn = torch.zeros(1), torch.zeros(1, device="npu")
        torch._amp_foreach_non_finite_check_and_unscale_(cpu, fc, torch.tensor([inv_scale]))
        torch._amp_foreach_non_finite_check_and_unscale_(npu, fn, torch.tensor([inv_scale], device="npu"))
        assert fn.item() == fc.item(), pick
        for a, b in zip(npu, cpu):
            assert a.stride() == b.stride()
            torch.testing.assert_close(a.cpu(), b, rtol=0, atol=0, equal_nan=True)


def test_found_inf_is_set_not_reset():
    found = torch.ones(1, device="npu")
    torch._amp_foreach_non_finite_check_and_unscale_([torch.ones(3, device="npu")], found,
                                                     torch.ones(1, device="npu"))
    assert found.item() == 1.0
    found.zero_()
    torch._amp_foreach_non_finite_check_and_unscale_([torch.ones(3, device="npu")], found,
                                                     torch.ones(1, device="npu"))
    assert found.item() == 0.0


def test_update_scale_matches_cpu():
    states = {dev: (torch.full((1,), 1024.0, device=dev), torch.zeros(1, dtype=torch.int32, device=dev))
              for dev in ("cpu", "npu")}
    for found in [0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0]:
        for dev, (scale, tracker) in states.items():
            out = torch._amp_update_scale_(scale, tracker, torch.full((1,), float(found), device=dev), 2.0, 0.25, 3)
            assert out is scale
        (sc, tc), (sn, tn) = states["cpu"], states["npu"]
        assert (sn.item(), tn.item()) == (sc.item(), tc.item())
    big = torch.full((1,), 3e38, device="npu")
    torch._amp_update_scale_(big, torch.full((1,), 2, dtype=torch.int32, device="npu"), torch.zeros(1, device="npu"),
                             2.0, 0.5, 3)
    assert big.item() == pytest.approx(3e38)  # growing to inf keeps the old scale


@pytest.mark.parametrize("bad, match", [
    (lambda g, f, s: ([g], f.double(), s), "found_inf must be a float tensor"),
    (lambda g, f, s: ([g], torch.zeros(2, device="npu"), s), "found_inf must be a 1-element tensor"),
    (lambda g, f, s: ([g], f, s.cpu()), "inv_scale must be on npu:0"),
    (lambda g, f, s: ([g], f, s.half()), "inv_scale must be a float tensor"),
    (lambda g, f, s: ([g.long()], f, s), "scaled_grads must be floating point"),
    (lambda g, f, s: ([g.cpu()], f, s), "one of scaled_grads is on cpu"),
    (lambda g, f, s: ([g.expand(3, 4)], f, s), "_amp_foreach_non_finite_check_and_unscale_"),
])
def test_unscale_errors(bad, match):
    g, f, s = torch.ones(1, 4, device="npu"), torch.zeros(1, device="npu"), torch.ones(1, device="npu")
    with pytest.raises(RuntimeError, match=match):
        torch._amp_foreach_non_finite_check_and_unscale_(*bad(g, f, s))
    assert (g == 1).all() and f.item() == 0  # nothing was touched


def test_update_scale_errors():
    s, t, f = torch.ones(1, device="npu"), torch.zeros(1, dtype=torch.int32, device="npu"), torch.zeros(1, device="npu")
    with pytest.raises(RuntimeError, match="growth_tracker must be an int tensor"):
        torch._amp_update_scale_(s, t.long(), f, 2.0, 0.5, 10)
    with pytest.raises(RuntimeError, match="current_scale must be a 1-element tensor"):
        torch._amp_update_scale_(torch.ones(2, device="npu"), t, f, 2.0, 0.5, 10)
    with pytest.raises(RuntimeError, match="found_inf must be on npu:0"):
        torch._amp_update_scale_(s, t, f.cpu(), 2.0, 0.5, 10)
    assert s.item() == 1 and t.item() == 0


def _scaled_run(device, scaler, steps=6, overflow_at=(2,)):
    """SGD on an f32 linear model with a GradScaler; gradients overflow at the given steps."""
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 3).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    scales, weights = [], []
    for step in range(steps):
        x = torch.randn(16, 8, generator=g).to(device)
        loss = model(x).square().mean()
        scaler.scale(loss).backward()
        if step in overflow_at:
            model.bias.grad[1] = float("inf")
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
        scales.append(scaler.get_scale())
        weights.append(model.weight.detach().cpu().clone())
    return scales, weights


@pytest.mark.parametrize("make", [lambda: torch.amp.GradScaler("npu", init_scale=256.0, growth_interval=2),
                                  lambda: torch.npu.amp.GradScaler(init_scale=256.0, growth_interval=2)])
def test_grad_scaler_skips_overflowing_steps_like_cpu(make):
    npu_scaler = make()
    sn, wn = _scaled_run("npu", npu_scaler)
    sc, wc = _scaled_run("cpu", torch.amp.GradScaler("cpu", init_scale=256.0, growth_interval=2))
    assert sn == sc == [256.0, 512.0, 256.0, 256.0, 512.0, 512.0]
    assert torch.equal(wn[2], wn[1])  # the overflowing step was skipped
    for a, b in zip(wn, wc):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    assert npu_scaler._scale.device.type == "npu"


def test_static_npu_grad_scaler_never_skips():
    scaler = torch.npu.amp.GradScaler(init_scale=128.0, dynamic=False)
    assert not scaler.is_dynamic()
    scales, weights = _scaled_run("npu", scaler, steps=3, overflow_at=())
    assert scales == [128.0] * 3
    ref = torch.npu.amp.GradScaler(init_scale=128.0)
    _, want = _scaled_run("npu", ref, steps=3, overflow_at=())
    for a, b in zip(weights, want):
        torch.testing.assert_close(a, b)
    state = scaler.state_dict()
    assert state["dynamic"] is False and state["scale"] == 128.0
    other = torch.npu.amp.GradScaler()
    other.load_state_dict(state)
    assert not other.is_dynamic() and other.get_scale() == 128.0
    plain = torch.npu.amp.GradScaler()
    plain.load_state_dict(torch.amp.GradScaler("npu", init_scale=4.0).state_dict() | {"scale": 4.0})
    assert plain.is_dynamic() and plain.get_scale() == 4.0
