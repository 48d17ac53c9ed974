"""The hccl backend across processes: torchrun starts 2 ranks on loopback (npu:0 and npu:1),
which run the scripts in tests/distributed/ — every collective, DDP and FSDP2 training that
must end with the parameters of a single process."""
import os
import socket
import subprocess
import sys

import pytest

HERE = os.path.dirname(__file__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(script: str, timeout: float = 300) -> str:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", os.path.join(HERE, "distributed", script)]
    env = dict(os.environ, OMP_NUM_THREADS="1", TORCH_NPU_SIM_THREADS="1")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out.stdout


@pytest.mark.timeout(400)
def test_collectives():
    out = torchrun("collectives.py")
    assert "collectives OK 0" in out and "collectives OK 1" in out


@pytest.mark.timeout(400)
def test_ddp_matches_one_process():
    out = torchrun("ddp_tinygpt.py")
    assert "DDP OK 0" in out and "DDP OK 1" in out


@pytest.mark.timeout(400)
def test_fsdp2_matches_one_process():
    out = torchrun("fsdp_tinygpt.py")
    assert "FSDP OK" in out and out.count("FSDP OK") == 2
