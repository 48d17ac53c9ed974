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
