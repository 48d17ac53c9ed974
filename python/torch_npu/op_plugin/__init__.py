"""torch_npu's custom operators (``torch_npu.npu_*``), registered as real operators in the
``npu`` namespace (``torch.ops.npu.*``), so FakeTensor and torch.compile trace them.

Most are compositions of native npu operators, registered as CompositeImplicitAutograd: their
gradients and their meta kernels come from the composition. Ops with randomness or a
bespoke backward (``_npu_dropout``) have their own fake kernel and autograd formula."""
from . import activation, attention, detection, dropout, infer_attention, layout, matmul, moe, norm, quant, rotary, sampling  # noqa: F401
from ._registry import EXPORTED

__all__ = list(EXPORTED)
