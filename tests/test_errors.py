"""Bad input gets a clear Python exception and the process goes on working."""
import pytest
import torch

import torch_npu

from conftest import run_python


def test_error_found_while_kernel_runs_is_reported_at_sync():
    p = torch.full((8,), 1.5, device="npu")  # invalid probabilities: found on the device
    t = torch.empty(8, device="npu")
    t.bernoulli_(p)  # returns at once: the kernel has not run yet
    with pytest.raises(RuntimeError, match="bernoulli"):
        torch.npu.synchronize()
    # Reported once; the device goes on working.
    torch.npu.synchronize()
    assert torch.ones(3, device="npu").sum().item() == 3


def test_async_error_reported_at_copy_to_host():
    t = torch.empty(8, device="npu")
    t.bernoulli_(torch.full((8,), -1.0, device="npu"))
    with pytest.raises(RuntimeError, match="bernoulli"):
        t.cpu()
    assert torch.zeros(2, device="npu").cpu().tolist() == [0.0, 0.0]


def test_unsupported_dtype():
    with pytest.raises((TypeError, RuntimeError, NotImplementedError)):
        torch.empty(3, dtype=torch.float8_e4m3fn, device="npu").fill_(1)
    assert torch.ones(2, device="npu").cpu().tolist() == [1.0, 1.0]


def test_bad_shapes_and_views():
    x = torch.ones(6, device="npu")
    with pytest.raises(RuntimeError):
        x.view(4)
    with pytest.raises(RuntimeError):
        torch.empty(-1, device="npu")
    with pytest.raises(RuntimeError):
        x.copy_(torch.ones(4))
    with pytest.raises(IndexError):
        x[7].item()
    assert x.sum().item() == 6


def test_pin_memory_on_npu_factory_is_an_error():
    with pytest.raises(RuntimeError, match="pin"):
        torch.empty(3, device="npu", pin_memory=True)


def test_no_crash_in_a_fresh_process_after_errors():
    r = run_python("""
        import torch, torch_npu
        for bad in (lambda: torch.empty(3, device='npu:100'),
                    lambda: torch.ones(3, device='npu') + torch.ones(3),
                    lambda: torch.empty(1 << 62, dtype=torch.uint8, device='npu')):
            try:
                bad()
            except Exception as e:
                print(type(e).__name__)
        print(torch.ones(2, device='npu').cpu().sum().item())
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["RuntimeError", "RuntimeError", "OutOfMemoryError", "2.0"]
