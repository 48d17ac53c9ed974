"""torch_npu.distributed: the ``hccl`` backend of ``torch.distributed`` for npu tensors."""
from .hccl import ProcessGroupHCCL, is_hccl_available

__all__ = ["ProcessGroupHCCL", "is_hccl_available"]
