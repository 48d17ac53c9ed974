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


def opaque(schema: str, fake, differentiable=()):
    """Registers ``fn`` as the npu kernel of ``npu::<schema>`` for ops that read data on the host
    (box selection, group sizes), which a trace cannot go through: ``fake`` is their meta kernel
    (FakeTensor, torch.compile). Inputs at the positions in ``differentiable`` (tensors or lists of
    tensors) get gradients by running ``fn`` again under autograd."""
    def register(fn):
        name = define(schema)
        torch.library.impl(name, "PrivateUse1")(fn)
        torch.library.register_fake(name)(fake)
        if differentiable:
            _recompute_autograd(name, fn, differentiable)
        return fn

    return register


def _recompute_autograd(name, fn, positions):
    def setup_context(ctx, inputs, output):
        ctx.inputs = inputs

    def backward(ctx, *grads):
        args = list(ctx.inputs)
        leaves = []
        for p in positions:
            if isinstance(args[p], torch.Tensor):
                args[p] = args[p].detach().requires_grad_()
                leaves.append(args[p])
            elif args[p] is not None:
                args[p] = [t.detach().requires_grad_() for t in args[p]]
                leaves.extend(args[p])
        with torch.enable_grad():
            outs = fn(*args)
        outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
        flat_grads = [g for gr in grads for g in (gr if isinstance(gr, (list, tuple)) else [gr])]
        pairs = [(o, g) for o, g in zip(outs, flat_grads) if g is not None and o.requires_grad]
        found = torch.autograd.grad([o for o, _ in pairs], leaves, [g for _, g in pairs], allow_unused=True)
        found = [torch.zeros_like(t) if d is None else d for t, d in zip(leaves, found)]
        result, k = [], 0
        for p, arg in enumerate(ctx.inputs):
            if p not in positions or arg is None:
                result.append(None)
            elif isinstance(arg, torch.Tensor):
                result.append(found[k])
                k += 1
            else:
                result.append(found[k:k + len(arg)])
                k += len(arg)
        return tuple(result)

    torch.library.register_autograd(name, backward, setup_context=setup_context)
