"""F.scaled_dot_product_attention on npu (the blocked "overrideable" kernel) against PyTorch
CPU, forward and backward: masks, causal, grouped-query heads, dropout, dtypes, errors."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import torch_npu  # noqa: F401
from helpers import FLOATS, check, no_fallback  # noqa: F401
from torch_npu.npu import sim

pytestmark = pytest.mark.usefixtures("no_fallback")


def tol(dtype):
    return {
        torch.float16: dict(atol=5e-3, rtol=5e-3),
        torch.bfloat16: dict(atol=4e-2, rtol=4e-2),
        torch.float32: dict(atol=2e-5, rtol=2e-5),
    }.get(dtype, {})


def qkv(b, h, hk, l, s, d, dv, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    mk = lambda *shape: torch.randn(*shape, generator=g).to(dtype)  # noqa: E731
    return mk(b, h, l, d), mk(b, hk, s, d), mk(b, hk, s, dv)


def run_both(q, k, v, mask=None, **kw):
    """Forward and backward on CPU and npu; returns (cpu, npu) lists [out, dq, dk, dv, (dmask)]."""
    results = []
    grad = None
    for dev in ("cpu", "npu"):
        ins = [t.detach().to(dev).requires_grad_() for t in (q, k, v)]
        m = None
        if mask is not None:
            m = mask.detach().to(dev)
            if m.is_floating_point():
                m.requires_grad_()
        out = F.scaled_dot_product_attention(*ins, attn_mask=m, **kw)
        if grad is None:
            grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(9)).to(out.dtype)
        out.backward(grad.to(dev))
        r = [out] + [t.grad for t in ins]
        if m is not None and m.requires_grad:
            r.append(m.grad)
        results.append(r)
    return results


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dims", [(2, 3, 3, 17, 17, 8, 8), (1, 2, 2, 70, 150, 16, 8), (2, 2, 2, 9, 4, 4, 5)],
                         ids=["square", "blocks", "more-queries"])
def test_matches_cpu(dtype, causal, dims):
    q, k, v = qkv(*dims, dtype)
    cpu, npu = run_both(q, k, v, is_causal=causal)
    for a, b in zip(npu, cpu):
        check(a, b, **tol(dtype))


@pytest.mark.parametrize("mask_shape", [(17, 23), (2, 1, 17, 23), (1, 3, 1, 23), (2, 3, 17, 23)])
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_masks_broadcast_and_their_gradient(mask_shape, kind):
    q, k, v = qkv(2, 3, 3, 17, 23, 8, 8, torch.float32, 1)
    g = torch.Generator().manual_seed(2)
    if kind == "bool":
        mask = torch.rand(mask_shape, generator=g) > 0.3
    else:
        mask = torch.randn(mask_shape, generator=g)
        mask[..., 0] = -math.inf  # some keys hidden outright
    cpu, npu = run_both(q, k, v, mask=mask)
    assert len(npu) == (5 if kind == "float" else 4)
    for a, b in zip(npu, cpu):
        check(a, b, atol=2e-5, rtol=2e-5)


def test_fully_masked_rows_give_zeros():
    q, k, v = qkv(1, 2, 2, 6, 5, 4, 4, torch.float32, 3)
    mask = torch.ones(6, 5, dtype=torch.bool)
    mask[2] = False
    cpu, npu = run_both(q, k, v, mask=mask)
    assert npu[0][0, :, 2].abs().sum().item() == 0
    for a, b in zip(npu, cpu):
        check(a, b, atol=2e-5, rtol=2e-5)


def test_grouped_query_attention_and_scale():
    q, k, v = qkv(2, 6, 2, 12, 20, 8, 4, torch.float32, 4)
    cpu, npu = run_both(q, k, v, enable_gqa=True, scale=0.3, is_causal=True)
    for a, b in zip(npu, cpu):
        check(a, b, atol=2e-5, rtol=2e-5)


def test_three_dim_inputs_and_non_contiguous():
    q, k, v = qkv(1, 4, 4, 10, 10, 6, 6, torch.float32, 5)
    q3, k3, v3 = q[0], k[0], v[0]  # (N, L, E)
    cpu, npu = run_both(q3, k3, v3, mask=torch.randn(10, 10))
    for a, b in zip(npu, cpu):
        check(a, b, atol=2e-5, rtol=2e-5)
    # (B, L, H, D) memory seen as (B, H, L, D), as models do after a reshape
    x = torch.randn(2, 10, 4, 8)
    t = x.transpose(1, 2)
    check(F.scaled_dot_product_attention(t.npu(), t.npu(), t.npu()), F.scaled_dot_product_attention(t, t, t), atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("dims", [(0, 2, 2, 4, 4, 3, 3), (1, 2, 2, 0, 4, 3, 3), (1, 2, 2, 4, 0, 3, 3), (1, 2, 2, 4, 4, 0, 3)])
def test_zero_sizes(dims):
    q, k, v = qkv(*dims, torch.float32)
    cpu, npu = run_both(q, k, v)
    for a, b in zip(npu, cpu):
        check(a, b)


def test_runs_natively_without_the_attention_matrix():
    sim.reset_fallback_counts()
    q, k, v = qkv(1, 2, 2, 300, 300, 8, 8, torch.float32)
    qn = q.npu().requires_grad_()
    out = F.scaled_dot_product_attention(qn, k.npu(), v.npu(), is_causal=True)
    assert out.grad_fn.name().startswith("ScaledDotProductFusedAttentionOverrideable")
    out.sum().backward()
    assert sim.fallback_counts() == {}


def test_dropout_is_reproducible_and_its_gradient_consistent():
    q, k, v = qkv(1, 2, 2, 40, 70, 8, 8, torch.float64, 6)
    torch.npu.manual_seed(3)
    a = F.scaled_dot_product_attention(q.npu(), k.npu(), v.npu(), dropout_p=0.4)
    torch.npu.manual_seed(3)
    b = F.scaled_dot_product_attention(q.npu(), k.npu(), v.npu(), dropout_p=0.4)
    c = F.scaled_dot_product_attention(q.npu(), k.npu(), v.npu(), dropout_p=0.4)
    assert torch.equal(a.cpu(), b.cpu()) and not torch.equal(a.cpu(), c.cpu())
    # With v = ones every output is (kept probability mass) / (1 - p): 1 on average.
    ones = torch.ones(1, 2, 70, 1, dtype=torch.float64).npu()
    mass = F.scaled_dot_product_attention(q.npu(), k.npu(), ones, dropout_p=0.4).cpu()
    assert abs(mass.mean().item() - 1) < 0.1 and mass.std().item() > 0.05

    def f(q, k, v):
        torch.npu.manual_seed(5)  # the same mask on every evaluation
        return F.scaled_dot_product_attention(q, k, v, dropout_p=0.3)

    ins = [t[..., :12, :].contiguous().npu().requires_grad_() for t in (q, k, v)]
    assert torch.autograd.gradcheck(f, ins, eps=1e-6, atol=1e-6)


def test_math_backend_still_selectable():
    q, k, v = qkv(1, 2, 2, 5, 5, 4, 4, torch.float32)
    with sdpa_kernel([SDPBackend.MATH]):
        out = F.scaled_dot_product_attention(q.npu().requires_grad_(), k.npu(), v.npu())
    assert "Overrideable" not in out.grad_fn.name()
    check(out.detach(), F.scaled_dot_product_attention(q, k, v), atol=2e-5, rtol=2e-5)


def test_bad_inputs_raise_clear_errors():
    q, k, v = qkv(1, 2, 2, 5, 5, 4, 4, torch.float32)
    with pytest.raises(RuntimeError, match="same device|device"):
        F.scaled_dot_product_attention(q.npu(), k, v.npu())
    with pytest.raises(RuntimeError, match="dtype"):
        F.scaled_dot_product_attention(q.npu(), k.double().npu(), v.npu())
    with pytest.raises(RuntimeError):
        F.scaled_dot_product_attention(q.npu(), k.npu(), v.npu(), attn_mask=torch.zeros(3, 5).npu())
    # the device still works
    check(F.scaled_dot_product_attention(q.npu(), k.npu(), v.npu()), F.scaled_dot_product_attention(q, k, v), atol=2e-5, rtol=2e-5)
