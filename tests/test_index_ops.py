"""Dropout, index_select, embedding (forward and backward), index_add and triu/tril on npu
against PyTorch CPU."""
import pytest
import torch
import torch.nn.functional as F

import torch_npu  # noqa: F401
from helpers import DTYPES, check, make, no_fallback  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_fallback")


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_dropout_statistics_gradient_and_reproducibility(p, dtype):
    x = make((64, 64), dtype, 1).npu().requires_grad_()
    torch.npu.manual_seed(7)
    y = F.dropout(x, p, training=True)
    kept = y != 0
    frac = kept.float().mean().item()
    assert abs(frac - (1 - p)) < 0.05
    scale = 0.0 if p == 1.0 else 1 / (1 - p)
    check(y.detach(), torch.where(kept, x.detach() * scale, 0).cpu(), atol=1e-2 if dtype == torch.bfloat16 else 1e-6, rtol=1e-2)
    y.backward(torch.ones_like(y))
    check(x.grad, (kept.to(dtype) * scale).cpu(), atol=1e-2 if dtype == torch.bfloat16 else 1e-6, rtol=1e-2)
    torch.npu.manual_seed(7)
    check(F.dropout(x.detach(), p, training=True), y.detach().cpu())  # same seed, same mask
    check(F.dropout(x.detach(), p, training=False), x.detach().cpu())


@pytest.mark.parametrize("dtype", DTYPES)
def test_index_select(dtype):
    x = make((5, 6, 3), dtype, 1)
    idx = torch.tensor([4, 0, 0, 2])
    for dim in (0, 1, -1):
        check(torch.index_select(x.npu(), dim, idx.npu() % x.shape[dim]), torch.index_select(x, dim, idx % x.shape[dim]))
    xt = x.transpose(0, 2)
    check(xt.npu().index_select(1, idx.npu()), xt.index_select(1, idx))
    out = torch.empty(0, dtype=dtype, device="npu")
    torch.index_select(x.npu(), 0, idx.npu(), out=out)
    check(out, torch.index_select(x, 0, idx))
    check(torch.index_select(x.npu(), 0, idx[:0].npu()), torch.index_select(x, 0, idx[:0]))
    check(torch.tensor(3.0).npu().index_select(0, torch.tensor([0]).npu()), torch.tensor(3.0).index_select(0, torch.tensor([0])))


def test_index_out_of_range_is_reported():
    with pytest.raises(RuntimeError, match="out of bounds"):
        torch.index_select(torch.ones(3, device="npu"), 0, torch.tensor([0, 5], device="npu"))
        torch.npu.synchronize()
    torch.npu.synchronize()
    check(torch.ones(2, device="npu") * 2, torch.ones(2) * 2)


@pytest.mark.parametrize("kw", [dict(), dict(padding_idx=1), dict(scale_grad_by_freq=True)], ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_embedding_forward_backward(kw, dtype):
    torch.manual_seed(0)
    emb = torch.nn.Embedding(10, 6, **kw).to(dtype)
    emb_n = torch.nn.Embedding(10, 6, **kw).to(dtype).npu()
    emb_n.load_state_dict(emb.state_dict())
    idx = torch.tensor([[1, 2, 1, 9], [0, 1, 3, 3]])
    y, yn = emb(idx), emb_n(idx.npu())
    check(yn, y)
    g = make(y.shape, dtype, 2)
    y.backward(g)
    yn.backward(g.npu())
    tol = dict(atol=2e-2, rtol=2e-2) if dtype == torch.bfloat16 else {}
    check(emb_n.weight.grad, emb.weight.grad, **tol)


def test_index_add():
    x, src = make((5, 3), torch.float32, 1), make((4, 3), torch.float32, 2)
    idx = torch.tensor([0, 4, 0, 2])
    check(x.npu().index_add(0, idx.npu(), src.npu(), alpha=2), x.index_add(0, idx, src, alpha=2))
    xn = x.npu()
    xn.index_add_(0, idx.npu(), src.npu())
    check(xn, x.clone().index_add_(0, idx, src))
    x2, src2 = make((3, 5), torch.float64, 3), make((3, 2), torch.float64, 4)
    check(x2.npu().index_add(1, torch.tensor([1, 1]).npu(), src2.npu()), x2.index_add(1, torch.tensor([1, 1]), src2))
    for dtype in [torch.int8, torch.int64, torch.uint8, torch.bool]:  # exact, wrapping
        xi, si = make((5, 3), dtype, 5), make((4, 3), dtype, 6)
        alpha = 1 if dtype == torch.bool else 3
        check(xi.npu().index_add(0, idx.npu(), si.npu(), alpha=alpha), xi.index_add(0, idx, si, alpha=alpha))
    with pytest.raises(RuntimeError, match="alpha"):
        torch.zeros(3, dtype=torch.int32).npu().index_add(0, torch.tensor([0]).npu(), torch.ones(1, dtype=torch.int32).npu(), alpha=0.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.int32, torch.bool])
def test_native_dropout_backward_dtypes(dtype):
    g, mask = make((4, 5), dtype, 1), make((4, 5), torch.bool, 2)
    check(torch.ops.aten.native_dropout_backward(g.npu(), mask.npu(), 2.0), torch.ops.aten.native_dropout_backward(g, mask, 2.0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bool, torch.int64])
@pytest.mark.parametrize("diagonal", [-1, 0, 2])
def test_triu_tril(dtype, diagonal):
    x = make((2, 4, 5), dtype, 1)
    for f in (torch.triu, torch.tril):
        check(f(x.npu(), diagonal), f(x, diagonal))
        check(f(x.transpose(1, 2).npu(), diagonal), f(x.transpose(1, 2), diagonal))
    xn = x.npu()
    xn.triu_(diagonal)
    check(xn, x.triu(diagonal))
    mask = torch.nn.Transformer.generate_square_subsequent_mask(5, device="npu")
    check(mask, torch.nn.Transformer.generate_square_subsequent_mask(5))


ADVANCED = {
    "long": lambda t, d: t[torch.tensor([0, 2, 3, 0]).to(d)],
    "middle": lambda t, d: t[:, torch.tensor([[1], [4]]).to(d)],
    "split": lambda t, d: t[torch.tensor([[0, 2]]).to(d), :, torch.tensor([1, -1]).to(d)],
    "mask": lambda t, d: t[(t.float() > 0).to(d)],
    "mask2d": lambda t, d: t[(t.float() > 0)[:, :, 0].to(d)],
    "cpu_index": lambda t, d: t[torch.tensor([1, 3])],
    "scalar": lambda t, d: t[..., torch.tensor(-1).to(d)],
    "mixed": lambda t, d: t[torch.tensor([0, 3]).to(d), 1:3, torch.tensor([[5], [0]]).to(d)],
    "int32": lambda t, d: t[torch.tensor([1, 0], dtype=torch.int32).to(d)],
}


@pytest.mark.parametrize("case", list(ADVANCED))
@pytest.mark.parametrize("dtype", [torch.float32, torch.int64, torch.bool, torch.bfloat16])
def test_advanced_indexing(case, dtype):
    x = make((4, 5, 6), dtype, 1)
    f = ADVANCED[case]
    check(f(x.npu(), "npu"), f(x, "cpu"))
    check(f(x.transpose(0, 1).contiguous().transpose(0, 1).npu(), "npu"), f(x, "cpu"))  # non-contiguous


def test_advanced_indexing_backward_and_index_put():
    x = make((5, 4), torch.float32, 2)
    idx = torch.tensor([0, 3, 0, 1])
    a, an = x.clone().requires_grad_(), x.npu().requires_grad_()
    (a[idx] ** 2).sum().backward()
    (an[idx.npu()] ** 2).sum().backward()
    check(an.grad, a.grad)  # index_put_ with accumulate: duplicates add up
    for accumulate in (False, True):
        y, yn = x.clone(), x.npu()
        v = make((3, 4), torch.float32, 3)
        rows = torch.tensor([1, 4, 1])
        y.index_put_((rows,), v, accumulate=accumulate)
        yn.index_put_((rows.npu(),), v.npu(), accumulate=accumulate)
        check(yn, y)
    y, yn = x.clone(), x.npu()
    y[y > 0] = -1.0
    yn[yn > 0] = -1.0
    check(yn, y)
    y[torch.tensor([0, 2]), torch.tensor([1, 3])] = torch.tensor(7.0)
    yn[torch.tensor([0, 2]).npu(), torch.tensor([1, 3]).npu()] = torch.tensor(7.0)
    check(yn, y)
    check(torch.index_put(x.npu(), (idx.npu(),), torch.ones(4).npu(), True), torch.index_put(x, (idx,), torch.ones(4), True))


@pytest.mark.parametrize("dtype", [torch.float32, torch.int32, torch.bool, torch.float16])
def test_nonzero(dtype):
    x = make((3, 4, 5), dtype, 4)
    check(torch.nonzero(x.npu()), torch.nonzero(x))
    check(torch.nonzero(x.npu().transpose(0, 2)), torch.nonzero(x.transpose(0, 2)))
    check(torch.nonzero(torch.zeros(0, 3, dtype=dtype).npu()), torch.nonzero(torch.zeros(0, 3, dtype=dtype)))
    check(torch.nonzero(torch.tensor(1, dtype=dtype).npu()), torch.nonzero(torch.tensor(1, dtype=dtype)))
    idx = torch.where(x.npu() != 0)
    for a, b in zip(idx, torch.where(x != 0)):
        check(a, b)


def test_bad_advanced_indices():
    x = torch.zeros(3, 4).npu()
    with pytest.raises(IndexError, match="too many indices"):
        x[torch.tensor([0]).npu(), torch.tensor([0]).npu(), torch.tensor([0]).npu()]
    with pytest.raises(IndexError, match="shape of the mask"):
        x[torch.ones(4, dtype=torch.bool).npu()]
    with pytest.raises(IndexError):
        x[torch.tensor([0, 1]).npu(), torch.tensor([0, 1, 2]).npu()]
    with pytest.raises(RuntimeError, match="out of bounds"):
        x[torch.tensor([3]).npu()].cpu()
    with pytest.raises(RuntimeError, match="dtypes match"):
        x.index_put_((torch.tensor([0]).npu(),), torch.ones(4, dtype=torch.float64).npu())
    check(x + 1, torch.ones(3, 4))


@pytest.mark.parametrize("dtype", DTYPES)
def test_masked_scatter(dtype):
    x = make((4, 5), dtype, 1)
    mask = make((4, 5), torch.float32, 2) > 0
    src = make((30,), dtype, 3)
    check(x.npu().masked_scatter(mask.npu(), src.npu()), x.masked_scatter(mask, src))
    a, an = x.clone(), x.npu()
    row = mask[1]  # broadcast over rows
    a.masked_scatter_(row, src.reshape(5, 6))
    an.masked_scatter_(row.npu(), src.reshape(5, 6).npu())
    check(an, a)
    t = x.npu().t()  # non-contiguous self
    check(t.masked_scatter(mask.t().npu(), src.npu()), x.t().masked_scatter(mask.t(), src))


def test_masked_scatter_grad_and_errors():
    x = make((3, 4), torch.float32, 1)
    mask = x > 0
    a, an = x.clone().requires_grad_(), x.npu().requires_grad_()
    g = make((int(mask.sum()),), torch.float32, 2)
    a.masked_select(mask).backward(g)
    an.masked_select(mask.npu()).backward(g.npu())
    check(an.grad, a.grad)
    keep = x.npu()
    with pytest.raises(RuntimeError, match="source"):
        keep.masked_scatter_(torch.ones(3, 4, dtype=torch.bool).npu(), torch.zeros(5).npu())
        torch.npu.synchronize()
    check(keep, x)  # nothing written
    with pytest.raises(RuntimeError, match="boolean"):
        keep.masked_scatter_(torch.ones(3, 4, dtype=torch.uint8).npu(), torch.zeros(12).npu())


def test_equal():
    x = make((3, 4), torch.float32, 1)
    xn = x.npu()
    assert torch.equal(xn, x.clone().npu())
    assert not torch.equal(xn, (x + 1e-6 * (x == x.max())).npu())
    assert not torch.equal(xn, xn.t())
    assert torch.equal(xn.to(torch.float64), xn)  # values compared after promotion
    assert torch.equal(torch.zeros(2).npu(), torch.tensor([0.0, -0.0]).npu())
    nan = torch.tensor([1.0, float("nan")]).npu()
    assert not torch.equal(nan, nan)
    assert torch.equal(torch.empty(0, 3).npu(), torch.empty(0, 3).npu())
    assert torch.equal(xn.t(), x.t().contiguous().npu())
