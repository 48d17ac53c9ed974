"""Run by tests/test_distributed.py under torchrun (2 ranks) as `train_tinygpt.py ddp|fsdp`: TinyGPT
trains on npu:0 and npu:1 over hccl, wrapped in DDP or sharded with FSDP2 (fully_shard per
block and at the root), each rank on half of every batch, and ends with the parameters of one
process training on the whole batches (within 1e-4), with SGD and momentum."""
import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard

import torch_npu  # noqa: F401

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))
from models import TinyGPT  # noqa: E402

mode = sys.argv[1]
dist.init_process_group("hccl")
r = dist.get_rank()
torch.npu.set_device(r)
torch.manual_seed(0)
model = TinyGPT()
ref = TinyGPT()
ref.load_state_dict(model.state_dict())
model = model.npu()
if mode == "ddp":
    wrapped = torch.nn.parallel.DistributedDataParallel(model, device_ids=[r])
else:
    for block in model.blocks:
        fully_shard(block)
    wrapped = fully_shard(model)
# SGD, not Adam: Adam's first steps move a weight by about lr whatever the size of its gradient, so
# an element whose gradient is near zero flips with rounding noise (CPU backends differ by machine)
opt = torch.optim.SGD(wrapped.parameters(), lr=0.1, momentum=0.9)
ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
g = torch.Generator().manual_seed(5)
for step in range(3):
    seq = (torch.randint(0, 128, (4, 1), generator=g) + torch.arange(33)) % 128
    x, y = seq[:, :-1], seq[:, 1:]
    opt.zero_grad()
    _, loss = wrapped(x[2 * r:2 * r + 2].npu(), y[2 * r:2 * r + 2].npu())
    loss.backward()
    opt.step()
    ref_opt.zero_grad()
    _, ref_loss = ref(x, y)
    ref_loss.backward()
    ref_opt.step()
for (name, p), q in zip(ref.named_parameters(), model.parameters()):
    full = q.full_tensor() if hasattr(q, "full_tensor") else q
    torch.testing.assert_close(full.detach().cpu(), p.detach(), rtol=1e-4, atol=1e-4, msg=lambda m: f"{name}: {m}")
print(f"{mode} OK {r}", flush=True)
dist.destroy_process_group()
