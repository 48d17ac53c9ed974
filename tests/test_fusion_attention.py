"""torch_npu.npu_fusion_attention / npu_fusion_attention_grad against a plain-PyTorch CPU
reference of torch_npu's documented formula: softmax(mask(scale * (pse + q kᵀ))) v."""
import math

import pytest
import torch

import torch_npu
from helpers import no_fallback  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_fallback")


def reference(q, k, v, scale, pse=None, hidden=None):
    """(B, N, S, D) inputs; key/value heads repeat for grouped-query attention."""
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    s = q @ k.transpose(-1, -2)
    if pse is not None:
        s = s + pse
    s = s * scale
    if hidden is not None:
        s = s.masked_fill(hidden, -math.inf)
    return torch.softmax(s, -1) @ v


def to_layout(t, layout):
    if layout == "BNSD":
        return t
    if layout == "BSND":
        return t.transpose(1, 2).contiguous()
    b, n, s, d = t.shape
    t = t.transpose(1, 2).reshape(b, s, n * d)
    return t.transpose(0, 1).contiguous() if layout == "SBH" else t


def inputs(b=2, n=4, nkv=4, sq=9, skv=12, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, n, sq, d, generator=g), torch.randn(b, nkv, skv, d, generator=g),
            torch.randn(b, nkv, skv, d, generator=g))


@pytest.mark.parametrize("layout", ["BNSD", "BSND", "BSH", "SBH"])
@pytest.mark.parametrize("nkv", [4, 2])
def test_layouts_forward_backward(layout, nkv):
    q, k, v = inputs(nkv=nkv)
    scale = 1 / math.sqrt(q.shape[-1])
    hidden = torch.rand(2, 1, 9, 12, generator=torch.Generator().manual_seed(1)) > 0.7
    hidden[..., 0] = False  # no row fully hidden
    qa, ka, va = (t.clone().requires_grad_() for t in (q, k, v))
    want = reference(qa, ka, va, scale, hidden=hidden)
    grad = torch.randn(want.shape)
    want.backward(grad)
    qn, kn, vn = (to_layout(t, layout).npu().requires_grad_() for t in (q, k, v))
    out, smax, ssum, _, seed, offset, numels = torch_npu.npu_fusion_attention(
        qn, kn, vn, 4, layout, atten_mask=hidden.npu(), scale=scale)
    assert out.shape == qn.shape and smax.shape == (2, 4, 9, 8) and ssum.shape == smax.shape
    assert (seed, offset, numels) == (0, 0, 0)
    torch.testing.assert_close(out.cpu(), to_layout(want.detach(), layout), atol=2e-5, rtol=2e-5)
    out.backward(to_layout(grad, layout).npu())
    for got, ref in ((qn, qa), (kn, ka), (vn, va)):
        torch.testing.assert_close(got.grad.cpu(), to_layout(ref.grad, layout), atol=2e-5, rtol=2e-5)
    # the explicit grad op gives the same gradients from the forward's statistics
    dq, dk, dv, dpse, _ = torch_npu.npu_fusion_attention_grad(
        qn.detach(), kn.detach(), vn.detach(), to_layout(grad, layout).npu(), 4, layout,
        atten_mask=hidden.npu(), softmax_max=smax, softmax_sum=ssum, attention_in=out.detach(),
        scale_value=scale)
    for got, ref in ((dq, qn), (dk, kn), (dv, vn)):
        torch.testing.assert_close(got.cpu(), ref.grad.cpu(), atol=1e-6, rtol=1e-6)
    assert dpse.numel() == 0


@pytest.mark.parametrize("mode,sq,skv", [(2, 9, 12), (3, 9, 12), (3, 12, 12), (4, 12, 12)])
def test_sparse_modes(mode, sq, skv):
    q, k, v = inputs(sq=sq, skv=skv)
    i, j = torch.arange(sq).unsqueeze(1), torch.arange(skv).unsqueeze(0)
    pre, nxt = 3, 1
    hidden = {2: j > i, 3: j > i + (skv - sq)}.get(mode)
    if mode == 4:
        rel = j - i - (skv - sq)
        hidden = (rel > nxt) | (rel < -pre)
    compressed = torch.triu(torch.ones(2048, 2048, dtype=torch.bool), 1).npu()  # as torch_npu takes it
    out = torch_npu.npu_fusion_attention(q.npu(), k.npu(), v.npu(), 4, "BNSD", atten_mask=compressed,
                                         scale=0.3, sparse_mode=mode, pre_tockens=pre, next_tockens=nxt)[0]
    torch.testing.assert_close(out.cpu(), reference(q, k, v, 0.3, hidden=hidden), atol=2e-5, rtol=2e-5)


def test_pse_and_its_gradient():
    q, k, v = inputs()
    pse = torch.randn(1, 4, 9, 12)
    pa = pse.clone().requires_grad_()
    want = reference(q, k, v, 0.5, pse=pa)
    grad = torch.randn(want.shape)
    want.backward(grad)
    out, smax, ssum, *_ = torch_npu.npu_fusion_attention(q.npu(), k.npu(), v.npu(), 4, "BNSD", pse=pse.npu(), scale=0.5)
    torch.testing.assert_close(out.cpu(), want.detach(), atol=2e-5, rtol=2e-5)
    _, _, _, dpse, _ = torch_npu.npu_fusion_attention_grad(
        q.npu(), k.npu(), v.npu(), grad.npu(), 4, "BNSD", pse=pse.npu(), softmax_max=smax,
        softmax_sum=ssum, attention_in=out, scale_value=0.5)
    torch.testing.assert_close(dpse.cpu(), pa.grad, atol=2e-5, rtol=2e-5)


def test_dropout_seed_offset_round_trip():
    q, k, v = (t.double() for t in inputs(seed=3))
    qn, kn, vn = (t.npu().requires_grad_() for t in (q, k, v))
    out, smax, ssum, _, seed, offset, numels = torch_npu.npu_fusion_attention(
        qn, kn, vn, 4, "BNSD", scale=0.4, keep_prob=0.7)
    assert numels == 2 * 4 * 9 * 12 and isinstance(seed, int) and isinstance(offset, int)
    grad = torch.randn(out.shape, dtype=torch.float64).npu()
    out.backward(grad)
    dq, dk, dv, _, _ = torch_npu.npu_fusion_attention_grad(
        q.npu(), k.npu(), v.npu(), grad, 4, "BNSD", softmax_max=smax, softmax_sum=ssum,
        attention_in=out.detach(), scale_value=0.4, keep_prob=0.7, seed=seed, offset=offset, numels=numels)
    for got, ref in ((dq, qn), (dk, kn), (dv, vn)):
        torch.testing.assert_close(got.cpu(), ref.grad.cpu())


def test_unsupported_arguments_say_what_is_missing():
    q, k, v = (t.npu() for t in inputs())
    with pytest.raises(NotImplementedError, match="TND"):
        torch_npu.npu_fusion_attention(q[0], k[0], v[0], 4, "TND", actual_seq_qlen=[9], actual_seq_kvlen=[12])
    with pytest.raises(NotImplementedError, match="sparse_mode 5"):
        torch_npu.npu_fusion_attention(q, k, v, 4, "BNSD", sparse_mode=5)
    with pytest.raises(RuntimeError, match="input_layout"):
        torch_npu.npu_fusion_attention(q, k, v, 4, "XYZ")
