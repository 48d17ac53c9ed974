"""Several devices in one process (issue 6's first part): tensors on every simulated device,
direct copies between devices that respect each device's pending work, device contexts,
per-device streams, events and memory statistics, peer access, and a model split across two
devices that trains like the same model on the CPU."""
import copy

import pytest
import torch
import torch.nn as nn

import torch_npu  # noqa: F401


def test_tensors_on_every_device():
    n = torch.npu.device_count()
    assert n == 8  # one Ascend server by default
    for d in range(n):
        t = torch.full((3,), float(d), device=f"npu:{d}")
        assert t.device == torch.device("npu", d) and t.cpu().tolist() == [d] * 3


def test_device_to_device_copies_wait_for_the_source():
    x = torch.zeros(8 << 20, device="npu:0")
    for v in range(1, 4):
        x.fill_(float(v))  # queued on npu:0's stream
    y = x.to("npu:1")
    assert y.device == torch.device("npu", 1)
    assert y[0].item() == 3.0 and y[-1].item() == 3.0
    # strided source, dtype conversion, and the way back
    m = torch.arange(12.0, device="npu:2").reshape(3, 4).t()
    z = m.to("npu:3", dtype=torch.float16)
    assert z.device.index == 3 and torch.equal(z.cpu(), torch.arange(12.0).reshape(3, 4).t().half())
    w = torch.empty(4, 3, device="npu:2")
    w.copy_(z)
    assert torch.equal(w.cpu(), m.cpu())


def test_device_context_streams_and_events():
    with torch.npu.device(1):
        assert torch.npu.current_device() == 1
        t = torch.ones(4, device="npu")
        assert t.device.index == 1
        s = torch.npu.Stream()
        assert s.device_index == 1
        # t was written on the default stream: s must wait for it (as on CUDA), else the
        # product may read it before the fill ran
        s.wait_stream(torch.npu.current_stream())
        with torch.npu.stream(s):
            u = t * 5
            ev = torch.npu.Event(enable_timing=True)
            ev.record()
        assert torch.npu.current_stream() != s
    assert torch.npu.current_device() == 0
    torch.npu.current_stream(0).wait_event(ev)  # device 0's stream waits for device 1's work
    v = u.to("npu:0")
    assert v.cpu().tolist() == [5.0] * 4
    assert torch.npu.current_stream(1) == torch.npu.default_stream(1)
    torch.npu.synchronize(1)
    assert ev.query()


def test_memory_statistics_are_per_device():
    torch.npu.synchronize()
    before = [torch.npu.memory_allocated(d) for d in (4, 5)]
    big = torch.empty(1 << 20, device="npu:4")
    assert torch.npu.memory_allocated(4) >= before[0] + (4 << 20)
    assert torch.npu.memory_allocated(5) == before[1]
    assert torch.npu.max_memory_allocated(4) >= torch.npu.memory_allocated(4)
    del big
    assert torch.npu.memory_allocated(4) == before[0]
    assert torch.npu.memory_reserved(4) > 0


def test_peer_access():
    assert torch.npu.can_device_access_peer(0, 1)
    assert not torch.npu.can_device_access_peer(2, 2)
    with pytest.raises((RuntimeError, ValueError)):
        torch.npu.can_device_access_peer(0, 99)


def test_ops_mixing_devices_are_errors():
    a, b = torch.ones(2, device="npu:0"), torch.ones(2, device="npu:1")
    with pytest.raises(RuntimeError, match="same device"):
        a + b
    assert (a + b.to("npu:0")).cpu().tolist() == [2.0, 2.0]


def test_pipeline_split_across_two_devices_trains_like_cpu():
    torch.manual_seed(0)
    first, second = nn.Sequential(nn.Linear(8, 32), nn.GELU()), nn.Sequential(nn.Linear(32, 4))
    reference = nn.Sequential(copy.deepcopy(first), copy.deepcopy(second))
    first.to("npu:0")
    second.to("npu:1")
    opt = torch.optim.AdamW(list(first.parameters()) + list(second.parameters()), lr=1e-2)
    ref_opt = torch.optim.AdamW(reference.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    for _ in range(10):
        x, y = torch.randn(16, 8, generator=g), torch.randn(16, 4, generator=g)
        opt.zero_grad()
        loss = ((second(first(x.to("npu:0")).to("npu:1")) - y.to("npu:1")) ** 2).mean()
        loss.backward()
        opt.step()
        ref_opt.zero_grad()
        ref_loss = ((reference(x) - y) ** 2).mean()
        ref_loss.backward()
        ref_opt.step()
        assert abs(loss.item() - ref_loss.item()) <= 1e-5 * max(1.0, ref_loss.item())
    assert first[0].weight.device.index == 0 and second[0].weight.device.index == 1
    torch.testing.assert_close(second[0].weight.cpu(), reference[1][0].weight, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(first[0].weight.cpu(), reference[0][0].weight, rtol=1e-5, atol=1e-5)
