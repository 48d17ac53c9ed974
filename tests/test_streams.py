"""Streams and events: asynchronous in-order execution, cross-stream sync, timing."""
import time

import pytest
import torch

import torch_npu


def test_stream_objects():
    s = torch.npu.Stream()
    assert isinstance(s, torch.Stream)
    assert s.device == torch.device("npu:0")
    assert s != torch.npu.default_stream()
    assert torch.npu.current_stream() == torch.npu.default_stream()
    hi = torch.npu.Stream(priority=-1)
    assert hi.priority == -1 and s.priority == 0
    assert torch.npu.Stream.priority_range() == (0, -1)
    s1 = torch.npu.Stream(device=1)
    assert s1.device_index == 1
    assert s.query()
    s.synchronize()
    g = torch.Stream(device="npu")
    assert g.device_type == torch.npu.current_stream().device_type


def test_stream_context_and_set_stream():
    s = torch.npu.Stream()
    with torch.npu.stream(s):
        assert torch.npu.current_stream() == s
        assert torch.accelerator.current_stream() == s
    assert torch.npu.current_stream() == torch.npu.default_stream()
    torch.npu.set_stream(s)
    assert torch.npu.current_stream() == s
    torch.npu.set_stream(torch.npu.default_stream())
    # As torch.cuda: a stream of another device makes that device current inside the block.
    other = torch.npu.Stream(device=2)
    with torch.npu.stream(other):
        assert torch.npu.current_device() == 2
        assert torch.npu.current_stream() == other
    assert torch.npu.current_device() == 0
    assert torch.npu.current_stream(2) == torch.npu.default_stream(2)


def test_launch_returns_before_work_finishes():
    x = torch.empty(16 << 20, device="npu")  # 64 MiB
    torch.npu.synchronize()
    t0 = time.perf_counter()
    for _ in range(20):
        x.fill_(1.0)
    launched = time.perf_counter() - t0
    done = torch.npu.current_stream().query()
    torch.npu.synchronize()
    total = time.perf_counter() - t0
    # 20 fills of 64 MiB take far longer than queueing them.
    assert not done or launched < total / 4
    assert launched < total
    assert x[0].item() == 1.0


def test_events_measure_time_and_order_streams():
    s1, s2 = torch.npu.Stream(), torch.npu.Stream()
    start = torch.npu.Event(enable_timing=True)
    end = torch.npu.Event(enable_timing=True)
    x = torch.empty(8 << 20, device="npu")
    with torch.npu.stream(s1):
        start.record()
        for _ in range(10):
            x.fill_(2.0)
        end.record()
    with torch.npu.stream(s2):
        s2.wait_event(end)
        y = torch.empty(8 << 20, device="npu")
        y.copy_(x)
    s2.synchronize()
    assert end.query()
    assert start.elapsed_time(end) > 0
    assert y[-1].item() == 2.0 and y[0].item() == 2.0


def test_two_streams_with_wait_stream():
    a = torch.zeros(4 << 20, device="npu")
    s1, s2 = torch.npu.Stream(), torch.npu.Stream()
    # a's zero fill is queued on the current stream: s1 must wait for it, as on CUDA (without
    # this the fill could land after s1's writes, which CI once caught)
    s1.wait_stream(torch.npu.current_stream())
    with torch.npu.stream(s1):
        for v in range(1, 6):
            a.fill_(float(v))
    s2.wait_stream(s1)
    with torch.npu.stream(s2):
        b = torch.empty_like(a)
        b.copy_(a)
    a.record_stream(s2)
    torch.npu.synchronize()
    assert b[0].item() == 5.0 and b[-1].item() == 5.0


def test_torch_event_generic_api():
    e = torch.Event(device="npu", enable_timing=True)
    e.record()
    e.synchronize()
    assert e.query()
    e2 = torch.npu.current_stream().record_event()
    e2.synchronize()
    ev = torch.npu.Event()
    ev.record()
    ev.wait()
    ev.synchronize()
    with pytest.raises(RuntimeError):
        ev.elapsed_time(torch.npu.Event())


def test_record_stream_delays_reuse():
    s = torch.npu.Stream()
    x = torch.empty(1 << 20, device="npu")
    ptr = x.data_ptr()
    with torch.npu.stream(s):
        for _ in range(30):
            x.fill_(3.0)
    x.record_stream(s)
    del x
    y = torch.empty(1 << 20, device="npu")
    # The block may only come back once the other stream's fills are done.
    if y.data_ptr() == ptr:
        assert s.query()
    torch.npu.synchronize()


def test_launch_blocking_mode():
    from conftest import run_python
    r = run_python("""
        import torch, torch_npu
        print(torch.npu.sim.launch_blocking())
        p = torch.full((4,), 2.0, device='npu')
        try:
            torch.empty(4, device='npu').bernoulli_(p)
            print('no error')
        except RuntimeError as e:
            print('raised at call', 'bernoulli' in str(e))
    """, env={"ASCEND_LAUNCH_BLOCKING": "1"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "raised", "at", "call", "True"]


def test_small_ops_keep_stream_order_behind_queued_work():
    # Small ops run on the calling thread only when the stream is idle; behind a queued
    # matmul they queue, and read its result.
    a = torch.randn(768, 768, generator=torch.Generator().manual_seed(0))
    x = a.npu()
    torch.npu.synchronize()
    y = x @ x
    z = y[0, :16] * 2 + 1  # small, depends on the queued matmul
    w = torch.empty(16, device="npu")
    w.copy_(z)
    torch.npu.synchronize()
    expected = (a @ a)[0, :16] * 2 + 1
    torch.testing.assert_close(w.cpu(), expected, rtol=1e-4, atol=1e-4)  # matmul summation order
    # On an idle stream: in-place chains see each other's results.
    v = torch.zeros(8, device="npu")
    for _ in range(100):
        v.add_(1)
    assert v.cpu().tolist() == [100.0] * 8


def test_small_op_errors_are_reported_at_sync():
    t = torch.zeros(4, device="npu")
    torch.npu.synchronize()  # idle stream: the small gather below runs inline
    bad = torch.tensor([0, 9], device="npu")
    r = t.index_select(0, bad)  # the index is checked by the kernel
    with pytest.raises(RuntimeError, match="index_select"):
        torch.npu.synchronize()
    del r
    assert torch.ones(3, device="npu").sum().item() == 3


def test_host_wait_time_counts_synchronization():
    x = torch.empty(16 << 20, device="npu")
    torch.npu.synchronize()
    before = torch_npu.npu.sim.host_wait_time()
    for _ in range(10):
        x.fill_(1.0)
    torch.npu.synchronize()
    assert torch_npu.npu.sim.host_wait_time() > before
