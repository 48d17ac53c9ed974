"""torch.npu: device management for the NPU, laid out like torch.cuda."""
import os
import re
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Optional

import torch

from .. import _C
from . import sim
from ._utils import _checked_index, _get_device_index
from .memory import (
    caching_allocator_alloc,
    caching_allocator_delete,
    empty_cache,
    max_memory_allocated,
    max_memory_cached,
    max_memory_reserved,
    mem_get_info,
    memory_allocated,
    memory_cached,
    memory_reserved,
    memory_snapshot,
    memory_stats,
    memory_stats_as_nested_dict,
    memory_summary,
    reset_accumulated_memory_stats,
    reset_max_memory_allocated,
    reset_max_memory_cached,
    reset_peak_memory_stats,
    set_per_process_memory_fraction,
)
from .random import (
    get_rng_state,
    get_rng_state_all,
    initial_seed,
    manual_seed,
    manual_seed_all,
    seed,
    seed_all,
    set_rng_state,
    set_rng_state_all,
)
from .streams import Event, Stream
from .autocast_utils import (
    get_amp_supported_dtype,
    get_autocast_dtype,
    is_autocast_enabled,
    set_autocast_dtype,
    set_autocast_enabled,
)
from . import amp  # noqa: E402
from . import config  # noqa: E402

OutOfMemoryError = torch.OutOfMemoryError

_initialized = False
_init_lock = threading.Lock()


def _is_in_bad_fork() -> bool:
    # The software NPU keeps no state a fork would break beyond its worker threads, which
    # are recreated lazily; report no bad fork, as torch.random expects of a device module.
    return False


def is_available() -> bool:
    """True when at least one NPU is visible."""
    return _C.device_count() > 0


def is_initialized() -> bool:
    return _initialized


def init() -> None:
    """Initializes the NPU state. Like torch.cuda.init, calling it is optional."""
    global _initialized
    with _init_lock:
        _initialized = True


def _lazy_init() -> None:
    if not _initialized:
        init()


def device_count() -> int:
    return _C.device_count()


def current_device() -> int:
    _lazy_init()
    return _C.current_device()


def set_device(device: Any) -> None:
    """Sets the current device. Negative indices are ignored, as in torch.cuda."""
    idx = _get_device_index(device)
    if idx >= 0:
        _lazy_init()
        _C.set_device(idx)


class device:
    """Context manager that changes the current device (torch.cuda.device's semantics)."""

    def __init__(self, device: Any):
        self.idx = _get_device_index(device, optional=True)
        self.prev_idx = -1

    def __enter__(self):
        self.prev_idx = torch.accelerator.current_device_index() if self.idx >= 0 else -1
        if self.idx >= 0 and self.idx != self.prev_idx:
            set_device(self.idx)

    def __exit__(self, *args):
        if self.prev_idx >= 0 and self.idx != self.prev_idx:
            set_device(self.prev_idx)
        return False


class device_of(device):
    """Sets the current device to that of a tensor; a no-op for tensors not on an NPU."""

    def __init__(self, obj: torch.Tensor):
        super().__init__(obj.get_device() if obj.is_npu else -1)


def synchronize(device: Any = None) -> None:
    """Waits for all work queued on all streams of ``device``; raises pending device errors."""
    _lazy_init()
    _C.synchronize(_checked_index(device))


@dataclass(frozen=True)
class _NPUDeviceProperties:
    name: str
    total_memory: int
    multi_processor_count: int
    major: int = 0
    minor: int = 0
    is_integrated: bool = False
    is_multi_gpu_board: bool = False

    def __repr__(self) -> str:
        return (
            f"_NPUDeviceProperties(name='{self.name}', "
            f"total_memory={self.total_memory // (1024 * 1024)}MB, "
            f"multi_processor_count={self.multi_processor_count})"
        )


def get_device_properties(device: Any = None) -> _NPUDeviceProperties:
    idx = _checked_index(device)
    return _NPUDeviceProperties(
        name=_C.soc_name(),
        total_memory=_C.total_memory(idx),
        multi_processor_count=torch.get_num_threads(),
    )


def get_device_name(device: Any = None) -> str:
    return get_device_properties(device).name


def get_device_capability(device: Any = None) -> Optional[tuple]:
    """(major, minor) from TORCH_NPU_DEVICE_CAPABILITY ("8.0"), else None — as torch_npu:
    an NPU has no compute capability; the variable exists for scripts that ask anyway."""
    _checked_index(device)
    value = os.environ.get("TORCH_NPU_DEVICE_CAPABILITY")
    if not value:
        return None
    match = re.fullmatch(r"(\d+)\.(\d+)", value)
    if match is None:
        warnings.warn(
            f"torch.npu.get_device_capability can't parse TORCH_NPU_DEVICE_CAPABILITY={value!r}; "
            "expected 'major.minor' with non-negative integers, e.g. '8.0'"
        )
        return None
    return int(match.group(1)), int(match.group(2))


def can_device_access_peer(device: Any, peer_device: Any) -> bool:
    """All devices of the software NPU share one address space, so distinct devices can."""
    a, b = _checked_index(device), _checked_index(peer_device)
    return a != b


def current_stream(device: Any = None) -> Stream:
    s = torch.accelerator.current_stream(_checked_index(device))
    return Stream._wrap(s)


def default_stream(device: Any = None) -> Stream:
    idx = _checked_index(device)
    # device_type is c10's DeviceType code; take it from a stream PyTorch made.
    device_type = torch.accelerator.current_stream(idx).device_type
    return Stream(stream_id=0, device_index=idx, device_type=device_type)


def set_stream(stream: Optional[torch.Stream]) -> None:
    if stream is not None:
        torch.accelerator.set_stream(stream)


class StreamContext:
    """Selects a stream (and its device) for the duration of a ``with`` block."""

    def __init__(self, stream: Optional[torch.Stream]):
        self.stream = stream
        self.src_prev_stream = None
        self.dst_prev_stream = None

    def __enter__(self):
        if self.stream is None:
            return
        self.src_prev_stream = current_stream()
        if self.src_prev_stream.device_index != self.stream.device_index:
            with device(self.stream.device_index):
                self.dst_prev_stream = current_stream()
        set_stream(self.stream)

    def __exit__(self, *args):
        if self.stream is None:
            return
        if self.dst_prev_stream is not None:
            set_stream(self.dst_prev_stream)
        set_stream(self.src_prev_stream)


def stream(stream: Optional[torch.Stream]) -> StreamContext:
    return StreamContext(stream)


def is_bf16_supported(including_emulation: bool = True) -> bool:
    return True


__all__ = [
    "amp", "config", "get_amp_supported_dtype", "get_autocast_dtype", "is_autocast_enabled", "set_autocast_dtype",
    "set_autocast_enabled", "Event", "OutOfMemoryError", "Stream", "StreamContext", "caching_allocator_alloc",
    "caching_allocator_delete", "can_device_access_peer", "current_device", "current_stream",
    "default_stream", "device", "device_count", "device_of", "empty_cache", "get_device_capability",
    "get_device_name", "get_device_properties", "get_rng_state", "get_rng_state_all", "init",
    "initial_seed", "is_available", "is_bf16_supported", "is_initialized", "manual_seed",
    "manual_seed_all", "max_memory_allocated", "max_memory_cached", "max_memory_reserved",
    "mem_get_info", "memory_allocated", "memory_cached", "memory_reserved", "memory_snapshot",
    "memory_stats", "memory_stats_as_nested_dict", "memory_summary",
    "reset_accumulated_memory_stats", "reset_max_memory_allocated", "reset_max_memory_cached",
    "reset_peak_memory_stats", "seed", "seed_all", "set_device", "set_per_process_memory_fraction",
    "set_rng_state", "set_rng_state_all", "set_stream", "sim", "stream", "synchronize",
]
