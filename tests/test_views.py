"""Every view op must be native: a fallback would return a copy and silently break aliasing."""
import pytest
import torch

import torch_npu  # noqa: F401
from helpers import no_fallback  # noqa: F401


def backend_specific_view_ops():
    """View ops (first return aliases an input, read-only) whose only kernels are per backend."""
    composite = ("CompositeImplicitAutograd", "CompositeExplicitAutograd",
                 "CompositeExplicitAutogradNonFunctional")
    found = []
    for name in torch._C._dispatch_get_all_op_names():
        if not name.startswith("aten::"):
            continue
        base, _, overload = name[len("aten::"):].partition(".")
        try:
            op = getattr(getattr(torch.ops.aten, base), overload or "default")
        except (AttributeError, RuntimeError):
            continue
        returns = op._schema.returns
        if not returns or returns[0].alias_info is None or returns[0].alias_info.is_write:
            continue
        if any(torch._C._dispatch_has_kernel_for_dispatch_key(name, k) for k in composite):
            continue
        if "nested" in name or not torch._C._dispatch_has_kernel_for_dispatch_key(name, "CPU"):
            continue  # nested-tensor and sparse-only views do not apply to strided npu tensors
        found.append(name)
    return found


def test_every_view_op_has_an_npu_kernel():
    views = backend_specific_view_ops()
    assert "aten::as_strided" in views and "aten::view" in views
    missing = [n for n in views if not torch._C._dispatch_has_kernel_for_dispatch_key(n, "PrivateUse1")]
    assert missing == []


def test_native_op_table_names_real_backend_ops():
    """Each name in the Rust op table ended up with an npu kernel in the dispatcher."""
    for name in torch.npu.sim.native_ops():
        assert torch._C._dispatch_has_kernel_for_dispatch_key("aten::" + name, "PrivateUse1"), name


@pytest.mark.usefixtures("no_fallback")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("shape,dim,size,step", [((10,), 0, 3, 2), ((4, 7, 3), 1, 2, 1), ((5, 6), -1, 6, 1), ((3, 4), 0, 1, 3), ((), 0, 1, 1)])
def test_unfold_backward(dtype, shape, dim, size, step):
    x = torch.randn(shape).to(dtype)
    a, an = x.clone().requires_grad_(), x.npu().requires_grad_()
    y, yn = a.unfold(dim, size, step), an.unfold(dim, size, step)
    g = torch.randn(y.shape).to(dtype)
    y.backward(g)
    yn.backward(g.npu())
    torch.testing.assert_close(an.grad.cpu(), a.grad)
