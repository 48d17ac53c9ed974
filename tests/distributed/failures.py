"""Run by tests/test_distributed.py under torchrun (2 ranks) as `failures.py dead|hang`.

dead (10 s group timeout): ranks that disagree on a collective's sizes get an error on both ranks,
and so do dtypes the backend cannot reduce, and the group keeps working; then rank 1 dies and
rank 0's next collective raises instead of hanging.
hang (HCCL_EXEC_TIMEOUT=3, group timeout 30 min): rank 1 stays alive but skips a collective;
rank 0's raises after about 3 s."""
import datetime
import os
import sys
import time

import torch
import torch.distributed as dist

import torch_npu  # noqa: F401

mode = sys.argv[1]
dist.init_process_group("hccl", timeout=datetime.timedelta(seconds=10 if mode == "dead" else 1800))
r = dist.get_rank()
torch.npu.set_device(r)


def raises(call, kind, *words):
    try:
        call()
    except kind as e:
        assert all(w in str(e) for w in words), e
        return
    raise SystemExit(f"rank {r}: {call} did not raise")


if mode == "dead":
    raises(lambda: dist.all_reduce(torch.ones(4 + r, device="npu")), RuntimeError,
           "hccl all_reduce", "do not match", "rank 1: 5 elements")
    raises(lambda: dist.all_gather_into_tensor(torch.empty(8, device="npu"),
                                               torch.ones(4, device="npu", dtype=torch.float32 if r else torch.int32)),
           RuntimeError, "do not match", "rank 0: 4 elements of torch.int32", "rank 1: 4 elements of torch.float32")
    raises(lambda: dist.all_to_all_single(torch.empty(4, device="npu"), torch.ones(4, device="npu"),
                                          input_split_sizes=[1, 3] if r == 0 else [2, 2]),
           RuntimeError, "hccl all_to_all_single: rank 0 sends 1 elements to rank 0, which expects 2")
    raises(lambda: dist.all_reduce(torch.ones(4, device="npu", dtype=torch.int16)), TypeError,
           "hccl all_reduce: cannot reduce torch.int16")
    raises(lambda: dist.all_reduce(torch.ones(4, device="npu"), op=dist.ReduceOp.BAND), TypeError,
           "hccl all_reduce: BAND is not defined for torch.float32")
    x = torch.ones(3, device="npu")
    dist.all_reduce(x)
    assert x.cpu().tolist() == [2.0] * 3
    print(f"mismatch OK {r}", flush=True)
    if r == 1:
        os._exit(0)  # dies without a word
    start = time.time()
    raises(lambda: dist.all_reduce(torch.ones(4, device="npu")), RuntimeError, "hccl all_reduce")
    assert time.time() - start < 30
    print(f"dead rank OK {r}", flush=True)
else:
    dist.barrier()
    if r == 1:
        time.sleep(15)  # alive, but never joins the collective
        os._exit(0)
    start = time.time()
    raises(lambda: dist.all_reduce(torch.ones(4, device="npu")), RuntimeError, "hccl all_reduce")
    took = time.time() - start
    assert 2 < took < 12, took
    print(f"hang OK {r} after {took:.1f} s", flush=True)
os._exit(0)
