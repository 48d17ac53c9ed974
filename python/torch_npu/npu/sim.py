"""Settings and counters of the software NPU that have no torch_npu counterpart."""
from .. import _C


def fallback_counts() -> dict:
    """Calls per op that ran on the CPU fallback since start (or the last reset)."""
    return dict(_C.fallback_counts())


def reset_fallback_counts() -> None:
    _C.reset_fallback_counts()


def native_ops() -> list:
    """ATen ops served by the NPU's own kernels (beyond allocation and views)."""
    return list(_C.native_ops())


def launch_blocking() -> bool:
    """True when ASCEND_LAUNCH_BLOCKING=1 makes every launch synchronous."""
    return _C.launch_blocking()


def host_wait_time() -> float:
    """Seconds host threads have spent blocked on the device since start (synchronizations,
    reads of device data, a full launch queue), summed over threads."""
    return _C.host_wait_time()
