"""transfer_to_npu: a training script written for CUDA (.cuda(), torch.cuda.amp, GradScaler,
torch.cuda.synchronize, events, memory stats, checkpoints) runs unchanged on the npu, enabled by
the import or by TORCH_TRANSFER_TO_NPU=1 (with no torch_npu import in the script at all)."""
import textwrap

import pytest

from conftest import run_python

CUDA_SCRIPT = """
import io
import torch
import torch.nn as nn
import torch.nn.functional as F

assert torch.cuda.is_available()
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.manual_seed(0)
torch.cuda.manual_seed_all(0)

model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).cuda()
opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
scaler = torch.cuda.amp.GradScaler(init_scale=1024.0)
g = torch.Generator(device="cuda")
g.manual_seed(1)
assert isinstance(g, torch.Generator) and g.device.type == "npu"
x = torch.randn(64, 16, device=device)
y = torch.randint(0, 4, (64,), device="cuda:0")
x, y = x.cuda(non_blocking=True), y.to("cuda")

start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
start.record()
losses = []
for step in range(20):
    opt.zero_grad(set_to_none=True)
    with torch.cuda.amp.autocast():
        out = model(x)
        assert out.dtype == torch.float16
        loss = F.cross_entropy(out, y)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    losses.append(loss.item())
end.record()
torch.cuda.synchronize()
assert start.elapsed_time(end) > 0
assert losses[-1] < 0.7 * losses[0], losses

p = next(model.parameters())
assert p.is_cuda and p.device == torch.device("npu", 0)
assert torch.cuda.memory_allocated() > 0
assert torch.cuda.max_memory_allocated() >= torch.cuda.memory_allocated()
assert "Memory" in torch.cuda.memory_summary() or "memory" in torch.cuda.memory_summary()
torch.cuda.reset_peak_memory_stats()
torch.cuda.empty_cache()

buf = io.BytesIO()
torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "scaler": scaler.state_dict()}, buf)
for where in ("cuda:0", torch.device("cuda"), {"npu:0": "cuda:0"}, None):
    buf.seek(0)
    ckpt = torch.load(buf, map_location=where)
    assert ckpt["model"]["0.weight"].device.type == "npu", where
model.load_state_dict(ckpt["model"])
buf.seek(0)
assert torch.load(buf, map_location="cpu")["model"]["0.weight"].device.type == "cpu"

with torch.autocast("cuda", dtype=torch.bfloat16):
    assert (x @ x.t()).dtype == torch.bfloat16
    assert torch.is_autocast_enabled("cuda")
assert torch.amp.GradScaler("cuda").get_scale() == 65536.0
a = torch.ones(2).cuda()
assert a.new_zeros(3).device.type == "npu" and torch.zeros(2).to(0).device.type == "npu"
assert nn.Linear(2, 2).to("cuda:0").weight.device == torch.device("npu", 0)
with torch.cuda.device(0):
    assert torch.cuda.current_device() == 0
s = torch.cuda.Stream()
with torch.cuda.stream(s):
    w = a * 2
torch.cuda.current_stream().wait_stream(s)
assert w.cpu().tolist() == [2.0, 2.0]
e = torch.Event(device="cuda")
e.record()
e.synchronize()
with torch.device("cuda"):
    assert torch.empty(1).device.type == "npu"
print("OK", torch.cuda.get_device_name(0), torch.cuda.device_count())
"""


@pytest.mark.parametrize("how", ["import", "env"])
def test_cuda_script_runs_unchanged(how):
    head = "from torch_npu.contrib import transfer_to_npu\n" if how == "import" else ""
    env = {"TORCH_TRANSFER_TO_NPU": "1"} if how == "env" else {}
    out = run_python(head + textwrap.dedent(CUDA_SCRIPT), env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK Ascend910B1" in out.stdout


def test_nccl_becomes_hccl():
    out = run_python("""
        import torch, torch.distributed as dist
        from torch_npu.contrib import transfer_to_npu
        seen = {}
        def fake(backend=None, **kwargs):
            seen["backend"] = backend
            seen["device_id"] = kwargs.get("device_id")
        import torch_npu.contrib.transfer_to_npu as t
        wrapped = t._translating(t._backend_to_hccl(fake))
        wrapped(backend="nccl", device_id=torch.device("cuda", 1))
        assert seen == {"backend": "hccl", "device_id": torch.device("npu", 1)}, seen
        wrapped("cpu:gloo,cuda:nccl")
        assert seen["backend"] == "cpu:gloo,npu:hccl", seen
        print("OK")
    """)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-2000:]


def test_checkpoint_saved_on_cuda_loads_onto_the_npu():
    out = run_python("""
        import io, torch, torch.serialization as ser
        from torch_npu.contrib import transfer_to_npu
        buf = io.BytesIO()
        real_tag = ser.location_tag
        ser.location_tag = lambda storage: "cuda:0"  # as if saved on a CUDA machine
        try:
            torch.save({"w": torch.arange(4.0)}, buf)
        finally:
            ser.location_tag = real_tag
        buf.seek(0)
        w = torch.load(buf)["w"]
        assert w.device.type == "npu" and w.cpu().tolist() == [0.0, 1.0, 2.0, 3.0], w
        print("OK")
    """)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-2000:]
