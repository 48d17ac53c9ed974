"""torch_npu.optim's fused optimizers: the same parameters as their torch.optim counterparts on
CPU (or, for LAMB and BERT Adam, as a per-parameter reference written with plain torch ops),
parameters combined into flat buffers, state_dict round trips, and the combination rebuilt
when gradients change under it."""
import copy
import io
import math

import pytest
import torch
import torch.nn as nn

import torch_npu
from torch_npu.optim import (NpuFusedAdadelta, NpuFusedAdam, NpuFusedAdamW, NpuFusedBertAdam, NpuFusedLamb,
                             NpuFusedRMSprop, NpuFusedSGD)
from helpers import no_fallback  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_fallback")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(6, 8)
        self.norm = nn.LayerNorm(8)
        self.b = nn.Linear(8, 3)
        self.frozen = nn.Linear(3, 3)  # never gets a gradient
        self.frozen.requires_grad_(False)

    def forward(self, x):
        return self.b(torch.tanh(self.norm(self.a(x))))


def groups(model, **second):
    """Two param groups: the second overrides some hyper-parameters; plus a frozen parameter."""
    return [{"params": list(model.a.parameters()) + list(model.frozen.parameters())},
            {"params": list(model.norm.parameters()) + list(model.b.parameters()), **second}]


def batches(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(10, 6, generator=g), torch.randn(10, 3, generator=g)) for _ in range(n)]


def train(model, opt, data, device):
    for x, y in data:
        opt.zero_grad()
        ((model(x.to(device)) - y.to(device)) ** 2).mean().backward()
        opt.step()


def run_pair(fused_cls, ref_fn, kwargs, second, data=None, rtol=1e-5):
    torch.manual_seed(0)
    cpu = Net()
    npu = copy.deepcopy(cpu).npu()
    data = data or batches()
    train(cpu, ref_fn(groups(cpu, **second), **kwargs), data, "cpu")
    opt = fused_cls(groups(npu, **second), **kwargs)
    train(npu, opt, data, "npu")
    for (name, p), q in zip(cpu.named_parameters(), npu.parameters()):
        torch.testing.assert_close(q.detach().cpu(), p.detach(), rtol=rtol, atol=rtol, msg=lambda m: f"{name}: {m}")
    return npu, opt


CASES = [
    (NpuFusedSGD, torch.optim.SGD, dict(lr=0.1), dict(lr=0.05)),
    (NpuFusedSGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=1e-2), dict(dampening=0.3)),
    (NpuFusedSGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True), dict(weight_decay=0.1)),
    (NpuFusedAdam, torch.optim.Adam, dict(lr=1e-2), dict(weight_decay=0.1)),
    (NpuFusedAdam, torch.optim.Adam, dict(lr=1e-2, amsgrad=True, betas=(0.8, 0.99)), dict(eps=1e-4)),
    (NpuFusedAdamW, torch.optim.AdamW, dict(lr=1e-2), dict(weight_decay=0.3)),
    (NpuFusedAdamW, torch.optim.AdamW, dict(lr=1e-2, amsgrad=True), dict(lr=3e-2)),
    (NpuFusedRMSprop, torch.optim.RMSprop, dict(lr=1e-2), dict(weight_decay=0.1)),
    (NpuFusedRMSprop, torch.optim.RMSprop, dict(lr=1e-2, momentum=0.9, centered=True), dict(alpha=0.9)),
    (NpuFusedAdadelta, torch.optim.Adadelta, dict(), dict(rho=0.8, weight_decay=0.1)),
]


@pytest.mark.parametrize("fused, ref, kwargs, second", CASES, ids=lambda c: getattr(c, "__name__", str(c)))
def test_matches_torch_optim(fused, ref, kwargs, second):
    npu, opt = run_pair(fused, ref, kwargs, second)
    assert opt.is_fused_optimizer and opt.is_params_grads_combined
    assert (npu.frozen.weight.detach().cpu() != 0).any() and npu.frozen.weight.grad is None


class ReferenceOptimizer:
    """The zero_grad of a per-parameter reference optimizer over `groups`."""

    def __init__(self, groups):
        self.groups = groups

    def zero_grad(self):
        for g in self.groups:
            for p in g["params"]:
                p.grad = None


def lamb_reference(params_groups, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0, adam=False,
                   use_global_grad_norm=False):
    """LAMB per parameter, as torch_npu documents it, with plain torch ops."""
    state = {}

    class Ref(ReferenceOptimizer):
        @torch.no_grad()
        def step(self):
            grads = [p.grad for g in params_groups for p in g["params"] if p.grad is not None]
            gnorm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).float()
            for group in params_groups:
                o = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay) | group
                b1, b2 = o["betas"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    g = p.grad / gnorm if use_global_grad_norm and gnorm > 1 else p.grad
                    m, v = state.setdefault(p, (torch.zeros_like(p), torch.zeros_like(p)))
                    m.mul_(b1).add_(g, alpha=1 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1 - b2)
                    u = m / (v.sqrt() + o["eps"]) + o["weight_decay"] * p
                    w, a = p.norm().clamp(0, 10), u.norm()
                    trust = 1.0 if adam or w == 0 or a == 0 else w / a
                    p.sub_(o["lr"] * trust * u)
    return Ref(params_groups)


@pytest.mark.parametrize("kwargs", [dict(lr=1e-2), dict(lr=1e-2, weight_decay=0.1, use_global_grad_norm=True),
                                    dict(lr=1e-2, adam=True, betas=(0.8, 0.9))])
def test_lamb_matches_reference(kwargs):
    big = [(x * 30, y) for x, y in batches()]  # global gradient norms above 1
    run_pair(NpuFusedLamb, lamb_reference, kwargs, dict(lr=5e-3), data=big)


def bert_adam_reference(params_groups, lr, warmup=-1, t_total=-1, schedule="warmup_linear", b1=0.9, b2=0.999, e=1e-6,
                        weight_decay=0.01, max_grad_norm=1.0):
    """BERT Adam per parameter, with the clipping norm over each group's gradients."""
    state, steps = {}, {}
    schedules = {"warmup_linear": lambda x, w: x / w if x < w else max((x - 1.0) / (w - 1.0), 0.0),
                 "warmup_cosine": lambda x, w: x / w if x < w else 0.5 * (1.0 + math.cos(math.pi * x))}

    class Ref(ReferenceOptimizer):
        @torch.no_grad()
        def step(self):
            for gi, group in enumerate(params_groups):
                o = dict(lr=lr, warmup=warmup, t_total=t_total, schedule=schedule, weight_decay=weight_decay) | group
                ps = [p for p in group["params"] if p.grad is not None]
                norm = torch.sqrt(sum((p.grad ** 2).sum() for p in ps))
                coef = min(1.0, max_grad_norm / (norm.item() + 1e-6)) if max_grad_norm > 0 else 1.0
                step = steps.get(gi, 0)
                rate = o["lr"] * (schedules[o["schedule"]](step / o["t_total"], o["warmup"]) if o["t_total"] != -1 else 1)
                for p in ps:
                    g = p.grad * coef
                    m, v = state.setdefault(p, (torch.zeros_like(p), torch.zeros_like(p)))
                    m.mul_(b1).add_(g, alpha=1 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1 - b2)
                    p.sub_(rate * (m / (v.sqrt() + e) + o["weight_decay"] * p))
                steps[gi] = step + 1
    return Ref(params_groups)


@pytest.mark.parametrize("kwargs", [dict(lr=1e-2), dict(lr=1e-2, warmup=0.4, t_total=5, max_grad_norm=0.5),
                                    dict(lr=1e-2, warmup=0.2, t_total=8, schedule="warmup_cosine", max_grad_norm=0)])
def test_bert_adam_matches_reference(kwargs):
    run_pair(NpuFusedBertAdam, bert_adam_reference, kwargs, dict(weight_decay=0.0))


def test_parameters_live_in_combined_buffers():
    torch.manual_seed(0)
    model = Net().npu()
    opt = NpuFusedAdamW(model.parameters(), lr=1e-2)
    train(model, opt, batches(1), "npu")
    flat_p, flat_g = opt.get_combined_params()[0], opt.get_combined_grads()[0]
    trained = [p for p in model.parameters() if p.requires_grad]
    assert flat_p.numel() == sum(p.numel() for p in trained)
    offset = 0
    for p in trained:
        assert p.data_ptr() == flat_p.data_ptr() + offset * 4 and p.is_contiguous()
        assert p.grad.data_ptr() == flat_g.data_ptr() + offset * 4
        assert opt.state[p]["exp_avg"].untyped_storage().data_ptr() == opt.state[trained[0]]["exp_avg"].untyped_storage().data_ptr()
        offset += p.numel()
    assert torch_npu.utils.is_combined_tensor_valid(flat_p, trained)
    opt.zero_grad()
    assert (flat_g == 0).all() and all((p.grad == 0).all() for p in trained)
    with pytest.raises(ValueError, match="set_to_none"):
        opt.zero_grad(set_to_none=True)


def test_combination_is_rebuilt_when_gradients_change():
    """A gradient dropped and recreated (Module.zero_grad sets None) or a parameter that gains a
    gradient later is picked up at the next step, as torch.optim would."""
    torch.manual_seed(0)
    cpu = Net()
    npu = copy.deepcopy(cpu).npu()
    ref, opt = torch.optim.Adam(cpu.parameters(), lr=1e-2), NpuFusedAdam(npu.parameters(), lr=1e-2)
    for step, (x, y) in enumerate(batches(6)):
        for m, o, dev in ((cpu, ref, "cpu"), (npu, opt, "npu")):
            if step == 2:
                m.zero_grad(set_to_none=True)
            elif step == 4:
                m.frozen.weight.requires_grad_(True)
                o.zero_grad()
            else:
                o.zero_grad()
            out = m(x.to(dev))
            if step >= 4:
                out = m.frozen(out)
            ((out - y.to(dev)) ** 2).mean().backward()
            o.step()
    for (name, p), q in zip(cpu.named_parameters(), npu.parameters()):
        torch.testing.assert_close(q.detach().cpu(), p.detach(), rtol=1e-5, atol=1e-5, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("fused, kwargs", [(NpuFusedAdam, dict(lr=1e-2, amsgrad=True)),
                                           (NpuFusedSGD, dict(lr=0.1, momentum=0.9)),
                                           (NpuFusedLamb, dict(lr=1e-2)),
                                           (NpuFusedRMSprop, dict(lr=1e-2, centered=True, momentum=0.5))])
def test_state_dict_round_trip(fused, kwargs):
    torch.manual_seed(0)
    a = Net().npu()
    opt_a = fused(groups(a, lr=kwargs["lr"] / 2), **kwargs)
    data = batches(6)
    train(a, opt_a, data[:3], "npu")
    buf = io.BytesIO()
    torch.save({"model": a.state_dict(), "opt": opt_a.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf)
    b = Net().npu()
    b.load_state_dict(saved["model"])
    opt_b = fused(groups(b, lr=kwargs["lr"] / 2), **kwargs)
    opt_b.load_state_dict(saved["opt"])
    train(a, opt_a, data[3:], "npu")
    train(b, opt_b, data[3:], "npu")
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(q, p, rtol=0, atol=0)
    state = opt_b.state_dict()["state"]
    assert all(t.device.type == "npu" for s in state.values() for t in s.values() if isinstance(t, torch.Tensor))
    if fused is not NpuFusedSGD:
        assert state[0]["step"] == 6


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_parameters(dtype):
    """f16/bf16 parameters get their own combined buffer and follow an f32 run loosely."""
    torch.manual_seed(0)
    full = Net().npu()
    low = copy.deepcopy(full).to(dtype)
    data = batches(4)
    train(full, NpuFusedAdam(full.parameters(), lr=1e-2), data, "npu")
    opt = NpuFusedAdam(low.parameters(), lr=1e-2)
    for x, y in data:
        opt.zero_grad()
        ((low(x.npu().to(dtype)).float() - y.npu()) ** 2).mean().backward()
        opt.step()
    k = [torch.float32, torch.float16, torch.bfloat16].index(dtype)
    assert opt.get_combined_params()[k] is not None and opt.get_combined_params()[0] is None
    for p, q in zip(full.parameters(), low.parameters()):
        torch.testing.assert_close(q.float(), p, rtol=0.05, atol=0.05)


def test_grad_scaler_and_clipping():
    torch.manual_seed(0)
    cpu = Net()
    npu = copy.deepcopy(cpu).npu()
    ref, opt = torch.optim.SGD(cpu.parameters(), lr=0.1), NpuFusedSGD(npu.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("npu", init_scale=64.0)
    for x, y in batches(3):
        ref.zero_grad()
        ((cpu(x) - y) ** 2).mean().backward()
        want = torch.nn.utils.clip_grad_norm_(cpu.parameters(), 0.05)
        ref.step()
        opt.zero_grad()
        scaler.scale(((npu(x.npu()) - y.npu()) ** 2).mean()).backward()
        scaler.unscale_(opt)
        got = opt.clip_grad_norm_fused_(0.05)
        scaler.step(opt)
        scaler.update()
        torch.testing.assert_close(got.cpu(), want, rtol=1e-5, atol=1e-6)
    for p, q in zip(cpu.parameters(), npu.parameters()):
        torch.testing.assert_close(q.detach().cpu(), p.detach(), rtol=1e-5, atol=1e-6)


def test_bad_arguments():
    params = [nn.Parameter(torch.randn(2, device="npu"))]
    with pytest.raises(ValueError, match="Invalid learning rate"):
        NpuFusedAdam(params, lr=-1)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1"):
        NpuFusedLamb(params, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Nesterov"):
        NpuFusedSGD(params, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Invalid schedule"):
        NpuFusedBertAdam(params, lr=0.1, schedule="nope")
    p = nn.Parameter(torch.randn(2, device="npu", dtype=torch.float64))
    p.grad = torch.ones_like(p)
    with pytest.raises(TypeError, match="float32, float16 or bfloat16"):
        NpuFusedAdam([p]).step()
    q = nn.Parameter(torch.randn(2, 3, device="npu").t())
    q.grad = torch.ones_like(q)
    with pytest.raises(RuntimeError, match="contiguous"):
        NpuFusedAdam([q]).step()
