"""The caching allocator through torch.npu's memory API."""
import gc

import pytest
import torch

import torch_npu

from conftest import run_python

MiB = 1 << 20


def test_stats_return_to_start_after_free():
    gc.collect()
    torch.npu.synchronize()
    start = torch.npu.memory_allocated()
    a = torch.empty(MiB, device="npu")  # 4 MiB: large pool
    b = torch.empty(100, device="npu")  # small pool
    assert torch.npu.memory_allocated() == start + 4 * MiB + 512
    assert torch.npu.max_memory_allocated() >= start + 4 * MiB + 512
    assert torch.npu.memory_reserved() >= torch.npu.memory_allocated()
    stats = torch.npu.memory_stats()
    assert stats["allocation.all.current"] >= 2
    assert stats["allocated_bytes.small_pool.current"] >= 512
    del a, b
    gc.collect()
    assert torch.npu.memory_allocated() == start
    nested = torch.npu.memory_stats_as_nested_dict()
    assert nested["allocated_bytes"]["all"]["current"] == start


def test_peak_reset_and_empty_cache():
    x = torch.empty(8 * MiB, device="npu")
    del x
    peak = torch.npu.max_memory_allocated()
    assert peak >= 32 * MiB
    torch.npu.reset_peak_memory_stats()
    assert torch.npu.max_memory_allocated() < peak
    torch.npu.reset_accumulated_memory_stats()
    assert torch.npu.memory_stats()["allocation.all.allocated"] == 0
    torch.npu.empty_cache()
    assert torch.npu.memory_reserved() - torch.npu.memory_allocated() < 20 * MiB


def test_cached_block_is_reused():
    x = torch.empty(MiB, device="npu")
    ptr = x.data_ptr()
    del x
    y = torch.empty(MiB, device="npu")
    assert y.data_ptr() == ptr


def test_memory_summary_and_snapshot():
    x = torch.ones(1000, device="npu")
    summary = torch.npu.memory_summary()
    assert "Allocated memory" in summary and "NPU reserved memory" in summary
    assert "Cur Usage" in summary and "Peak Usage" in summary
    assert len(summary.splitlines()) > 20
    snap = torch.npu.memory_snapshot()
    assert any(b["state"] == "active_allocated" for seg in snap for b in seg["blocks"])
    assert all({"address", "total_size", "segment_type", "blocks"} <= seg.keys() for seg in snap)
    del x


def test_caching_allocator_alloc_delete():
    before = torch.npu.memory_allocated()
    ptr = torch.npu.caching_allocator_alloc(4096)
    assert ptr != 0 and torch.npu.memory_allocated() == before + 4096
    torch.npu.caching_allocator_delete(ptr)
    assert torch.npu.memory_allocated() == before
    ptr = torch.npu.caching_allocator_alloc(1024, device=1, stream=torch.npu.current_stream(1))
    torch.npu.caching_allocator_delete(ptr)


def test_per_device_stats_are_separate():
    a = torch.empty(MiB, device="npu:3")
    assert torch.npu.memory_allocated(3) >= 4 * MiB
    assert torch.npu.memory_allocated("npu:4") == 0
    del a


def test_out_of_memory_then_recovery():
    r = run_python("""
        import torch, torch_npu
        keep = torch.empty(96 << 20, dtype=torch.uint8, device='npu')
        try:
            torch.empty(200 << 20, dtype=torch.uint8, device='npu')
        except torch.OutOfMemoryError as e:
            assert isinstance(e, torch.npu.OutOfMemoryError)
            print('OOM', 'NPU out of memory' in str(e), 'Tried to allocate' in str(e))
        s = torch.npu.memory_stats()
        print('ooms', s['num_ooms'])
        del keep
        ok = torch.ones(150 << 20, dtype=torch.uint8, device='npu')
        print('after', int(ok[-1].item()))
    """, env={"TORCH_NPU_SIM_MEMORY": "256MiB"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["OOM", "True", "True", "ooms", "1", "after", "1"]


def test_memory_fraction_limits_allocations():
    r = run_python("""
        import torch, torch_npu
        torch.npu.set_per_process_memory_fraction(0.25)
        try:
            torch.empty(100 << 20, dtype=torch.uint8, device='npu')
            print('allocated')
        except torch.OutOfMemoryError:
            print('oom')
        torch.npu.set_per_process_memory_fraction(1.0)
        torch.empty(100 << 20, dtype=torch.uint8, device='npu')
        print('ok')
    """, env={"TORCH_NPU_SIM_MEMORY": "256MiB"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["oom", "ok"]
    with pytest.raises(TypeError):
        torch.npu.set_per_process_memory_fraction(1)
    with pytest.raises(ValueError):
        torch.npu.set_per_process_memory_fraction(1.5)
