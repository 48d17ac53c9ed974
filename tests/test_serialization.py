"""torch.save / torch.load of npu tensors and modules, with map_location."""
import io

import torch

import torch_npu


def roundtrip(obj, **kw):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, **kw)


def test_save_load_npu_tensor():
    t = torch.arange(10.0, device="npu:1")
    back = roundtrip(t)
    assert back.device == torch.device("npu:1") and torch.equal(back.cpu(), t.cpu())
    cpu = roundtrip(t, map_location="cpu")
    assert cpu.device.type == "cpu" and torch.equal(cpu, t.cpu())
    moved = roundtrip(t, map_location="npu:0")
    assert moved.device == torch.device("npu:0")
    to_npu = roundtrip(torch.arange(3), map_location="npu")
    assert to_npu.device.type == "npu"


def test_save_load_views_share_storage():
    base = torch.arange(12.0, device="npu")
    a, b = base[:6], base[6:].view(2, 3)
    la, lb = roundtrip((a, b))
    assert la.untyped_storage().data_ptr() == lb.untyped_storage().data_ptr()
    assert torch.equal(lb.cpu(), b.cpu())


def test_state_dict_roundtrip():
    m = torch.nn.Linear(4, 3).npu()
    sd = roundtrip(m.state_dict())
    assert all(v.is_npu for v in sd.values())
    m2 = torch.nn.Linear(4, 3).npu()
    m2.load_state_dict(sd)
    assert torch.equal(m2.weight.cpu(), m.weight.cpu())
