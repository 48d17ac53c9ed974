"""npu storages carry the NPU storage descriptor (format ND for plain tensors)."""
import torch

import torch_npu


def test_new_tensors_are_nd():
    assert torch_npu.get_npu_format(torch.empty(2, 3, device="npu")) == 2
    assert torch_npu.get_npu_format(torch.randn(4, device="npu").t()) == 2
    assert torch_npu.get_npu_format(torch.empty_strided((2, 2), (1, 2), device="npu")) == 2


def test_storage_created_from_python_is_npu_storage():
    s = torch.UntypedStorage(64, device="npu")
    assert s.device.type == "npu" and s.nbytes() == 64
    t = torch.empty(0, device="npu").set_(s, 0, (16,), (1,))
    t.fill_(1.0)
    assert torch_npu.get_npu_format(t) == 2 and t.cpu().sum().item() == 16


def test_storage_of_other_device_is_rejected():
    import pytest
    with pytest.raises(RuntimeError, match="npu tensor"):
        torch_npu.get_npu_format(torch.empty(2))
