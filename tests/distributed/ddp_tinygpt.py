"""Run by tests/test_distributed.py under torchrun (2 ranks): DDP training of TinyGPT on
npu:0 and npu:1 over hccl, each rank on half of every batch, ends with the parameters of one
process training on the whole batches (within 1e-4)."""
import os
import sys

import torch
import torch.distributed as dist

import torch_npu  # noqa: F401
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))
from models import TinyGPT
dist.init_process_group("hccl")
r, w = dist.get_rank(), dist.get_world_size()
torch.npu.set_device(r)
torch.manual_seed(0)
model = TinyGPT()
ref = TinyGPT(); ref.load_state_dict(model.state_dict())
ddp = torch.nn.parallel.DistributedDataParallel(model.npu(), device_ids=[r])
opt = torch.optim.AdamW(ddp.parameters(), lr=3e-3)
ropt = torch.optim.AdamW(ref.parameters(), lr=3e-3)
g = torch.Generator().manual_seed(5)
for step in range(3):
    seq = (torch.randint(0, 128, (4, 1), generator=g) + torch.arange(33)) % 128
    x, y = seq[:, :-1], seq[:, 1:]
    opt.zero_grad()
    _, loss = ddp(x[2 * r:2 * r + 2].npu(), y[2 * r:2 * r + 2].npu())
    loss.backward(); opt.step()
    ropt.zero_grad(); _, rl = ref(x, y); rl.backward(); ropt.step()
for (n, p), q in zip(ref.named_parameters(), model.parameters()):
    torch.testing.assert_close(q.detach().cpu(), p.detach(), rtol=1e-4, atol=1e-4, msg=lambda m: f"{n}: {m}")
print(f"DDP OK {r}", flush=True)
dist.destroy_process_group()
