"""Every view op must be native: a fallback would return a copy and silently break aliasing."""
import torch

import torch_npu  # noqa: F401


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
