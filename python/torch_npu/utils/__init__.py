"""torch_npu.utils: helpers torch_npu exposes (combining tensors into one flat buffer)."""
from .combine_tensors import get_part_combined_tensor, is_combined_tensor_valid, npu_combine_tensors

__all__ = ["npu_combine_tensors", "get_part_combined_tensor", "is_combined_tensor_valid"]
