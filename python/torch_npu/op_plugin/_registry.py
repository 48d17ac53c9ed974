"""Registration of torch_npu's custom operators in the ``npu`` namespace."""
import torch

_LIB = torch.library.Library("npu", "FRAGMENT")  # the namespace is created by the C++ extension

# name -> the Python callable torch_npu exposes (torch_npu.<name>)
EXPORTED = {}


def composite(schema: str, export: bool = True):
    """Registers ``fn`` as the CompositeImplicitAutograd kernel of ``npu::<schema>``: autograd
    and meta kernels follow from the ops it is composed of."""
    name = schema.split("(", 1)[0]

    def register(fn):
        _LIB.define(schema)
        _LIB.impl(name, fn, "CompositeImplicitAutograd")
        if export:
            EXPORTED[name] = getattr(torch.ops.npu, name)
        return fn

    return register


def define(schema: str):
    """Defines ``npu::<schema>``; the caller registers its kernels."""
    _LIB.define(schema)
    name = schema.split("(", 1)[0]
    EXPORTED[name] = getattr(torch.ops.npu, name)
    return f"npu::{name}"


def float_math(x: torch.Tensor) -> torch.Tensor:
    """f16/bf16 compute in float32, as the device's vector units do."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
