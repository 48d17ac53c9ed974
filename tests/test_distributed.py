"""The hccl backend across processes: torchrun starts 2 ranks on loopback (npu:0 and npu:1),
which run the scripts in tests/distributed/: every collective, DDP and FSDP2 training that
must end with the parameters of a single process, and ranks that disagree or die. Each rank
prints one f-string line per check (separate print arguments interleave across ranks)."""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(__file__)


def torchrun(script: str, *args: str, timeout: float = 300) -> str:
    # --standalone: the launcher's store takes a port the OS assigns (a port probed here
    # could be taken by another run before torchrun binds it)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           os.path.join(HERE, "distributed", script), *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", TORCH_NPU_SIM_THREADS="1")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out.stdout


@pytest.mark.timeout(400)
def test_collectives():
    out = torchrun("collectives.py")
    assert "collectives OK 0" in out and "collectives OK 1" in out


@pytest.mark.timeout(400)
@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_training_matches_one_process(mode):
    """DDP, and FSDP2 (fully_shard), of TinyGPT on two ranks."""
    out = torchrun("train_tinygpt.py", mode)
    assert f"{mode} OK 0" in out and f"{mode} OK 1" in out


@pytest.mark.timeout(400)
def test_mismatched_and_dead_ranks_raise():
    out = torchrun("failures.py")
    assert "mismatch OK 0" in out and "mismatch OK 1" in out and "dead rank OK 0" in out
