"""torch_npu's custom operators (``torch_npu.npu_*``), registered as real operators in the
``npu`` namespace (``torch.ops.npu.*``), so FakeTensor and torch.compile trace them.

Most are compositions of native npu operators, registered as CompositeImplicitAutograd: their
gradients and their meta kernels come from the composition. Ops that read data on the host
(box selection, group sizes: nms, batch_nms, roi_align, grouped_matmul) and ``_npu_dropout``
have npu kernels with their own fake kernels; their gradients come from running the op again
under autograd, or from a formula (``_npu_dropout``)."""
from . import activation, attention, detection, dropout, infer_attention, layout, matmul, moe, norm, quant, rotary, sampling  # noqa: F401
from ._registry import EXPORTED

__all__ = list(EXPORTED)
