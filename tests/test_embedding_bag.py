"""F.embedding_bag / nn.EmbeddingBag on npu against PyTorch CPU: sum, mean and max; offsets
with empty bags and include_last_offset; 2-d inputs; padding_idx; per_sample_weights (and their
gradient); scale_grad_by_freq; every float dtype; forward and backward."""
import pytest
import torch
import torch.nn.functional as F

import torch_npu  # noqa: F401
from helpers import FLOATS, check, make, no_fallback  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_fallback")

IDX = torch.tensor([1, 2, 4, 5, 4, 3, 2, 0, 9, 2])
OFF = torch.tensor([0, 2, 2, 5, 9])
# include_last_offset: the last offset closes the last bag (PyTorch CPU's backward reads
# uninitialised memory when it stops short of the index list, so the tests never do that)
OFF_LAST = torch.tensor([0, 2, 2, 5, 9, 10])


def tol(dtype):
    return {torch.float16: dict(atol=1e-2, rtol=1e-2), torch.bfloat16: dict(atol=5e-2, rtol=2e-2)}.get(dtype, {})


def run(dtype, fn, psw=None, **tolerance):
    w = make((10, 6), torch.float32, 1).to(dtype)
    a, an = w.clone().requires_grad_(), w.npu().requires_grad_()
    p = pn = None
    if psw is not None:
        p, pn = psw.to(dtype).clone().requires_grad_(), psw.to(dtype).npu().requires_grad_()
    y = fn(a, lambda t: t, p)
    yn = fn(an, lambda t: t.npu(), pn)
    check(yn, y, **tolerance)
    g = make(y.shape, dtype, 2)
    y.backward(g)
    yn.backward(g.npu())
    check(an.grad, a.grad, **tolerance)
    if p is not None:
        check(pn.grad, p.grad, **tolerance)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_modes_offsets_padding(dtype, mode):
    for pad in [None, 2]:
        for last in [False, True]:
            off = OFF_LAST if last else OFF
            run(dtype, lambda w, d, p: F.embedding_bag(d(IDX), w, d(off), mode=mode, padding_idx=pad, include_last_offset=last), **tol(dtype))
    run(dtype, lambda w, d, p: F.embedding_bag(d(IDX.reshape(2, 5)), w, mode=mode), **tol(dtype))


@pytest.mark.parametrize("dtype", FLOATS)
def test_per_sample_weights(dtype):
    psw = make((10,), torch.float32, 3)
    run(dtype, lambda w, d, p: F.embedding_bag(d(IDX), w, d(OFF), mode="sum", per_sample_weights=p), psw, **tol(dtype))
    run(dtype, lambda w, d, p: F.embedding_bag(d(IDX), w, d(OFF_LAST), mode="sum", per_sample_weights=p, padding_idx=4, include_last_offset=True), psw, **tol(dtype))


@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_scale_grad_by_freq_and_module(mode):
    run(torch.float32, lambda w, d, p: F.embedding_bag(d(IDX), w, d(OFF), mode=mode, scale_grad_by_freq=True))
    torch.manual_seed(0)
    bag = torch.nn.EmbeddingBag(10, 4, mode=mode)
    bag_n = torch.nn.EmbeddingBag(10, 4, mode=mode).npu()
    bag_n.load_state_dict(bag.state_dict())
    check(bag_n(IDX.npu(), OFF.npu()), bag(IDX, OFF))


def test_errors_keep_the_device_working():
    w = torch.randn(10, 3).npu()
    with pytest.raises((RuntimeError, IndexError), match="idx"):
        F.embedding_bag(torch.tensor([1, 10]).npu(), w, torch.tensor([0]).npu()).cpu()
    with pytest.raises((RuntimeError, ValueError), match="per_sample_weights"):
        F.embedding_bag(IDX.npu(), w, OFF.npu(), mode="mean", per_sample_weights=torch.ones(10).npu())
    check(F.embedding_bag(IDX.npu(), w, OFF.npu()), F.embedding_bag(IDX, w.cpu(), OFF))
