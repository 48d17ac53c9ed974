"""Memory of one benchmark case on one device, measured in a process of its own (peak RSS is
per process): `python bench/memory.py npu "train step: TinyGPT"` prints a JSON line with the
peak RSS, the RSS before the case was built and, on npu, the peak device memory allocated and
reserved by the caching allocator."""
import json
import os
import sys
import warnings

import torch

import torch_npu  # noqa: F401  (imported on both devices, so both processes hold the same code)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cases import CASES  # noqa: E402


def status_mib(field):
    """VmRSS (now) or VmHWM (peak) of this process. Not getrusage's ru_maxrss: that also
    counts the parent's pages between fork and exec."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def main():
    device, pattern = sys.argv[1], sys.argv[2]
    warnings.filterwarnings("ignore", message=".*falls back to the CPU.*")
    case = next(c for c in CASES if pattern in c.name)
    base = status_mib("VmRSS")
    fn = case.build(device)
    if device == "npu":
        torch.npu.synchronize()
        torch.npu.reset_peak_memory_stats()
    for _ in range(5):
        fn()
    out = {"case": case.name, "device": device, "rss_before_mib": base,
           "peak_rss_mib": status_mib("VmHWM")}
    if device == "npu":
        torch.npu.synchronize()
        out["max_allocated_mib"] = torch.npu.max_memory_allocated() / 2**20
        out["max_reserved_mib"] = torch.npu.max_memory_reserved() / 2**20
    print(json.dumps(out))


if __name__ == "__main__":
    main()
