"""layer_norm and batch_norm (training and eval, running stats) on npu against
PyTorch CPU, forward and backward."""
import copy

import pytest
import torch
import torch.nn.functional as F

import torch_npu  # noqa: F401
from helpers import FLOATS, check, make, no_fallback  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_fallback")


def tol(dtype, scale=1.0):
    t = {torch.float16: dict(atol=5e-3, rtol=5e-3), torch.bfloat16: dict(atol=5e-2, rtol=5e-2),
         torch.float32: dict(atol=1e-5, rtol=1e-5), torch.float64: dict(atol=1e-10, rtol=1e-10)}[dtype]
    return {k: v * scale for k, v in t.items()}


def compare(module, x, dtype, grad_scale=10.0):
    module = module.to(dtype)
    module_n = copy.deepcopy(module).npu()
    a, an = x.to(dtype).clone().requires_grad_(), x.to(dtype).npu().requires_grad_()
    y, yn = module(a), module_n(an)
    check(yn, y, **tol(dtype))
    g = make(y.shape, dtype, 9)
    y.backward(g)
    yn.backward(g.npu())
    check(an.grad, a.grad, **tol(dtype, grad_scale))
    for p, pn in zip(module.parameters(), module_n.parameters()):
        check(pn.grad, p.grad, **tol(dtype, grad_scale * 10))
    for b, bn in zip(module.buffers(), module_n.buffers()):
        check(bn, b, **tol(dtype, grad_scale))
    return module, module_n


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,normalized", [((4, 6), (6,)), ((2, 3, 8), (8,)), ((2, 3, 4), (3, 4)), ((0, 5), (5,))])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(dtype, shape, normalized, affine):
    compare(torch.nn.LayerNorm(normalized, elementwise_affine=affine), make(shape, torch.float32, 1), dtype)


def test_layer_norm_non_contiguous_and_errors():
    x = make((6, 4), torch.float32, 2).t()
    w, b = make((6,), torch.float32, 3), make((6,), torch.float32, 4)
    check(F.layer_norm(x.npu(), (6,), w.npu(), b.npu()), F.layer_norm(x, (6,), w, b), **tol(torch.float32))
    with pytest.raises(RuntimeError, match="normalized_shape"):
        F.layer_norm(x.npu(), (5,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cls,shape", [(torch.nn.BatchNorm1d, (6, 4)), (torch.nn.BatchNorm1d, (5, 4, 7)),
                                       (torch.nn.BatchNorm2d, (3, 4, 5, 5)), (torch.nn.BatchNorm3d, (2, 3, 2, 3, 3))])
def test_batch_norm_training_and_eval(dtype, cls, shape):
    torch.manual_seed(0)
    module, module_n = compare(cls(shape[1]), make(shape, torch.float32, 1), dtype)
    # eval uses (and keeps) the running stats the training step updated
    module.eval()
    module_n.eval()
    x = make(shape, dtype, 5)
    check(module_n(x.npu()), module(x), **tol(dtype, 10))
    a, an = x.clone().requires_grad_(), x.npu().requires_grad_()
    module(a).sum().backward()
    module_n(an).sum().backward()
    check(an.grad, a.grad, **tol(dtype, 10))


def test_batch_norm_without_affine_or_running_stats():
    for m in (torch.nn.BatchNorm2d(3, affine=False), torch.nn.BatchNorm2d(3, track_running_stats=False)):
        compare(m, make((2, 3, 4, 4), torch.float32, 6), torch.float32)



@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,groups,affine", [((2, 6, 5, 4), 3, True), ((3, 4, 7), 2, False), ((1, 8, 3, 3, 2), 1, True), ((4, 6, 5), 3, True)])
def test_group_norm_forward_backward(dtype, shape, groups, affine):
    x = make(shape, dtype, 1)
    c = shape[1]
    w, b = (make((c,), dtype, 2), make((c,), dtype, 3)) if affine else (None, None)
    leaves = [x] + ([w, b] if affine else [])
    cpu = [t.clone().requires_grad_() for t in leaves]
    npu = [t.npu().requires_grad_() for t in leaves]
    y = F.group_norm(cpu[0], groups, *(cpu[1:] if affine else []))
    yn = F.group_norm(npu[0], groups, *(npu[1:] if affine else []))
    check(yn, y, **tol(dtype))
    g = make(shape, dtype, 4)
    y.backward(g)
    yn.backward(g.npu())
    for a, an in zip(cpu, npu):
        check(an.grad, a.grad, **tol(dtype, scale=16))


def test_group_norm_strided_empty_batch_and_empty_groups():
    x = make((3, 6, 5, 4), torch.float32, 5).transpose(2, 3)
    check(F.group_norm(x.npu(), 2), F.group_norm(x, 2), atol=1e-5, rtol=1e-5)
    for a, b in zip(torch.native_group_norm(x.npu(), None, None, 3, 6, 20, 3, 1e-5), torch.native_group_norm(x, None, None, 3, 6, 20, 3, 1e-5)):
        check(a, b, atol=1e-5, rtol=1e-5)
    e = torch.empty(0, 6, 4, 4)
    check(F.group_norm(e.npu(), 3), F.group_norm(e, 3))
    with pytest.raises(RuntimeError, match="HxW to be greater than 0"):
        torch.native_group_norm(torch.empty(2, 6, 0).npu(), None, None, 2, 6, 0, 3, 1e-5)


@pytest.mark.parametrize("mode", ["reflect", "replicate"])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,pad", [((2, 3, 7), (2, 3)), ((3, 7), (1, 0)), ((2, 3, 6, 5), (-1, 2, -2, 1)), ((2, 3, 5, 6), (1, 2, 3, 4)), ((3, 5, 6), (2, 2, 1, 1)), ((1, 2, 4, 5, 6), (1, 1, 2, 0, 3, 2))])
def test_pad_modes_forward_backward(mode, dtype, shape, pad):
    x = make(shape, dtype, 1)
    a, an = x.clone().requires_grad_(), x.npu().requires_grad_()
    y, yn = F.pad(a, pad, mode=mode), F.pad(an, pad, mode=mode)
    check(yn, y)
    g = make(y.shape, dtype, 2)
    y.backward(g)
    yn.backward(g.npu())
    check(an.grad, a.grad, **tol(dtype, scale=10))
    xt = make(shape[::-1], dtype, 3).permute(*range(len(shape) - 1, -1, -1))  # non-contiguous
    check(F.pad(xt.npu(), pad, mode=mode), F.pad(xt, pad, mode=mode))


def test_pad_errors():
    x = torch.zeros(1, 2, 3).npu()
    with pytest.raises(RuntimeError, match="Padding size should be less"):
        F.pad(x, (3, 3), mode="reflect")
    check(F.pad(x, (3, 3), mode="replicate"), torch.zeros(1, 2, 9))
    with pytest.raises(RuntimeError, match="too small"):
        F.pad(x, (-2, -1), mode="replicate")
    xi = torch.arange(12).reshape(1, 3, 4)  # integers pad too
    check(F.pad(xi.npu(), (-1, 2), mode="reflect"), F.pad(xi, (-1, 2), mode="reflect"))


def test_batch_norm_variants_used_by_compile_and_export():
    x = make((4, 3, 5), torch.float32, 1)
    w, b = make((3,), torch.float32, 2), make((3,), torch.float32, 3)
    for op, args in [
        (torch.ops.aten._native_batch_norm_legit, (True, 0.1, 1e-5)),
        (torch.ops.aten._native_batch_norm_legit_no_training, (0.1, 1e-5)),
        (torch.ops.aten._batch_norm_with_update, (0.1, 1e-5)),
        (torch.ops.aten._batch_norm_no_update, (0.1, 1e-5)),
    ]:
        rm, rv = torch.zeros(3), torch.ones(3)
        rmn, rvn = rm.npu(), rv.npu()
        y = op(x, w, b, rm, rv, *args)
        yn = op(x.npu(), w.npu(), b.npu(), rmn, rvn, *args)
        for u, un in zip(y, yn):
            if u.numel():
                check(un, u)
            assert un.shape == u.shape and un.dtype == u.dtype
        check(rmn, rm)
        check(rvn, rv)
    y = torch.ops.aten._native_batch_norm_legit.no_stats(x, w, b, True, 0.1, 1e-5)
    yn = torch.ops.aten._native_batch_norm_legit.no_stats(x.npu(), w.npu(), b.npu(), True, 0.1, 1e-5)
    for u, un in zip(y, yn):
        check(un, u)
