"""One flat buffer for many tensors: each tensor is re-pointed at its slice of the buffer, so an
op on the buffer updates all of them at once (what torch_npu's fused optimizers build on).
Tensors keep their identity (a Parameter stays the same object), only their storage moves."""
import torch

__all__ = ["npu_combine_tensors", "get_part_combined_tensor", "is_combined_tensor_valid"]


def _repoint(tensor: torch.Tensor, buffer: torch.Tensor, index: int) -> None:
    with torch.no_grad():
        tensor.set_(buffer.untyped_storage(), buffer.storage_offset() + index, tensor.size(), tensor.stride())


def npu_combine_tensors(list_of_tensor, require_copy_value=True):
    """A new flat npu buffer holding every tensor of the list, in order; each tensor now views
    its slice. ``require_copy_value=False`` skips copying the values (the slices start at 0).
    None when the list is empty or holds no elements."""
    if len(list_of_tensor) == 0:
        return None
    if any(t is None for t in list_of_tensor):
        raise RuntimeError("npu_combine_tensors: tensors to combine must not be None")
    first = list_of_tensor[0]
    for t in list_of_tensor:
        if t.dtype != first.dtype:
            raise RuntimeError(f"npu_combine_tensors: tensors to combine must have one dtype, got {first.dtype} "
                               f"and {t.dtype}")
        if t.device.type != "npu" or t.device != first.device:
            raise RuntimeError(f"npu_combine_tensors: tensors to combine must be on one npu device, got {first.device} "
                               f"and {t.device}")
        if not t.is_contiguous():
            raise RuntimeError("npu_combine_tensors: tensors to combine must be contiguous")
    total = sum(t.numel() for t in list_of_tensor)
    if total == 0:
        return None
    combined = torch.zeros(total, dtype=first.dtype, device=first.device)
    index = 0
    for t in list_of_tensor:
        n = t.numel()
        if require_copy_value:
            with torch.no_grad():
                combined[index:index + n].copy_(t.reshape(-1))
        _repoint(t, combined, index)
        index += n
    return combined


def get_part_combined_tensor(combined_tensor, index, size):
    """A flat tensor viewing ``size`` elements of ``combined_tensor`` from ``index`` (None for
    an empty part)."""
    if combined_tensor is None or size == 0:
        return None
    if index + size > combined_tensor.numel():
        raise RuntimeError(f"get_part_combined_tensor: (index + size) ({index + size}) > the combined tensor's "
                           f"size ({combined_tensor.numel()})")
    return combined_tensor.view(-1)[index:index + size]


def is_combined_tensor_valid(combined_tensor, list_of_tensor):
    """Whether every tensor of the list still lies, contiguous, inside ``combined_tensor``."""
    if len(list_of_tensor) == 0:
        return True
    if combined_tensor is None:
        return False
    start = combined_tensor.data_ptr()
    end = start + combined_tensor.numel() * combined_tensor.element_size()
    return all(t is not None and start <= t.data_ptr() < end and t.is_contiguous() for t in list_of_tensor)
