"""Matrix products on npu against PyTorch CPU: mm, bmm, addmm, baddbmm, addbmm, addmv, mv, dot,
vdot, matmul, linear, outer — dtypes, transposed and broadcast operands, zero sizes, in-place and
out=, gradients, and the errors PyTorch raises."""
import pytest
import torch

import torch_npu  # noqa: F401
from helpers import check, make, no_fallback  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_fallback")

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16,
          torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8]


def tol(dtype):
    # PyTorch CPU and the npu sum in different orders; f16/bf16 round once at the end on both.
    return {torch.float16: dict(atol=1e-2, rtol=1e-2), torch.bfloat16: dict(atol=0.1, rtol=2e-2)}.get(dtype, {})


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", [(5, 7, 3), (1, 1, 1), (0, 4, 3), (4, 0, 3), (33, 65, 17)])
def test_mm_addmm(dtype, m, k, n):
    a, b, c = make((m, k), dtype, 1), make((k, n), dtype, 2), make((m, n), dtype, 3)
    check(torch.mm(a.npu(), b.npu()), torch.mm(a, b), **tol(dtype))
    alpha, beta = (2, 3) if not dtype.is_floating_point else (0.5, -1.5)
    check(torch.addmm(c.npu(), a.npu(), b.npu(), beta=beta, alpha=alpha),
          torch.addmm(c, a, b, beta=beta, alpha=alpha), **tol(dtype))
    # a broadcast bias row, as nn.Linear passes it
    check(torch.addmm(c[0].npu() if m else c.npu(), a.npu(), b.npu()),
          torch.addmm(c[0] if m else c, a, b), **tol(dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64])
def test_transposed_and_strided_operands(dtype):
    a = make((9, 6), dtype, 1).t()          # (6, 9), column-major
    b = make((9, 20), dtype, 2)[:, ::2]     # (9, 10), step 2
    check(torch.mm(a.npu(), b.npu()), torch.mm(a, b), **tol(dtype))
    out = torch.empty(10, 6, dtype=dtype, device="npu").t()  # non-contiguous out=
    torch.mm(a.npu(), b.npu(), out=out)
    check(out, torch.mm(a, b), **tol(dtype))


def test_beta_zero_ignores_nan_in_self():
    c = torch.full((3, 2), float("nan"))
    a, b = make((3, 4), torch.float32), make((4, 2), torch.float32, 1)
    check(torch.addmm(c.npu(), a.npu(), b.npu(), beta=0), torch.addmm(c, a, b, beta=0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.int32])
def test_in_place_and_out(dtype):
    a, b, c = make((4, 5), dtype, 1), make((5, 6), dtype, 2), make((4, 6), dtype, 3)
    cn = c.npu()
    ret = cn.addmm_(a.npu(), b.npu(), alpha=2)
    assert ret is cn
    check(cn, c.clone().addmm_(a, b, alpha=2), **tol(dtype))
    out = torch.empty(0, dtype=dtype, device="npu")
    torch.addmm(c.npu(), a.npu(), b.npu(), out=out)
    check(out, torch.addmm(c, a, b), **tol(dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.int64])
def test_batched(dtype):
    a, b = make((3, 4, 5), dtype, 1), make((3, 5, 2), dtype, 2)
    c3, c2 = make((3, 4, 2), dtype, 3), make((4, 2), dtype, 4)
    check(torch.bmm(a.npu(), b.npu()), torch.bmm(a, b), **tol(dtype))
    check(torch.baddbmm(c3.npu(), a.npu(), b.npu(), alpha=2), torch.baddbmm(c3, a, b, alpha=2), **tol(dtype))
    check(torch.baddbmm(c2.npu(), a.npu(), b.npu()), torch.baddbmm(c2, a, b), **tol(dtype))
    check(torch.addbmm(c2.npu(), a.npu(), b.npu(), beta=2), torch.addbmm(c2, a, b, beta=2), **tol(dtype))
    cn = c3.npu()
    cn.baddbmm_(a.npu(), b.npu())
    check(cn, c3.clone().baddbmm_(a, b), **tol(dtype))
    # zero batch
    z1, z2 = make((0, 4, 5), dtype), make((0, 5, 2), dtype)
    check(torch.bmm(z1.npu(), z2.npu()), torch.bmm(z1, z2))
    check(torch.addbmm(c2.npu(), z1.npu(), z2.npu(), beta=2), torch.addbmm(c2, z1, z2, beta=2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.int64])
def test_vector_products(dtype):
    m, v, w, c = make((5, 4), dtype, 1), make((4,), dtype, 2), make((4,), dtype, 3), make((5,), dtype, 4)
    check(torch.mv(m.npu(), v.npu()), torch.mv(m, v), **tol(dtype))
    check(torch.addmv(c.npu(), m.npu(), v.npu(), beta=2), torch.addmv(c, m, v, beta=2), **tol(dtype))
    check(torch.dot(v.npu(), w.npu()), torch.dot(v, w), **tol(dtype))
    check(torch.vdot(v.npu(), w.npu()), torch.vdot(v, w), **tol(dtype))
    check(torch.outer(v.npu(), w.npu()), torch.outer(v, w), **tol(dtype))
    strided = make((8,), dtype, 5)[::2]
    check(torch.dot(strided.npu(), w.npu()), torch.dot(strided, w), **tol(dtype))


@pytest.mark.parametrize("shapes", [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
                                    ((5, 2, 3), (3, 4)), ((2, 3), (5, 3, 4)), ((2, 1, 2, 3), (4, 3, 2))])
def test_matmul_broadcasting_and_grad(shapes):
    a = make(shapes[0], torch.float64, 1).requires_grad_()
    b = make(shapes[1], torch.float64, 2).requires_grad_()
    an, bn = a.detach().npu().requires_grad_(), b.detach().npu().requires_grad_()
    r, rn = a @ b, an @ bn
    check(rn, r)
    g = make(r.shape, torch.float64, 3)
    r.backward(g)
    rn.backward(g.npu())
    check(an.grad, a.grad)
    check(bn.grad, b.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_linear_forward_backward(dtype):
    torch.manual_seed(0)
    lin = torch.nn.Linear(16, 8).to(dtype)
    lin_n = torch.nn.Linear(16, 8).to(dtype).npu()
    lin_n.load_state_dict(lin.state_dict())
    x = make((2, 5, 16), dtype, 1).requires_grad_()
    xn = x.detach().npu().requires_grad_()
    y, yn = lin(x), lin_n(xn)
    check(yn, y, **tol(dtype))
    y.float().square().sum().backward()
    yn.float().square().sum().backward()
    check(xn.grad, x.grad, **tol(dtype))
    for got, want in ((lin_n.weight.grad, lin.weight.grad), (lin_n.bias.grad, lin.bias.grad)):
        # sums of products as large as the largest gradient: an element's rounding error is
        # relative to that, not to the element (CPUs differ in summation order)
        scale = want.abs().max().item()
        check(got, want, **({k: v * 10 for k, v in tol(dtype).items()} or dict(atol=1e-6 * scale, rtol=1.3e-6)))


def test_errors_are_clear_and_harmless():
    a, b = torch.randn(2, 3, device="npu"), torch.randn(4, 5, device="npu")
    with pytest.raises(RuntimeError, match=r"shapes cannot be multiplied \(2x3 and 4x5\)"):
        torch.mm(a, b)
    with pytest.raises(RuntimeError, match="same dtype"):
        torch.mm(a, torch.randn(3, 5, dtype=torch.float64, device="npu"))
    with pytest.raises(RuntimeError, match="same device|npu:0 and cpu"):
        torch.mm(a, torch.randn(3, 5))
    with pytest.raises(RuntimeError, match="must be a matrix"):
        torch.mm(a, torch.randn(3, device="npu"))
    with pytest.raises(RuntimeError, match="3D tensor"):
        torch.bmm(a, a)
    with pytest.raises(RuntimeError, match="not implemented for 'Bool'"):
        torch.mm(a > 0, (a > 0).t())
    ones = torch.ones(2, 2, dtype=torch.int64)
    check(torch.addmm(ones.npu(), ones.npu(), ones.npu(), alpha=1.5, beta=0.5), torch.addmm(ones, ones, ones, alpha=1.5, beta=0.5))
    with pytest.raises(RuntimeError, match="single memory location"):
        torch.mm(a[:, :2], a[:, :2].t().contiguous(), out=a[:, :2])
    # the device still works
    check(torch.mm(a, b[:3, :2]), torch.mm(a.cpu(), b[:3, :2].cpu()))
