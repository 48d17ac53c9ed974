"""torch_npu.npu_* custom operators (torch.ops.npu.*): forward and backward against references
written with plain PyTorch ops on CPU (in float64 where the op computes in float32), over
dtypes and non-contiguous inputs; fake-tensor shapes and torch.compile tracing; bad input."""
import math

import pytest
import torch
import torch.nn.functional as F

import torch_npu
from helpers import no_fallback  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_fallback")

TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def close(got, want, dtype=torch.float32, scale=1.0):
    tol = TOL[dtype]
    torch.testing.assert_close(got.detach().cpu().double(), want.detach().double(), rtol=tol, atol=tol * scale)


def leaf(t, dtype=torch.float32, npu=False):
    t = t.to(dtype)
    return (t.npu() if npu else t.clone()).requires_grad_()


def check_grads(npu_inputs, cpu_inputs, npu_out, cpu_out, dtype=torch.float32):
    g = torch.randn(cpu_out.shape, generator=torch.Generator().manual_seed(9))
    npu_out.backward(g.to(npu_out.dtype).npu())
    cpu_out.backward(g.to(cpu_out.dtype))
    for a, b in zip(npu_inputs, cpu_inputs):
        if b.grad is not None:
            # low-precision gradients are sums of rounded products: tolerance scales with size
            close(a.grad, b.grad, dtype, scale=max(1.0, b.grad.abs().max().item()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_rms_norm(dtype):
    x = torch.randn(6, 5, 16)[:, ::2]  # non-contiguous
    gamma = torch.rand(16) + 0.5
    xn, gn = leaf(x, dtype, True), leaf(gamma, dtype, True)
    y, rstd = torch_npu.npu_rms_norm(xn, gn, epsilon=1e-5)
    xd, gd = leaf(x, torch.float64), leaf(gamma, torch.float64)
    ref_rstd = 1 / torch.sqrt((xd.to(dtype).double() ** 2).mean(-1, keepdim=True) + 1e-5)
    ref = xd * ref_rstd * gd
    assert y.dtype == dtype and rstd.dtype == torch.float32 and rstd.shape == (6, 3, 1)
    close(rstd, ref_rstd, dtype)
    close(y, ref, dtype)
    check_grads([xn, gn], [xd, gd], y.float(), ref, dtype)
    # gamma over the last two dims
    y2, r2 = torch_npu.npu_rms_norm(xn.detach(), torch.ones(3, 16, dtype=dtype, device="npu"))
    assert r2.shape == (6, 1, 1)


def test_add_rms_norm():
    a, b, g = torch.randn(4, 32), torch.randn(4, 32), torch.randn(32)
    y, rstd, x = torch_npu.npu_add_rms_norm(a.npu(), b.npu(), g.npu(), 1e-6)
    s = (a + b).double()
    close(x, a + b)
    close(y, s / torch.sqrt((s ** 2).mean(-1, keepdim=True) + 1e-6) * g.double())


def test_layer_norm_eval():
    x, w, b = torch.randn(6, 4), torch.randn(4), torch.randn(4)
    close(torch_npu.npu_layer_norm_eval(x.npu(), [4], w.npu(), b.npu(), 1e-5), F.layer_norm(x, [4], w, b, 1e-5))
    close(torch_npu.npu_layer_norm_eval(x.npu(), [4]), F.layer_norm(x, [4]))


def rotary_reference(x, r1, r2, mode):
    """out[i] = r1[i] x[i] + r2[i] partner(i), written index by index on the last dim."""
    d = x.shape[-1]
    out = torch.empty_like(x)
    for i in range(d):
        if mode == "half":
            partner = -x[..., i + d // 2] if i < d // 2 else x[..., i - d // 2]
        else:
            partner = -x[..., i + 1] if i % 2 == 0 else x[..., i - 1]
        out[..., i] = r1[..., i] * x[..., i] + r2[..., i] * partner
    return out


@pytest.mark.parametrize("mode", ["half", "interleave"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rotary_mul(mode, dtype):
    x = torch.randn(2, 3, 5, 8)  # B N S D; cos/sin as 11SD
    r1, r2 = torch.rand(1, 1, 5, 8) * 2 - 1, torch.rand(1, 1, 5, 8) * 2 - 1
    xn, an, bn = leaf(x, dtype, True), leaf(r1, dtype, True), leaf(r2, dtype, True)
    out = torch_npu.npu_rotary_mul(xn, an, bn, rotary_mode=mode)
    xd, ad, bd = leaf(x.to(dtype), torch.float64), leaf(r1.to(dtype), torch.float64), leaf(r2.to(dtype), torch.float64)
    ref = rotary_reference(xd, ad.expand_as(xd), bd.expand_as(xd), mode)
    assert out.dtype == dtype
    close(out, ref, dtype)
    check_grads([xn, an, bn], [xd, ad, bd], out.float(), ref, dtype)


def test_rotary_mul_with_rotate_matrix():
    x, r1, r2 = torch.randn(1, 2, 3, 4), torch.rand(1, 1, 3, 4), torch.rand(1, 1, 3, 4)
    rot = torch.zeros(4, 4)
    rot[2, 0], rot[3, 1], rot[0, 2], rot[1, 3] = -1, -1, 1, 1  # the half-mode rotation as a matrix
    got = torch_npu.npu_rotary_mul(x.npu(), r1.npu(), r2.npu(), rotate=rot.npu())
    close(got, rotary_reference(x.double(), r1.expand_as(x).double(), r2.expand_as(x).double(), "half"))


def test_apply_rotary_pos_emb_in_place():
    q, k = torch.randn(2, 5, 4, 8), torch.randn(2, 5, 1, 8)  # BSND, grouped key heads
    cos, sin = torch.rand(2, 5, 1, 8), torch.rand(2, 5, 1, 8)
    qn, kn = q.npu(), k.npu()
    rq, rk = torch_npu.npu_apply_rotary_pos_emb(qn, kn, cos.npu(), sin.npu())
    assert rq is qn and rk is kn
    close(qn, rotary_reference(q.double(), cos.expand_as(q).double(), sin.expand_as(q).double(), "half"))
    close(kn, rotary_reference(k.double(), cos.double(), sin.double(), "half"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_swiglu(dtype):
    x = torch.randn(3, 4, 10)
    xn, xd = leaf(x, dtype, True), leaf(x.to(dtype), torch.float64)
    out = torch_npu.npu_swiglu(xn, dim=-1)
    a, b = xd[..., :5], xd[..., 5:]
    ref = a * torch.sigmoid(a) * b
    close(out, ref, dtype)
    check_grads([xn], [xd], out.float(), ref, dtype)
    out1 = torch_npu.npu_swiglu(xn.detach(), dim=1)
    close(out1, xd[:, :2] * torch.sigmoid(xd[:, :2]) * xd[:, 2:], dtype)


def gelu_reference(x, tanh):
    if tanh:
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


@pytest.mark.parametrize("approximate", [0, 1])
@pytest.mark.parametrize("left", [False, True])
def test_geglu(approximate, left):
    x = torch.randn(4, 12)
    xn, xd = leaf(x, npu=True), leaf(x, torch.float64)
    y, gelu = torch_npu.npu_geglu(xn, dim=-1, approximate=approximate, activate_left=left)
    a, b = xd[:, :6], xd[:, 6:]
    gate, lin = (a, b) if left else (b, a)
    ref_gelu = gelu_reference(gate, approximate == 1)
    close(gelu, ref_gelu)
    close(y, lin * ref_gelu)
    check_grads([xn], [xd], y, lin * ref_gelu)


def test_gelu_silu_fast_gelu_gelu_mul():
    x = torch.randn(5, 8)
    xn, xd = leaf(x, npu=True), leaf(x, torch.float64)
    for op, ref in ((torch_npu.npu_fast_gelu, lambda t: t / (1 + torch.exp(-1.702 * t))),
                    (torch_npu.fast_gelu, lambda t: t / (1 + torch.exp(-1.702 * t))),
                    (torch_npu.npu_silu, lambda t: t / (1 + torch.exp(-t))),
                    (lambda t: torch_npu.npu_gelu(t, approximate="tanh"), lambda t: gelu_reference(t, True)),
                    (torch_npu.npu_gelu, lambda t: gelu_reference(t, False))):
        xn.grad = xd.grad = None
        out, want = op(xn), ref(xd)
        close(out, want)
        check_grads([xn], [xd], out, want)
    close(torch_npu.npu_gelu_mul(x.npu(), approximate="tanh"), gelu_reference(xd[:, :4], True) * xd[:, 4:])


def test_layout_ops():
    x = torch.rand(2, 3, 4, 6)
    y = torch_npu.npu_confusion_transpose(x.npu(), (0, 2, 1, 3), (2, 4, 18), True)
    assert y.shape == (2, 4, 18) and torch.equal(y.cpu(), x.permute(0, 2, 1, 3).reshape(2, 4, 18))
    y2 = torch_npu.npu_confusion_transpose(x.npu(), (0, 2, 1), (2, 12, 6), False)
    assert y2.shape == (2, 6, 12) and torch.equal(y2.cpu(), x.reshape(2, 12, 6).permute(0, 2, 1))
    t = torch_npu.npu_transpose(x.npu(), (2, 0, 1, 3))
    assert t.is_contiguous() and torch.equal(t.cpu(), x.permute(2, 0, 1, 3))
    a, w, b = torch.rand(2, 16), torch.rand(4, 16), torch.rand(4)
    close(torch_npu.npu_linear(a.npu(), w.npu(), b.npu()), a.double() @ w.double().t() + b.double())
    m1, m2 = torch.randn(10, 3, 4), torch.randn(10, 4, 5)
    close(torch_npu.npu_bmmV2(m1.npu(), m2.npu(), []), torch.bmm(m1.double(), m2.double()))


def test_dtype_cast_and_its_gradient():
    x = torch.tensor([0, 0.5, -1.0], device="npu", requires_grad=True)
    assert torch_npu.npu_dtype_cast(x.detach(), torch.int).cpu().tolist() == [0, 0, -1]
    h = torch_npu.npu_dtype_cast(x, torch.float16)
    assert h.dtype == torch.float16
    h.sum().backward()
    assert x.grad.dtype == torch.float32 and x.grad.cpu().tolist() == [1, 1, 1]


def test_one_hot():
    a = torch.tensor([5, 3, 2, 1], dtype=torch.int32)
    got = torch_npu.npu_one_hot(a.npu(), depth=5)
    want = torch.zeros(4, 5)
    for i, c in enumerate(a.tolist()):
        if c < 5:
            want[i, c] = 1
    assert got.dtype == torch.float32 and torch.equal(got.cpu(), want)
    b = torch.tensor([[0, 2], [1, 1]])
    got = torch_npu.npu_one_hot(b.npu(), num_classes=0, depth=3, on_value=7, off_value=-1)
    want = torch.full((3, 2, 2), -1.0)
    for i in range(2):
        for j in range(2):
            want[b[i, j], i, j] = 7
    assert torch.equal(got.cpu(), want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_scaled_masked_softmax(dtype):
    x = torch.randn(2, 3, 32, 32)
    mask = torch.rand(2, 1, 32, 32) > 0.7  # broadcast over heads
    xn, xd = leaf(x, dtype, True), leaf(x.to(dtype), torch.float64)
    out = torch_npu.npu_scaled_masked_softmax(xn, mask.npu(), scale=0.5)
    scores = xd * 0.5
    scores = torch.where(mask, torch.full_like(scores, -10000.0), scores)
    ref = torch.exp(scores - scores.max(-1, keepdim=True).values)
    ref = ref / ref.sum(-1, keepdim=True)
    assert out.dtype == dtype
    close(out, ref, dtype)
    check_grads([xn], [xd], out.float(), ref, dtype)
    tri = torch_npu.npu_scaled_masked_softmax(xn.detach(), mask.npu(), fixed_triu_mask=True)
    upper = torch.ones(32, 32, dtype=torch.bool).triu(1)
    assert (tri.cpu()[..., upper] < 1e-3).all() and torch.allclose(tri.float().sum(-1).cpu(), torch.ones(2, 3, 32),
                                                                    atol=1e-2)


def test_npu_dropout_mask_and_gradient():
    x = torch.ones(100_000, device="npu", requires_grad=True)
    out, mask = torch_npu._npu_dropout(x, 0.3)
    assert mask.dtype == torch.uint8 and mask.numel() == (100_000 + 127) // 128 * 16
    bits = ((mask.cpu().unsqueeze(-1) >> torch.arange(8, dtype=torch.uint8)) & 1).reshape(-1)
    kept = bits[:100_000].bool()
    assert bits[100_000:].sum() == 0                      # padding bits are zero
    assert abs(kept.float().mean().item() - 0.7) < 0.01
    o = out.detach().cpu()
    assert torch.equal(o != 0, kept) and torch.allclose(o[kept], torch.tensor(1 / 0.7))
    out.sum().backward()
    assert torch.allclose(x.grad.cpu(), kept.float() / 0.7)
    same, full = torch_npu._npu_dropout(torch.arange(5.0, device="npu"), 0.0)
    assert torch.equal(same.cpu(), torch.arange(5.0)) and full.cpu()[0].item() == 31
    assert torch_npu._npu_dropout(torch.ones(3, device="npu"), 1.0)[0].cpu().eq(0).all()


def test_fake_tensors_and_compile():
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():
        x = torch.empty(4, 8, 16, device="npu")
        assert torch_npu.npu_rms_norm(x, torch.empty(16, device="npu"))[1].shape == (4, 8, 1)
        assert torch_npu.npu_swiglu(x).shape == (4, 8, 8)
        assert torch_npu._npu_dropout(x, 0.1)[1].shape == (64,)  # 512 bits
        assert torch_npu.npu_confusion_transpose(x, (1, 0, 2), (8, 64), True).shape == (8, 64)
        q = torch.empty(2, 4, 16, 8, device="npu")
        out, smax, _, _, seed, offset, numels = torch_npu.npu_fusion_attention(q, q, q, 4, "BNSD", keep_prob=0.9)
        assert out.shape == q.shape and smax.shape == (2, 4, 16, 8) and numels == 2 * 4 * 16 * 16
    assert torch_npu.npu_fusion_attention is torch.ops.npu.npu_fusion_attention

    def block(x, g):
        y, _ = torch_npu.npu_rms_norm(x, g)
        return torch_npu.npu_swiglu(y)

    x, g = torch.randn(4, 16, device="npu"), torch.rand(16, device="npu")
    compiled = torch.compile(block, backend="aot_eager", fullgraph=True)
    close(compiled(x, g), block(x, g).cpu())


def test_bad_input_is_a_clear_error():
    x = torch.randn(4, 7, device="npu")
    with pytest.raises(RuntimeError, match="must be even"):
        torch_npu.npu_swiglu(x)
    with pytest.raises(RuntimeError, match="gamma of shape"):
        torch_npu.npu_rms_norm(x, torch.ones(5, device="npu"))
    with pytest.raises(RuntimeError, match="rotary_mode"):
        torch_npu.npu_rotary_mul(torch.randn(1, 1, 2, 4, device="npu"), x, x, rotary_mode="quarter")
    with pytest.raises(RuntimeError, match="integer tensor"):
        torch_npu.npu_one_hot(x, depth=3)
    with pytest.raises(RuntimeError, match="p must be in"):
        torch_npu._npu_dropout(x, 1.5)
    with pytest.raises(NotImplementedError):
        torch_npu._npu_dropout(torch.randn(3), 0.5)  # npu tensors only
    assert torch.ops.npu.npu_swiglu is not None and torch_npu.npu_swiglu(torch.randn(2, 4, device="npu")).shape == (2, 2)


def test_moe_gating_top_k_softmax():
    x = torch.randn(2, 3, 6)
    finished = torch.tensor([[False, True, False], [False, False, True]])
    y, experts, rows = torch_npu.npu_moe_gating_top_k_softmax(x.npu(), finished.npu(), k=2)
    flat = x.reshape(6, 6).double()
    for r in range(6):
        probs = torch.exp(flat[r]) / torch.exp(flat[r]).sum()
        best = sorted(range(6), key=lambda e: -probs[e].item())[:2]
        for j in range(2):
            want_e = 6 if finished.reshape(-1)[r] else best[j]
            assert experts.reshape(6, 2)[r, j].item() == want_e
            assert abs(y.reshape(6, 2)[r, j].item() - probs[best[j]].item()) < 1e-6
            assert rows.reshape(6, 2)[r, j].item() == j * 6 + r
    assert experts.dtype == rows.dtype == torch.int32 and y.shape == (2, 3, 2)


def test_moe_init_and_finalize_routing():
    x = torch.tensor([[0.1] * 4, [0.2] * 4, [0.3] * 4])
    row_idx = torch.tensor([[0, 3], [1, 4], [2, 5]], dtype=torch.int32)
    expert_idx = torch.tensor([[1, 2], [0, 1], [0, 2]], dtype=torch.int32)
    ex, erow, eexp = torch_npu.npu_moe_init_routing(x.npu(), row_idx.npu(), expert_idx.npu(), 3)
    # the documented formulas, step by step
    pairs = sorted(zip(expert_idx.reshape(-1).tolist(), row_idx.reshape(-1).tolist()))
    want_rows = [0] * 6
    for i, (_, r) in enumerate(pairs):
        want_rows[r] = i
    assert erow.cpu().tolist() == want_rows and eexp.cpu().tolist() == [e for e, _ in pairs]
    assert torch.equal(ex.cpu(), torch.stack([x[r % 3] for _, r in pairs]))
    assert torch_npu.npu_moe_init_routing(x.npu(), row_idx.npu(), expert_idx.npu(), 1)[0].shape == (2, 4)

    g = torch.Generator().manual_seed(3)
    rows, k, h, e = 5, 2, 4, 3
    expanded = torch.randn(rows * k, h, generator=g)
    skip1, skip2 = torch.randn(rows, h, generator=g), torch.randn(rows, h, generator=g)
    bias, scales = torch.randn(e, h, generator=g), torch.rand(rows, k, generator=g)
    src_to_dst = torch.randperm(rows * k, generator=g).to(torch.int32)
    expert_of = torch.randint(0, e, (rows, k), generator=g, dtype=torch.int32)
    out = torch_npu.npu_moe_finalize_routing(expanded.npu(), skip1.npu(), skip2.npu(), bias.npu(), scales.npu(),
                                             src_to_dst.npu(), expert_of.npu(), 0, k)
    want = torch.zeros(rows, h, dtype=torch.float64)
    for i in range(rows):
        want[i] = skip1[i].double() + skip2[i].double()
        for j in range(k):
            want[i] += scales[i, j].double() * (expanded[src_to_dst[i + j * rows]].double() + bias[expert_of[i, j]].double())
    close(out, want)


def test_top_k_top_p():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(4, 12, generator=g)
    k = torch.tensor([3, 12, 1, 5], dtype=torch.int32)
    p = torch.tensor([0.9, 0.5, 0.7, 0.0])
    out = torch_npu.npu_top_k_top_p(logits.npu(), p.npu(), k.npu()).cpu()
    for b in range(4):
        row = logits[b].tolist()
        keep = set(sorted(range(12), key=lambda v: row[v])[12 - int(k[b]):])  # top-k
        kept = sorted(keep, key=lambda v: row[v])  # ascending
        z = [math.exp(row[v]) for v in kept]
        probs = [w / sum(z) for w in z]
        acc, survivors = 0.0, set()
        for i, v in enumerate(kept):
            acc += probs[i]
            if acc > 1 - float(p[b]) or i == len(kept) - 1:
                survivors.add(v)
        for v in range(12):
            if v in survivors:
                assert out[b, v].item() == row[v]
            else:
                assert out[b, v].item() == float("-inf"), (b, v)
    only_k = torch_npu.npu_top_k_top_p(logits.npu(), None, k.npu()).cpu()
    assert (only_k > float("-inf")).sum(-1).tolist() == k.tolist()


def test_scatter_nd_update():
    x = torch.randn(4, 5, 6)
    idx = torch.tensor([[0, 1], [3, 4], [2, 0]], dtype=torch.int32)
    upd = torch.randn(3, 6)
    got = torch_npu.npu_scatter_nd_update(x.npu(), idx.npu(), upd.npu()).cpu()
    want = x.clone()
    for n, (i, j) in enumerate(idx.tolist()):
        want[i, j] = upd[n]
    assert torch.equal(got, want)
    xn = x.npu()
    assert torch_npu.npu_scatter_nd_update_(xn, idx.npu(), upd.npu()) is xn and torch.equal(xn.cpu(), want)
    with pytest.raises(RuntimeError, match="updates must have shape"):
        torch_npu.npu_scatter_nd_update(x.npu(), idx.npu(), torch.randn(3, 5).npu())


def box_overlap(b, g, mode):
    iw = max(0.0, min(b[2], g[2]) - max(b[0], g[0]))
    ih = max(0.0, min(b[3], g[3]) - max(b[1], g[1]))
    inter = iw * ih
    area_b, area_g = (b[2] - b[0]) * (b[3] - b[1]), (g[2] - g[0]) * (g[3] - g[1])
    return inter / (area_b + area_g - inter) if mode == 0 else inter / area_g


@pytest.mark.parametrize("mode", [0, 1])
def test_iou(mode):
    g = torch.Generator().manual_seed(1)
    lo = torch.rand(5, 2, generator=g) * 10
    boxes = torch.cat([lo, lo + torch.rand(5, 2, generator=g) * 10 + 0.5], 1)
    lo = torch.rand(3, 2, generator=g) * 10
    gts = torch.cat([lo, lo + torch.rand(3, 2, generator=g) * 10 + 0.5], 1)
    got = torch_npu.npu_iou(boxes.npu(), gts.npu(), mode).cpu()
    assert got.shape == (3, 5)
    for i in range(3):
        for j in range(5):
            assert abs(got[i, j].item() - box_overlap(boxes[j].tolist(), gts[i].tolist(), mode)) < 1e-5


def test_dynamic_and_anti_quant():
    g = torch.Generator().manual_seed(2)
    x = (torch.randn(6, 8, generator=g) * 3).half()
    smooth = (torch.rand(8, generator=g) + 0.5).half()
    for kwargs in ({}, {"smooth_scales": smooth}):
        y, scale = torch_npu.npu_dynamic_quant(x.npu(), **{k: v.npu() for k, v in kwargs.items()})
        assert y.dtype == torch.int8 and scale.dtype == torch.float32 and scale.shape == (6,)
        for r in range(6):
            row = [float(v) * (float(smooth[c]) if kwargs else 1.0) for c, v in enumerate(x[r].tolist())]
            s = max(abs(v) for v in row) / 127
            assert abs(scale[r].item() - s) < 1e-6 * max(1.0, s)
            assert y[r].cpu().tolist() == [int(round(v / s)) for v in row]
    groups = (torch.rand(2, 8, generator=g) + 0.5).half()
    y, _ = torch_npu.npu_dynamic_quant(x.npu(), smooth_scales=groups.npu(),
                                       group_index=torch.tensor([2, 6], dtype=torch.int32).npu())
    y_first, _ = torch_npu.npu_dynamic_quant(x[:2].npu(), smooth_scales=groups[0].npu())
    assert torch.equal(y[:2].cpu(), y_first.cpu())
    q = torch.randint(-128, 128, (4, 8), generator=g, dtype=torch.int8)
    sc, off = torch.rand(8, generator=g), torch.randn(8, generator=g)
    out = torch_npu.npu_anti_quant(q.npu(), sc.npu(), offset=off.npu(), dst_dtype=torch.bfloat16)
    assert out.dtype == torch.bfloat16
    close(out, (q.double() + off.double()) * sc.double(), torch.bfloat16)
    with pytest.raises(NotImplementedError, match="int8"):
        torch_npu.npu_dynamic_quant(x.npu(), dst_type=torch.quint4x2)


def test_grouped_matmul():
    g = torch.Generator().manual_seed(4)
    x, w, b = torch.randn(10, 4, generator=g), torch.randn(3, 4, 5, generator=g), torch.randn(3, 5, generator=g)
    sizes = [2, 3, 5]
    want = [x[s:e].double() @ w[i].double() + b[i].double()
            for i, (s, e) in enumerate(zip([0, 2, 5], [2, 5, 10]))]
    xn, wn = leaf(x, npu=True), leaf(w, npu=True)
    one = torch_npu.npu_grouped_matmul([xn], [wn], bias=[b.npu()], group_list=torch.tensor([2, 5, 10]).npu(),
                                       split_item=2, group_type=0)
    assert len(one) == 1
    close(one[0], torch.cat(want))
    sizes_form = torch_npu.npu_grouped_matmul([x.npu()], [w.npu()], bias=[b.npu()], group_list=torch.tensor(sizes).npu(),
                                              group_list_type=1, split_item=3, group_type=0)
    close(sizes_form[0], torch.cat(want))
    many = torch_npu.npu_grouped_matmul([x.npu()], list(w.npu().unbind(0)), bias=list(b.npu().unbind(0)),
                                        group_list=[2, 5, 10], split_item=0, group_type=0)
    for got, ref in zip(many, want):
        close(got, ref)
    lists = torch_npu.npu_grouped_matmul([x[:2].npu(), x[2:5].npu()], [w[0].npu(), w[1].npu()])
    close(lists[1], x[2:5].double() @ w[1].double())
    # gradients flow to x and the weights
    xd, wd = leaf(x, torch.float64), leaf(w, torch.float64)
    ref = torch.cat([xd[s:e] @ wd[i] for i, (s, e) in enumerate(zip([0, 2, 5], [2, 5, 10]))])
    out = torch_npu.npu_grouped_matmul([xn], [wn], group_list=torch.tensor([2, 5, 10]).npu(), split_item=2,
                                       group_type=0)[0]
    check_grads([xn, wn], [xd, wd], out, ref)
    with pytest.raises(NotImplementedError, match="quantized"):
        torch_npu.npu_grouped_matmul([x.npu()], [w.npu()], scale=[torch.ones(5).npu()])


def test_quant_matmuls():
    g = torch.Generator().manual_seed(6)
    x1 = torch.randint(-5, 5, (2, 16, 32), generator=g, dtype=torch.int8)
    x2 = torch.randint(-5, 5, (2, 32, 8), generator=g, dtype=torch.int8)
    scale, offset = torch.rand(8, generator=g) * 0.1, torch.randn(8, generator=g)
    bias = torch.randint(-5, 5, (8,), generator=g, dtype=torch.int32)
    acc = [[[sum(int(x1[b, m, k]) * int(x2[b, k, n]) for k in range(32)) + int(bias[n]) for n in range(8)]
            for m in range(16)] for b in range(2)]
    acc = torch.tensor(acc, dtype=torch.float64)
    got = torch_npu.npu_quant_matmul(x1.npu(), x2.npu(), scale.npu(), offset=offset.npu(), bias=bias.npu())
    assert got.dtype == torch.int8
    want = torch.round(acc * scale.double() + offset.double()).clamp(-128, 127)
    assert torch.equal(got.cpu().double(), want)
    f16 = torch_npu.npu_quant_matmul(x1.npu(), x2.npu(), scale.npu(), bias=bias.npu(), output_dtype=torch.float16)
    close(f16, acc * scale.double(), torch.float16)
    i32 = torch_npu.npu_quant_matmul(x1.npu(), x2.npu(), scale.npu(), output_dtype=torch.int32)
    assert torch.equal(i32.cpu().double(), acc - bias.double())

    x = torch.randn(3, 16, generator=g)
    w = torch.randint(-8, 8, (16, 6), generator=g, dtype=torch.int8)
    s_ch, o_ch = torch.rand(6, generator=g), torch.randn(6, generator=g)
    got = torch_npu.npu_weight_quant_batchmatmul(x.npu(), w.npu(), s_ch.npu(), o_ch.npu())
    close(got, x.double() @ ((w.double() + o_ch.double()) * s_ch.double()))
    s_grp = torch.rand(4, 6, generator=g)  # groups of 4 rows of k
    got = torch_npu.npu_weight_quant_batchmatmul(x.npu(), w.npu(), s_grp.npu(), antiquant_group_size=4)
    dq = torch.stack([w[k].double() * s_grp[k // 4].double() for k in range(16)])
    close(got, x.double() @ dq)


def test_nms_v4_matches_greedy_nms():
    torchvision = pytest.importorskip("torchvision")
    g = torch.Generator().manual_seed(7)
    lo = torch.rand(60, 2, generator=g) * 50
    boxes = torch.cat([lo, lo + torch.rand(60, 2, generator=g) * 30 + 1], 1)
    scores = torch.rand(60, generator=g)
    idx, n = torch_npu.npu_nms_v4(boxes.npu(), scores.npu(), 15, torch.tensor(0.4).npu(), torch.tensor(0.2).npu())
    keep = scores > 0.2
    order = torch.nonzero(keep).squeeze(1)
    ref = order[torchvision.ops.nms(boxes[keep], scores[keep], 0.4)][:15]
    assert n.item() == len(ref) and idx.cpu().tolist() == ref.tolist()
    padded, n2 = torch_npu.npu_nms_v4(boxes.npu(), scores.npu(), 40, torch.tensor(0.4).npu(), torch.tensor(0.9).npu(),
                                      pad_to_max_output_size=True)
    assert padded.shape == (40,) and padded.cpu()[n2.item():].eq(0).all()


def test_roi_align_matches_torchvision():
    torchvision = pytest.importorskip("torchvision")
    g = torch.Generator().manual_seed(8)
    feats = torch.randn(2, 3, 12, 10, generator=g)
    rois = torch.tensor([[0, 1.0, 2.0, 30.0, 40.0], [1, -4.0, -2.0, 16.0, 22.0], [1, 10.0, 10.0, 12.0, 11.0]])
    for sample in (2, 0):
        got = torch_npu.npu_roi_align(feats.npu(), rois.npu(), 0.25, 3, 4, sample, 0)
        want = torchvision.ops.roi_align(feats, rois, (3, 4), spatial_scale=0.25, sampling_ratio=sample, aligned=False)
        close(got, want)
    # roi_end_mode 1: the end corner is one pixel further
    got = torch_npu.npu_roi_align(feats.npu(), rois.npu(), 0.25, 3, 4, 2, 1)
    shifted = rois.clone()
    shifted[:, 3:] += 1
    close(got, torchvision.ops.roi_align(feats, shifted, (3, 4), spatial_scale=0.25, sampling_ratio=2, aligned=False))
    fn, fc = leaf(feats, npu=True), leaf(feats)
    out = torch_npu.npu_roi_align(fn, rois.npu(), 0.25, 3, 4, 2, 0)
    ref = torchvision.ops.roi_align(fc, rois, (3, 4), spatial_scale=0.25, sampling_ratio=2, aligned=False)
    check_grads([fn], [fc], out, ref)


def test_batch_nms():
    torchvision = pytest.importorskip("torchvision")
    g = torch.Generator().manual_seed(9)
    lo = torch.rand(2, 30, 1, 2, generator=g) * 40
    boxes = torch.cat([lo, lo + torch.rand(2, 30, 1, 2, generator=g) * 20 + 1], -1)
    scores = torch.rand(2, 30, 3, generator=g)
    nb, ns, nc, nn_ = torch_npu.npu_batch_nms(boxes.npu(), scores.npu(), 0.3, 0.5, 4, 10)
    assert nb.shape == (2, 10, 4) and ns.shape == nc.shape == (2, 10) and nn_.dtype == torch.int32
    for b in range(2):
        found = []
        for c in range(3):
            keep = scores[b, :, c] > 0.3
            idx = torch.nonzero(keep).squeeze(1)
            kept = idx[torchvision.ops.nms(boxes[b, keep, 0], scores[b, keep, c], 0.5)][:4]
            found += [(scores[b, a, c].item(), c, a.item()) for a in kept]
        found = sorted(found, key=lambda f: -f[0])[:10]
        assert nn_[b].item() == len(found)
        for slot, (s, c, a) in enumerate(found):
            assert ns[b, slot].item() == pytest.approx(s) and nc[b, slot].item() == c
            assert torch.equal(nb[b, slot].cpu(), boxes[b, a, 0])
        assert ns[b, len(found):].cpu().eq(0).all()


def attention_reference(q, k, v, scale, visible, pse=None):
    """q (B, N, S1, D), k/v (B, Nk, S2, D); visible(b, n, i, j) -> bool. Loops over rows."""
    b, n, s1, d = q.shape
    nk, s2 = k.shape[1], k.shape[2]
    out = torch.zeros(b, n, s1, d, dtype=torch.float64)
    lse = torch.full((b, n, s1, 1), float("-inf"), dtype=torch.float64)
    for bi in range(b):
        for h in range(n):
            kh = h // (n // nk)
            for i in range(s1):
                cols = [j for j in range(s2) if visible(bi, h, i, j)]
                if not cols:
                    continue
                s = torch.stack([scale * (q[bi, h, i].double() @ k[bi, kh, j].double())
                                 + (pse[bi if pse.shape[0] > 1 else 0, h, i, j].double() if pse is not None else 0)
                                 for j in cols])
                m = s.max()
                w = torch.exp(s - m)
                lse[bi, h, i, 0] = m + torch.log(w.sum())
                out[bi, h, i] = sum(w[c] / w.sum() * v[bi, kh, j].double() for c, j in enumerate(cols))
    return out, lse


def test_prompt_flash_attention():
    g = torch.Generator().manual_seed(10)
    b, n, nk, s, d = 2, 4, 2, 6, 8
    q = torch.randn(b, s, n * d, generator=g)
    k, v = torch.randn(b, s, nk * d, generator=g), torch.randn(b, s, nk * d, generator=g)
    causal = torch.ones(s, s, dtype=torch.bool).triu(1)
    got = torch_npu.npu_prompt_flash_attention(q.npu(), k.npu(), v.npu(), atten_mask=causal.npu(), num_heads=n,
                                               num_key_value_heads=nk, scale_value=0.3, input_layout="BSH",
                                               actual_seq_lengths_kv=[6, 4])
    q4, k4, v4 = (t.reshape(b, s, -1, d).transpose(1, 2) for t in (q, k, v))
    kv_len = [6, 4]
    want, _ = attention_reference(q4, k4, v4, 0.3, lambda bi, h, i, j: j <= i and j < kv_len[bi])
    close(got, want.transpose(1, 2).reshape(b, s, n * d))
    # BNSD in, BSND out; bottom-right causal (sparse_mode 3) with fewer queries than keys
    qs = torch.randn(b, n, 3, d, generator=g)
    ks, vs = torch.randn(b, n, s, d, generator=g), torch.randn(b, n, s, d, generator=g)
    pse = torch.randn(1, n, 3, s, generator=g)
    got = torch_npu.npu_prompt_flash_attention(qs.npu(), ks.npu(), vs.npu(), pse_shift=pse.npu(), num_heads=n,
                                               scale_value=0.5, input_layout="BNSD_BSND", sparse_mode=3,
                                               atten_mask=torch.ones(2048, 2048, dtype=torch.bool).triu(1).npu())
    want, _ = attention_reference(qs, ks, vs, 0.5, lambda bi, h, i, j: j <= i + (s - 3), pse)
    assert got.shape == (b, 3, n, d)
    close(got, want.transpose(1, 2))


def test_incre_and_fused_infer_attention():
    g = torch.Generator().manual_seed(11)
    b, n, s2, d = 3, 2, 7, 4
    q = torch.randn(b, n, 1, d, generator=g)
    k, v = torch.randn(b, n, s2, d, generator=g), torch.randn(b, n, s2, d, generator=g)
    mask = torch.zeros(b, s2, dtype=torch.bool)
    mask[1, 2] = True
    got = torch_npu.npu_incre_flash_attention(q.npu(), k.npu(), v.npu(), atten_mask=mask.npu(),
                                              actual_seq_lengths=[7, 5, 3], num_heads=n, scale_value=0.4,
                                              input_layout="BNSD")
    lens = [7, 5, 3]
    want, _ = attention_reference(q, k, v, 0.4, lambda bi, h, i, j: j < lens[bi] and not mask[bi, j])
    close(got, want)
    out, lse = torch_npu.npu_fused_infer_attention_score(q.npu(), k.npu(), v.npu(), num_heads=n, scale=0.4,
                                                         input_layout="BNSD", actual_seq_lengths_kv=[7, 5, 3],
                                                         softmax_lse_flag=True)
    want, want_lse = attention_reference(q, k, v, 0.4, lambda bi, h, i, j: j < lens[bi])
    close(out, want)
    close(lse, want_lse)
    _, none = torch_npu.npu_fused_infer_attention_score(q.npu(), k.npu(), v.npu(), num_heads=n, input_layout="BNSD")
    assert none.shape == (1,) and none.item() == 0
    with pytest.raises(NotImplementedError, match="block_table"):
        torch_npu.npu_incre_flash_attention(q.npu(), k.npu(), v.npu(), block_table=torch.zeros(1, device="npu"),
                                            num_heads=n, input_layout="BNSD")


def test_bounding_box_encode_decode():
    g = torch.Generator().manual_seed(12)
    lo = torch.rand(6, 2, generator=g) * 40
    anchors = torch.cat([lo, lo + torch.rand(6, 2, generator=g) * 20 + 2], 1)
    lo = torch.rand(6, 2, generator=g) * 40
    truths = torch.cat([lo, lo + torch.rand(6, 2, generator=g) * 20 + 2], 1)
    means, stds = [0.1, -0.1, 0.0, 0.05], [0.1, 0.1, 0.2, 0.2]
    deltas = torch_npu.npu_bounding_box_encode(anchors.npu(), truths.npu(), *means, *stds).cpu()
    for n in range(6):
        a, t = anchors[n].tolist(), truths[n].tolist()
        pw, ph, gw, gh = a[2] - a[0] + 1, a[3] - a[1] + 1, t[2] - t[0] + 1, t[3] - t[1] + 1
        raw = [((t[0] + t[2]) - (a[0] + a[2])) / 2 / pw, ((t[1] + t[3]) - (a[1] + a[3])) / 2 / ph,
               math.log(gw / pw), math.log(gh / ph)]
        for c in range(4):
            assert abs(deltas[n, c].item() - (raw[c] - means[c]) / stds[c]) < 1e-4
    # decoding the encoded deltas gives the ground truths back (inside the image, ratios clipped wide)
    back = torch_npu.npu_bounding_box_decode(anchors.npu(), deltas.npu(), *means, *stds, [100, 100], 16 / 1000)
    close(back, truths, scale=100)
    clipped = torch_npu.npu_bounding_box_decode(anchors.npu(), deltas.npu(), *means, *stds, [30, 20], 16 / 1000).cpu()
    assert clipped[:, 0::2].max() <= 19 and clipped[:, 1::2].max() <= 29 and clipped.min() >= 0


def test_dropout_with_add_softmax():
    g = torch.Generator().manual_seed(13)
    a, x1 = torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 4, 16, 16, generator=g)
    an, xn = leaf(a, npu=True), leaf(x1, npu=True)
    mask, soft, out = torch_npu.npu_dropout_with_add_softmax(an, xn, 0.5, 0.25, -1)
    ref_soft = torch.softmax(x1.double() + 0.5 * a.double(), -1)
    close(soft, ref_soft)
    bits = ((mask.cpu().unsqueeze(-1) >> torch.arange(8, dtype=torch.uint8)) & 1).reshape(-1)[:a.numel()]
    kept = bits.bool().reshape(a.shape)
    close(out, ref_soft * kept / 0.75)
    assert 0.65 < kept.float().mean().item() < 0.85
    out.sum().backward()
    ad, xd = leaf(a, torch.float64), leaf(x1, torch.float64)
    (torch.softmax(xd + 0.5 * ad, -1) * kept / 0.75).sum().backward()
    close(an.grad, ad.grad)
    close(xn.grad, xd.grad)


def test_host_reading_ops_have_fake_kernels():
    """Ops that read boxes or group sizes on the host are opaque to tracing: their fake kernels
    give the shapes (data-dependent sizes as unbacked symbols)."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv
    with FakeTensorMode(shape_env=ShapeEnv()):
        boxes, scores = torch.empty(50, 4, device="npu"), torch.empty(50, device="npu")
        t = torch.empty((), device="npu")
        idx, n = torch_npu.npu_nms_v4(boxes, scores, 20, t, t, pad_to_max_output_size=True)
        assert idx.shape == (20,) and idx.dtype == torch.int32 and n.shape == ()
        idx, _ = torch_npu.npu_nms_v4(boxes, scores, 20, t, t)
        assert isinstance(idx.shape[0], torch.SymInt)
        out = torch_npu.npu_batch_nms(torch.empty(2, 30, 1, 4, device="npu"), torch.empty(2, 30, 3, device="npu"),
                                      0.3, 0.5, 4, 10)
        assert [o.shape for o in out] == [(2, 10, 4), (2, 10), (2, 10), (2,)]
        feats, rois = torch.empty(2, 3, 12, 10, device="npu"), torch.empty(7, 5, device="npu")
        assert torch_npu.npu_roi_align(feats, rois, 0.25, 3, 4, 2, 0).shape == (7, 3, 3, 4)
        x, w = torch.empty(10, 4, device="npu"), torch.empty(3, 4, 5, device="npu")
        y = torch_npu.npu_grouped_matmul([x], [w], group_list=torch.empty(3, dtype=torch.int64, device="npu"),
                                         split_item=2, group_type=0)
        assert y[0].shape == (10, 5)
        ys = torch_npu.npu_grouped_matmul([x], [w], group_list=[2, 5, 10], split_item=0, group_type=0)
        assert [t.shape for t in ys] == [(2, 5), (3, 5), (5, 5)]

    def moe_ffn(x, w, ends):
        return torch_npu.npu_grouped_matmul([x], [w], group_list=ends, split_item=2, group_type=0)[0].relu()

    x, w, ends = torch.randn(10, 4, device="npu"), torch.randn(3, 4, 5, device="npu"), torch.tensor([2, 5, 10]).npu()
    compiled = torch.compile(moe_ffn, backend="aot_eager", fullgraph=True)
    close(compiled(x, w, ends), moe_ffn(x, w, ends).cpu())
