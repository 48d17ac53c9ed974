"""The host tensors Gloo works on in place of npu tensors.

The software NPU's memory is host memory, so a dense npu tensor in a plain format is handed to Gloo
as a CPU view of that memory (zero-copy): Gloo reads and writes the device memory itself. Any other
npu tensor (strided, or in a private format) goes through a dense device copy viewed the same way,
and results are copied back on the current stream afterwards. Stage only after the device work that
writes the tensors has finished, and queue no device work on them until the collective is done."""
from typing import List

import torch


def as_bytes(t: torch.Tensor) -> torch.Tensor:
    """A dense tensor's bytes (Gloo moves any dtype that way, including those it cannot reduce)."""
    return t.reshape(-1).view(torch.uint8)


def rows_as_bytes(t: torch.Tensor) -> torch.Tensor:
    """A dense tensor's bytes, one row per index of its first dim (for all_to_all's splits)."""
    if t.dim() == 0:
        return as_bytes(t)
    inner = 1
    for s in t.shape[1:]:
        inner *= s
    return t.reshape(t.shape[0], inner).view(torch.uint8)


class Staging:
    def __init__(self):
        self._copies = []  # (npu tensor, dense copy) whose results are copied back
        self._reads = False  # whether a dense copy is still being filled on the current stream

    def host(self, t: torch.Tensor, read: bool = True, write: bool = True) -> torch.Tensor:
        """The dense host tensor standing for ``t``: ``read`` if the collective reads it, ``write``
        if it writes it. Dense CPU tensors stand for themselves."""
        npu = t.device.type == "npu"
        if t.is_contiguous() and not (npu and torch.ops.npu.has_private_format(t)):
            return torch.ops.npu._host_view(t) if npu else t
        dense = torch.empty(t.shape, dtype=t.dtype, device=t.device)
        if read:
            dense.copy_(t)
            self._reads = self._reads or npu
        if write:
            self._copies.append((t, dense))
        return torch.ops.npu._host_view(dense) if npu else dense

    def hosts(self, ts: List[torch.Tensor], read: bool = True, write: bool = True) -> List[torch.Tensor]:
        return [self.host(t, read, write) for t in ts]

    def bytes(self, ts: List[torch.Tensor], read: bool = True, write: bool = True) -> List[torch.Tensor]:
        """The host tensors' bytes (for collectives that only move data)."""
        return [as_bytes(self.host(t, read, write)) for t in ts]

    def ready(self) -> None:
        """Waits for the dense copies to be filled; call before Gloo reads the host tensors."""
        if self._reads:
            torch.npu.current_stream().synchronize()
            self._reads = False

    def write_back(self) -> None:
        """Copies results into the tensors that were not used in place, and waits for the copies:
        the dense buffers are freed after, and the next collective's buffer, written by Gloo
        from the host, may reuse their memory."""
        for t, dense in self._copies:
            t.copy_(dense)
        if self._copies:
            torch.npu.current_stream().synchronize()
        self._copies = []
