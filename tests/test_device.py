"""torch.npu device management against torch.cuda's documented behaviour."""
import pytest
import torch

import torch_npu

from conftest import run_python


def test_import_torch_alone_loads_the_plugin():
    r = run_python("""
        import torch
        x = torch.randn(2, 3, device='npu')
        print(x.device, type(torch.npu).__name__, (x * 2).cpu().shape)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:2] == ["npu:0", "module"]


def test_availability_and_count():
    assert torch.npu.is_available()
    assert torch.npu.device_count() == 8
    torch.npu.init()
    assert torch.npu.is_initialized()


def test_sim_devices_and_visible_devices():
    r = run_python(
        "import torch, torch_npu; print(torch.npu.device_count())",
        env={"TORCH_NPU_SIM_DEVICES": "4", "ASCEND_RT_VISIBLE_DEVICES": "3,1"},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "2"


def test_set_device_and_context():
    assert torch.npu.current_device() == 0
    torch.npu.set_device(1)
    assert torch.npu.current_device() == 1
    assert torch.empty(1, device="npu").device == torch.device("npu:1")
    torch.npu.set_device("npu:0")
    with torch.npu.device(2):
        assert torch.npu.current_device() == 2
        with torch.npu.device("npu:3"):
            assert torch.npu.current_device() == 3
        assert torch.npu.current_device() == 2
    assert torch.npu.current_device() == 0
    t = torch.empty(1, device="npu:5")
    with torch.npu.device_of(t):
        assert torch.npu.current_device() == 5
    with torch.npu.device_of(torch.empty(1)):
        assert torch.npu.current_device() == 0
    torch.npu.set_device(-1)  # ignored, as in torch.cuda
    assert torch.npu.current_device() == 0


def test_invalid_device_index_is_a_clear_error():
    with pytest.raises(RuntimeError, match="[Ii]nvalid device"):
        torch.npu.set_device(8)
    with pytest.raises(RuntimeError, match="[Ii]nvalid device"):
        torch.empty(3, device="npu:9")
    with pytest.raises(RuntimeError, match="[Ii]nvalid device"):
        torch.ones(2).to("npu:12")
    with pytest.raises(RuntimeError):
        torch.npu.get_device_properties(99)
    assert torch.npu.current_device() == 0
    assert (torch.ones(2, device="npu") + 1).sum().item() == 4


def test_properties():
    p = torch.npu.get_device_properties(0)
    assert p.name == "Ascend910B1" == torch.npu.get_device_name()
    assert p.total_memory > 0
    assert "Ascend910B1" in repr(p)
    assert torch.npu.get_device_capability() is None
    free, total = torch.npu.mem_get_info()
    assert total == p.total_memory and 0 < free <= total
    assert torch.npu.can_device_access_peer(0, 1)
    assert not torch.npu.can_device_access_peer(0, 0)


def test_soc_and_memory_env():
    r = run_python(
        "import torch, torch_npu; p = torch.npu.get_device_properties(); print(p.name, p.total_memory)",
        env={"TORCH_NPU_SIM_SOC": "Ascend910B3", "TORCH_NPU_SIM_MEMORY": "2GiB"},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["Ascend910B3", str(2 << 30)]


def test_accelerator_api():
    assert torch.accelerator.is_available()
    assert torch.accelerator.current_accelerator() == torch.device("npu")
    assert torch.accelerator.device_count() == 8
    torch.accelerator.set_device_index(1)
    assert torch.npu.current_device() == 1
    torch.accelerator.set_device_index(0)
    x = torch.ones(1024, device="npu")
    assert torch.accelerator.memory_allocated() >= 4096
    torch.accelerator.synchronize()
    del x


def test_tensor_module_and_storage_methods():
    t = torch.arange(6.0).reshape(2, 3)
    n = t.npu()
    assert n.is_npu and not t.is_npu
    assert n.device == torch.device("npu:0")
    assert t.npu(1).device == torch.device("npu:1")
    assert torch.equal(n.cpu(), t)
    m = torch.nn.Linear(3, 2).npu()
    assert all(p.is_npu for p in m.parameters())
    s = n.untyped_storage()
    assert s.is_npu and s.device.type == "npu"
    assert torch.UntypedStorage(8).npu().is_npu


def test_device_capability_from_environment(monkeypatch):
    monkeypatch.setenv("TORCH_NPU_DEVICE_CAPABILITY", "8.0")
    assert torch.npu.get_device_capability(0) == (8, 0)
    monkeypatch.setenv("TORCH_NPU_DEVICE_CAPABILITY", "eight")
    with pytest.warns(UserWarning, match="TORCH_NPU_DEVICE_CAPABILITY"):
        assert torch.npu.get_device_capability() is None


def test_torch_version_mismatch_is_a_clear_import_error():
    r = run_python("""
        import torch
        torch.__version__ = "2.99.0"
        try:
            import torch_npu
        except ImportError as e:
            print("ImportError", "rebuild" in str(e), "2.99.0" in str(e))
    """, env={"TORCH_DEVICE_BACKEND_AUTOLOAD": "0"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["ImportError", "True", "True"]
