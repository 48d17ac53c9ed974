"""The hccl backend across processes: torchrun starts 2 ranks on loopback (npu:0 and npu:1),
which run the scripts in tests/distributed/: every collective, DDP and FSDP2 training that
must end with the parameters of a single process, and ranks that disagree or die. Each rank
prints one f-string line per check (separate print arguments interleave across ranks)."""
import datetime
import os
import socket
import subprocess
import sys
import time

import pytest
import torch_npu

from torch_npu.distributed import _env
from torch_npu.distributed._env import pick_interface

HERE = os.path.dirname(__file__)


def torchrun(script: str, *args: str, timeout: float = 300, **env: str) -> str:
    # --standalone: the launcher's store takes a port the OS assigns (a port probed here
    # could be taken by another run before torchrun binds it)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           os.path.join(HERE, "distributed", script), *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", TORCH_NPU_SIM_THREADS="1", **env)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out.stdout


@pytest.mark.timeout(400)
def test_collectives():
    out = torchrun("collectives.py")
    assert "collectives OK 0" in out and "collectives OK 1" in out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def finish_together(procs, timeout=300):
    """Each process's (stdout, stderr); once one fails, the others are killed (they would wait
    for it until their rendezvous timed out)."""
    deadline = time.time() + timeout
    while any(p.poll() is None for p in procs) and time.time() < deadline:
        if any(p.poll() not in (None, 0) for p in procs):
            break
        time.sleep(0.2)
    for p in procs:
        if p.poll() is None:
            p.kill()
    return [p.communicate() for p in procs]


@pytest.mark.timeout(400)
def test_two_launchers_as_on_two_machines():
    """torchrun as on two machines (--nnodes=2, --node_rank, --master_addr/port), each launcher
    starting one rank; here both machines are this one, on loopback."""
    env = dict(os.environ, OMP_NUM_THREADS="1", TORCH_NPU_SIM_THREADS="1", HCCL_IF_IP="127.0.0.1")
    for attempt in range(3):  # the probed port may be taken before the launcher binds it
        port = free_port()
        launchers = [subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node_rank={node}",
             "--nproc_per_node=1", "--master_addr=127.0.0.1", f"--master_port={port}",
             os.path.join(HERE, "distributed", "collectives.py")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for node in range(2)]
        outs = finish_together(launchers)
        if all(launcher.returncode == 0 for launcher in launchers):
            break
        assert attempt < 2 and any("address already in use" in err.lower() for _, err in outs), \
            "\n".join(out[-2000:] + err[-4000:] for out, err in outs)
    assert "collectives OK 0" in outs[0][0] and "collectives OK 1" in outs[1][0]


@pytest.mark.timeout(400)
@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_training_matches_one_process(mode):
    """DDP, and FSDP2 (fully_shard), of TinyGPT on two ranks."""
    out = torchrun("train_tinygpt.py", mode)
    assert f"{mode} OK 0" in out and f"{mode} OK 1" in out


@pytest.mark.timeout(400)
def test_mismatched_and_dead_ranks_raise():
    # on the loopback interface named as torch_npu scripts name it
    out = torchrun("failures.py", "dead", HCCL_SOCKET_IFNAME="=lo")
    assert "mismatch OK 0" in out and "mismatch OK 1" in out and "dead rank OK 0" in out


@pytest.mark.timeout(400)
def test_hanging_rank_raises_after_hccl_exec_timeout():
    out = torchrun("failures.py", "hang", HCCL_EXEC_TIMEOUT="3", HCCL_IF_IP="127.0.0.1")
    assert "hang OK 0" in out


def test_hccl_socket_ifname_rules():
    names = ["lo", "docker0", "eth0", "eth1", "enp3s0"]
    assert pick_interface("eth", names) == "eth0"
    assert pick_interface("enp,eth", names) == "eth0"  # the first interface listed, as HCCL
    assert pick_interface("=eth1", names) == "eth1"
    with pytest.raises(ValueError, match="no network interface"):
        pick_interface("=eth", names)  # '=' names whole interfaces, not prefixes
    assert pick_interface("^lo,docker", names) == "eth0"
    assert pick_interface("^=lo", names) == "docker0"
    with pytest.raises(ValueError, match="HCCL_SOCKET_IFNAME='ib': no network interface .* has lo, docker0"):
        pick_interface("ib", names)
    with pytest.raises(ValueError, match="names no interface"):
        pick_interface("^=", names)


def test_hccl_timeouts(monkeypatch):
    group = datetime.timedelta(minutes=30)
    monkeypatch.delenv("HCCL_EXEC_TIMEOUT", raising=False)
    monkeypatch.delenv("HCCL_CONNECT_TIMEOUT", raising=False)
    assert _env.exec_timeout(group) == group and _env.connect_timeout(group) == group
    monkeypatch.setenv("HCCL_EXEC_TIMEOUT", "68")
    monkeypatch.setenv("HCCL_CONNECT_TIMEOUT", "7200")
    assert _env.exec_timeout(group) == datetime.timedelta(seconds=68)
    assert _env.exec_timeout(datetime.timedelta(seconds=5)) == datetime.timedelta(seconds=5)
    assert _env.connect_timeout(group) == datetime.timedelta(seconds=7200)
    monkeypatch.setenv("HCCL_EXEC_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="HCCL_EXEC_TIMEOUT='soon': expected a positive whole number"):
        _env.exec_timeout(group)


def test_host_view_aliases_device_memory():
    import torch
    t = torch.arange(6.0, device="npu").reshape(2, 3)
    view = torch.ops.npu._host_view(t.t())
    assert view.device.type == "cpu" and view.stride() == (1, 3)
    view[0, 1] = 42.0
    assert t[1, 0].item() == 42.0
    with pytest.raises(RuntimeError, match="npu::_host_view: expected an npu tensor"):
        torch.ops.npu._host_view(torch.ones(2))
    torch.npu.config.allow_internal_format = True
    try:
        private = torch_npu.npu_format_cast(torch.ones(1, 3, 2, 2, device="npu"), 3)
        with pytest.raises(RuntimeError, match="private format"):
            torch.ops.npu._host_view(private)
    finally:
        torch.npu.config.allow_internal_format = False


def test_worker_runs_jobs_in_order_and_orders_the_waiting_stream():
    import threading

    import torch
    from torch_npu.distributed._work import Worker
    worker = Worker("test")
    slow = torch.randn(1024, 1024, device="npu")

    def busy():  # tens of milliseconds of device work on the current stream
        for _ in range(4):
            torch.mm(slow, slow)

    # the job reads x after the work queued before it: a host view would see zeros otherwise
    x = torch.zeros(1 << 16, device="npu")
    busy()
    x.add_(2)
    seen = []
    read = worker.submit("read", [x], lambda st: seen.append(st.host(x).clone()) or [x])
    read.wait()
    assert seen[0].unique().tolist() == [2.0]

    # the job's device work (on the worker's stream) is ordered before what follows wait()
    gate = threading.Event()
    ran = []

    def first(st):
        gate.wait()
        ran.append("first")
        busy()
        x.mul_(3)
        return [x]

    work = worker.submit("first", [x], first)
    second = worker.submit("second", [], lambda st: ran.append("second") or [])
    assert not work.is_completed() and work.exception() is None
    with pytest.raises(RuntimeError, match="did not complete within"):
        work.wait(datetime.timedelta(milliseconds=50))
    gate.set()
    work.wait()
    assert (x + 1).cpu().unique().tolist() == [7.0]
    second.wait()
    assert ran == ["first", "second"] and work.is_success() and work.exception() is None

    def fails(st):
        raise ValueError("boom")

    failed = worker.submit("all_reduce", [x], fails)
    with pytest.raises(RuntimeError, match="hccl all_reduce: boom"):
        failed.wait()
    assert not failed.is_success()

    # a callback of a completed collective may wait for another one of the same group
    chained = worker.submit("outer", [x], lambda st: [x]).get_future().then(
        lambda fut: worker.submit("inner", [x], lambda st: ["inner"]).get_future().wait())
    assert chained.wait() == ["inner"]
    worker.shutdown()
