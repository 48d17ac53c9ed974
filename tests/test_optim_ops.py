"""addcmul, addcdiv, lerp (the arithmetic of torch.optim) on npu against CPU, and optimizer
steps with those ops running natively."""
import pytest
import torch

import torch_npu  # noqa: F401
from helpers import check, make, no_fallback  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_fallback")


def tol(dtype):
    return {torch.float16: dict(atol=2e-3, rtol=2e-3), torch.bfloat16: dict(atol=2e-2, rtol=2e-2)}.get(dtype, {})


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64])
def test_addcmul_addcdiv(dtype):
    a, b, c = make((4, 5), dtype, 1), make((5,), dtype, 2), make((4, 1), dtype, 3, positive=True)
    value = 0.5 if dtype.is_floating_point else 3
    check(torch.addcmul(a.npu(), b.npu(), c.npu(), value=value), torch.addcmul(a, b, c, value=value), **tol(dtype))
    x = a.npu()
    x.addcmul_(b.npu(), c.npu(), value=value)
    check(x, a.clone().addcmul_(b, c, value=value), **tol(dtype))
    if dtype.is_floating_point:
        check(torch.addcdiv(a.npu(), b.npu(), c.npu(), value=value), torch.addcdiv(a, b, c, value=value), **tol(dtype))
        out = torch.empty(0, dtype=dtype, device="npu")
        torch.addcdiv(a.npu(), b.npu(), c.npu(), value=-2, out=out)
        check(out, torch.addcdiv(a, b, c, value=-2), **tol(dtype))
    else:
        with pytest.raises(RuntimeError, match="Integer division with addcdiv"):
            torch.addcdiv(a.npu(), b.npu(), c.npu())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_lerp(dtype):
    a, b = make((4, 5), dtype, 1), make((4, 5), dtype, 2)
    w = torch.rand(5, generator=torch.Generator().manual_seed(4)).to(dtype)
    for weight in (0.3, 0.9, -0.2):
        check(torch.lerp(a.npu(), b.npu(), weight), torch.lerp(a, b, weight), **tol(dtype))
    check(torch.lerp(a.npu(), b.npu(), w.npu()), torch.lerp(a, b, w), **tol(dtype))
    x = a.npu()
    x.lerp_(b.npu(), 0.75)
    check(x, a.clone().lerp_(b, 0.75), **tol(dtype))
    with pytest.raises(RuntimeError, match="expected dtype"):
        torch.lerp(a.npu(), b.npu().double() if dtype != torch.float64 else b.npu().float(), 0.5)


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("opt", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_optimizer_steps_match_cpu(opt, foreach):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    model_n = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).npu()
    model_n.load_state_dict(model.state_dict())
    kw = dict(lr=0.05, foreach=foreach)
    if opt == "SGD":
        kw.update(momentum=0.9, nesterov=True, weight_decay=0.01)
    if opt in ("Adam", "AdamW"):
        kw.update(amsgrad=False, weight_decay=0.01)
    o, on = getattr(torch.optim, opt)(model.parameters(), **kw), getattr(torch.optim, opt)(model_n.parameters(), **kw)
    x, y = make((16, 6), torch.float32, 1), make((16, 3), torch.float32, 2)
    for _ in range(5):
        for m, op, dev in ((model, o, "cpu"), (model_n, on, "npu")):
            op.zero_grad()
            loss = ((m(x.to(dev)) - y.to(dev)) ** 2).mean()
            loss.backward()
            op.step()
    for p, pn in zip(model.parameters(), model_n.parameters()):
        # (adaptive optimizers amplify last-bit differences of the matmuls a little)
        check(pn.detach(), p.detach(), atol=1e-4, rtol=1e-4)


def lists(dtype=torch.float32, seed=0, positive=False):
    return [make(shape, dtype, seed + i, positive=positive) for i, shape in enumerate([(3, 4), (5,), (), (0, 2)])]


def test_foreach_ops_match_cpu():
    a, b, c = lists(seed=0), lists(seed=10), lists(seed=20, positive=True)
    an, bn, cn = ([t.npu() for t in x] for x in (a, b, c))

    def same(got, want):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            check(g, w)

    same(torch._foreach_add(an, bn, alpha=2), torch._foreach_add(a, b, alpha=2))
    same(torch._foreach_mul(an, 1.5), torch._foreach_mul(a, 1.5))
    same(torch._foreach_div(an, [1.0, 2.0, 3.0, 4.0]), torch._foreach_div(a, [1.0, 2.0, 3.0, 4.0]))
    same(torch._foreach_sqrt(cn), torch._foreach_sqrt(c))
    same(torch._foreach_maximum(an, bn), torch._foreach_maximum(a, b))
    same(torch._foreach_addcdiv(an, bn, cn, 0.5), torch._foreach_addcdiv(a, b, c, 0.5))
    same(torch._foreach_addcmul(an, bn, cn, [1.0, -1.0, 2.0, 0.5]), torch._foreach_addcmul(a, b, c, [1.0, -1.0, 2.0, 0.5]))
    same(torch._foreach_lerp(an, bn, 0.3), torch._foreach_lerp(a, b, 0.3))
    torch._foreach_mul_(an, bn)
    torch._foreach_mul_(a, b)
    same(an, a)
    torch._foreach_add_(an, 1)
    torch._foreach_add_(a, 1)
    same(an, a)
    torch._foreach_zero_(an)
    same(an, [torch.zeros_like(t) for t in a])
    with pytest.raises(RuntimeError, match="same number of tensors"):
        torch._foreach_add(an, bn[:2])


@pytest.mark.parametrize("opt,kw", [
    ("Adam", dict(weight_decay=0.01)),
    ("Adam", dict(amsgrad=True, maximize=True)),
    ("AdamW", dict(weight_decay=0.1)),
    ("AdamW", dict(amsgrad=True)),
    ("SGD", dict(momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(momentum=0.9, dampening=0.1)),
    ("SGD", dict()),
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_fused_optimizers_match_cpu(opt, kw, dtype):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).to(dtype)
    model_n = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).to(dtype).npu()
    model_n.load_state_dict(model.state_dict())
    kw = dict(lr=0.05, fused=True, **kw)
    o, on = getattr(torch.optim, opt)(model.parameters(), **kw), getattr(torch.optim, opt)(model_n.parameters(), **kw)
    x, y = make((16, 6), dtype, 1), make((16, 3), dtype, 2)
    for _ in range(4):
        for m, op, dev in ((model, o, "cpu"), (model_n, on, "npu")):
            op.zero_grad()
            ((m(x.to(dev)) - y.to(dev)) ** 2).mean().backward()
            op.step()
    t = dict(atol=1e-4, rtol=1e-4) if dtype != torch.bfloat16 else dict(atol=2e-2, rtol=2e-2)
    for p, pn in zip(model.parameters(), model_n.parameters()):
        check(pn.detach(), p.detach(), **t)
    for s, sn in zip(o.state.values(), on.state.values()):
        for k in s:
            check(sn[k], s[k], **t)


def test_fused_adam_grad_scale_and_found_inf():
    params = [make((4, 3), torch.float32, i) for i in range(2)]
    grads = [make((4, 3), torch.float32, 10 + i) for i in range(2)]

    def run(dev, found):
        p = [t.clone().to(dev) for t in params]
        g = [t.clone().to(dev) for t in grads]
        m = [torch.zeros_like(t) for t in p]
        v = [torch.zeros_like(t) for t in p]
        steps = [torch.tensor(1.0, device=dev) for _ in p]
        torch._fused_adamw_(p, g, m, v, [], steps, lr=0.1, beta1=0.9, beta2=0.99, weight_decay=0.01,
                            eps=1e-8, amsgrad=False, maximize=False,
                            grad_scale=torch.tensor(4.0, device=dev), found_inf=torch.tensor(found, device=dev))
        return p + g + m + v

    for found in (0.0, 1.0):
        for a, b in zip(run("npu", found), run("cpu", found)):
            check(a, b)
    # found_inf = 1 leaves everything untouched
    assert all(torch.equal(a.cpu(), b) for a, b in zip(run("npu", 1.0)[:2], params))
