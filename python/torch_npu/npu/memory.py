"""Memory management of the NPU caching allocator, with torch.cuda's names and formats."""
import collections
from typing import Any, Optional

from .. import _C
from ._utils import _checked_index


def memory_stats(device: Any = None) -> "collections.OrderedDict[str, int]":
    """Flat dict of allocator statistics, with torch.cuda.memory_stats()'s keys."""
    stats = _C.memory_stats(_checked_index(device))
    return collections.OrderedDict(sorted(stats.items()))


def memory_stats_as_nested_dict(device: Any = None) -> dict:
    nested: dict = {}
    for key, value in memory_stats(device).items():
        node = nested
        *path, leaf = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def memory_allocated(device: Any = None) -> int:
    return memory_stats(device)["allocated_bytes.all.current"]


def max_memory_allocated(device: Any = None) -> int:
    return memory_stats(device)["allocated_bytes.all.peak"]


def memory_reserved(device: Any = None) -> int:
    return memory_stats(device)["reserved_bytes.all.current"]


def max_memory_reserved(device: Any = None) -> int:
    return memory_stats(device)["reserved_bytes.all.peak"]


# Deprecated torch.cuda names, kept because scripts still call them.
memory_cached = memory_reserved
max_memory_cached = max_memory_reserved


def reset_peak_memory_stats(device: Any = None) -> None:
    _C.reset_peak_memory_stats(_checked_index(device))


def reset_accumulated_memory_stats(device: Any = None) -> None:
    _C.reset_accumulated_memory_stats(_checked_index(device))


def reset_max_memory_allocated(device: Any = None) -> None:
    reset_peak_memory_stats(device)


reset_max_memory_cached = reset_max_memory_allocated


def empty_cache() -> None:
    """Releases cached, unused device memory (after the work that may still use it)."""
    _C.empty_cache()


def set_per_process_memory_fraction(fraction: float, device: Any = None) -> None:
    if not isinstance(fraction, float):
        raise TypeError("Invalid type for fraction argument, must be `float`")
    _C.set_memory_fraction(fraction, _checked_index(device))


def mem_get_info(device: Any = None) -> tuple:
    """(free, total) device memory in bytes."""
    return tuple(_C.mem_get_info(_checked_index(device)))


def memory_snapshot() -> list:
    """Segments of every device that has allocated memory, as torch.cuda.memory_snapshot()."""
    segments = []
    for idx in range(_C.device_count()):
        segments.extend(_C.memory_snapshot(idx))
    return segments


def caching_allocator_alloc(size: int, device: Any = None, stream: Optional[Any] = None) -> int:
    """Raw device memory from the caching allocator; free it with caching_allocator_delete."""
    idx = _checked_index(device)
    stream_id = 0
    if stream is None:
        import torch

        stream = torch.accelerator.current_stream(idx)
    if hasattr(stream, "stream_id"):
        stream_id = stream.stream_id
    elif isinstance(stream, int):
        stream_id = stream
    else:
        raise TypeError("Invalid type for stream argument, must be `torch.npu.Stream` or `int`")
    return _C.caching_allocator_alloc(size, idx, stream_id)


def caching_allocator_delete(mem_ptr: int) -> None:
    _C.caching_allocator_delete(mem_ptr)


def _format_size(n: int) -> str:
    for unit in ("B  ", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:6d} {unit}" if unit == "B  " else f"{n:6.2f} {unit}"
        n /= 1024
    return str(n)


def _format_count(n: int) -> str:
    return f"{n:10d}"


def memory_summary(device: Any = None, abbreviated: bool = False) -> str:
    """A human-readable table of the allocator statistics of ``device``."""
    idx = _checked_index(device)
    stats = memory_stats(idx)
    rows = [
        ("Allocated memory", "allocated_bytes", _format_size),
        ("Active memory", "active_bytes", _format_size),
        ("Requested memory", "requested_bytes", _format_size),
        ("NPU reserved memory", "reserved_bytes", _format_size),
        ("Non-releasable memory", "inactive_split_bytes", _format_size),
        ("Allocations", "allocation", _format_count),
        ("Active allocs", "active", _format_count),
        ("NPU reserved segments", "segment", _format_count),
        ("Non-releasable allocs", "inactive_split", _format_count),
    ]
    pools = [("all", "")] if abbreviated else [("all", ""), ("large_pool", "  from large pool"), ("small_pool", "  from small pool")]
    width = 84
    line = "=" * width
    sep = "-" * width
    out = [
        line,
        f"{'PyTorch NPU memory summary, device ID ' + str(idx):<{width}}",
        sep,
        f"{'  NPU OOMs: ' + str(stats['num_ooms']):<42}|{'  npuMalloc retries: ' + str(stats['num_alloc_retries']):<41}",
        line,
        f"{'        Metric':<26}| {'Cur Usage':>12} | {'Peak Usage':>12} | {'Tot Alloc':>12} | {'Tot Freed':>12} ",
    ]
    for title, key, fmt in rows:
        out.append(sep)
        for pool, suffix in pools:
            label = title if pool == "all" else suffix
            vals = [stats[f"{key}.{pool}.{f}"] for f in ("current", "peak", "allocated", "freed")]
            out.append(f"{label:<26}| " + " | ".join(f"{fmt(v):>12}" for v in vals) + " ")
    out.append(sep)
    for title, key in (("Oversize allocations", "oversize_allocations"), ("Oversize NPU segments", "oversize_segments")):
        vals = [stats[f"{key}.{f}"] for f in ("current", "peak", "allocated", "freed")]
        out.append(f"{title:<26}| " + " | ".join(f"{_format_count(v):>12}" for v in vals) + " ")
    out.append(line)
    return "\n".join(out) + "\n"
