"""Run by tests/test_distributed.py under torchrun (2 ranks, 10 s timeout): ranks that disagree on a
collective's sizes get an error on both ranks, and the process group keeps working; a rank that
dies makes the survivor raise instead of hanging."""
import datetime
import os
import time

import torch
import torch.distributed as dist

import torch_npu  # noqa: F401

dist.init_process_group("hccl", timeout=datetime.timedelta(seconds=10))
r = dist.get_rank()
torch.npu.set_device(r)
try:
    dist.all_reduce(torch.ones(4 + r, device="npu"))
    raise SystemExit(f"rank {r}: mismatched sizes did not raise")
except RuntimeError as e:
    assert "do not match" in str(e) and "rank 1: 5 elements" in str(e), e
x = torch.ones(3, device="npu")
dist.all_reduce(x)
assert x.cpu().tolist() == [2.0] * 3
print(f"mismatch OK {r}", flush=True)
if r == 1:
    os._exit(0)  # dies without a word
start = time.time()
try:
    dist.all_reduce(torch.ones(4, device="npu"))
    raise SystemExit("rank 0: a collective with a dead rank did not raise")
except RuntimeError:
    assert time.time() - start < 30
print(f"dead rank OK {r}", flush=True)
os._exit(0)
