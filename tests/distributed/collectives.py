"""Run by tests/test_distributed.py under torchrun (2 ranks): every collective of the hccl backend
on npu tensors, checked against its definition; asynchronous completion; dtypes Gloo cannot
reduce moved as bytes; 0-dim, empty, strided and private-format tensors."""
import time

import torch
import torch.distributed as dist

import torch_npu

dist.init_process_group("hccl")
r, w = dist.get_rank(), dist.get_world_size()
torch.npu.set_device(r)
dev = torch.device("npu", r)
x = torch.full((4,), float(r + 1), device=dev)
dist.all_reduce(x); assert x.cpu().tolist() == [3.0] * 4, x
y = torch.full((3,), float(r + 1), device=dev); dist.all_reduce(y, op=dist.ReduceOp.AVG); assert y.cpu().tolist() == [1.5] * 3, y
z = torch.full((2,), float(r + 1), device=dev); dist.all_reduce(z, op=dist.ReduceOp.MAX); assert z.cpu().tolist() == [2.0] * 2
p = torch.full((2,), float(r + 1), device=dev); dist.all_reduce(p, op=dist._make_nccl_premul_sum(2.0)); assert p.cpu().tolist() == [6.0] * 2, p
b = torch.arange(5.0, device=dev) * (r + 1); dist.broadcast(b, src=1); assert b.cpu().tolist() == [0, 2, 4, 6, 8], b
outs = [torch.empty(2, device=dev) for _ in range(w)]; dist.all_gather(outs, torch.full((2,), float(r), device=dev))
assert [o.cpu().tolist() for o in outs] == [[0, 0], [1, 1]]
big = torch.empty(4, device=dev); dist.all_gather_into_tensor(big, torch.full((2,), float(r), device=dev)); assert big.cpu().tolist() == [0, 0, 1, 1]
rs = torch.empty(2, device=dev); dist.reduce_scatter_tensor(rs, torch.arange(4.0, device=dev) + r); assert rs.cpu().tolist() == ([1.0, 3.0] if r == 0 else [5.0, 7.0]), rs
a2a = torch.empty(4, device=dev); dist.all_to_all_single(a2a, torch.arange(4.0, device=dev) + 10 * r); assert a2a.cpu().tolist() == ([0, 1, 10, 11] if r == 0 else [2, 3, 12, 13]), a2a
if r == 0:
    dist.send(torch.arange(3.0, device=dev), 1)
else:
    got = torch.empty(3, device=dev); dist.recv(got, 0); assert got.cpu().tolist() == [0, 1, 2]
prod = torch.full((2,), float(r + 2), device=dev); dist.all_reduce(prod, op=dist.ReduceOp.PRODUCT); assert prod.cpu().tolist() == [6.0] * 2
mn = torch.full((2,), float(r + 2), device=dev); dist.all_reduce(mn, op=dist.ReduceOp.MIN); assert mn.cpu().tolist() == [2.0] * 2
half = torch.full((8,), 0.5 * (r + 1), device=dev, dtype=torch.bfloat16); dist.all_reduce(half); assert half.cpu().float().tolist() == [1.5] * 8
strided = torch.arange(6.0, device=dev).reshape(2, 3).t(); dist.all_reduce(strided)
assert torch.equal(strided.cpu(), (torch.arange(6.0).reshape(2, 3).t() * 2))
red = torch.full((2,), float(r + 1), device=dev); dist.reduce(red, dst=0); assert red.cpu().tolist() == ([3.0, 3.0] if r == 0 else [2.0, 2.0])
gl = [torch.empty(2, device=dev) for _ in range(w)] if r == 1 else None
dist.gather(torch.full((2,), float(r), device=dev), gl, dst=1)
if r == 1:
    assert [t.cpu().tolist() for t in gl] == [[0, 0], [1, 1]]
sc = torch.empty(2, device=dev)
dist.scatter(sc, [torch.full((2,), 7.0 + i, device=dev) for i in range(w)] if r == 0 else None, src=0)
assert sc.cpu().tolist() == [7.0 + r] * 2
lists = [torch.empty(2, device=dev) for _ in range(w)]
dist.reduce_scatter(lists[0], [torch.full((2,), float(i + r), device=dev) for i in range(w)])
assert lists[0].cpu().tolist() == [2.0 * r + 1] * 2
a2a_out = [torch.empty(1, device=dev) for _ in range(w)]
dist.all_to_all(a2a_out, [torch.full((1,), float(10 * r + i), device=dev) for i in range(w)])
assert [t.item() for t in a2a_out] == [float(10 * i + r) for i in range(w)]
ops = [dist.P2POp(dist.isend, torch.full((2,), float(r), device=dev), 1 - r),
       dist.P2POp(dist.irecv, other := torch.empty(2, device=dev), 1 - r)]
for req in dist.batch_isend_irecv(ops):
    req.wait()
assert other.cpu().tolist() == [float(1 - r)] * 2
work = dist.all_reduce(done := torch.ones(2, device=dev), async_op=True)
work.wait()
assert done.cpu().tolist() == [2.0, 2.0]
# asynchronous: the call returns while rank 1 is not there yet; wait() then orders this stream
# after the collective, which read a value still being computed when it was called
if r == 1:
    time.sleep(1)
src = torch.ones(1 << 16, device=dev) * (r + 1)
work = dist.all_reduce(src, async_op=True)
assert r == 1 or not work.is_completed()
work.wait()
assert work.is_completed() and work.is_success()
assert (src + 1).cpu().unique().tolist() == [4.0]
# any dtype moves (as bytes); 0-dim and empty tensors reduce
for dtype in (torch.int16, torch.complex64):
    moved = torch.full((3,), 2 + r, device=dev).to(dtype)
    dist.broadcast(moved, src=1)
    assert torch.equal(moved.cpu(), torch.full((3,), 3).to(dtype)), (dtype, moved)
outs16 = [torch.empty(2, dtype=torch.int16, device=dev) for _ in range(w)]
dist.all_gather(outs16, torch.full((2,), r, dtype=torch.int16, device=dev))
assert [o.cpu().tolist() for o in outs16] == [[0, 0], [1, 1]]
scalar = torch.tensor(r + 1.0, device=dev); dist.all_reduce(scalar); assert scalar.item() == 3.0
empty = torch.empty(0, 3, device=dev); dist.all_reduce(empty); assert empty.shape == (0, 3)
# strided outputs and private formats go through dense copies, written back
grid = torch.zeros(2, 4, device=dev)
dist.all_gather([grid[:, 0], grid[:, 2]], torch.full((2,), float(r + 1), device=dev))
assert grid.cpu().tolist() == [[1, 0, 2, 0]] * 2, grid
stacked = torch.empty(3, device=dev)  # reduce_scatter_tensor's stacked form: [W, n] -> [n]
dist.reduce_scatter_tensor(stacked, torch.arange(6.0, device=dev).reshape(w, 3) + r)
assert stacked.cpu().tolist() == ([1.0, 3.0, 5.0] if r == 0 else [7.0, 9.0, 11.0]), stacked
uneven_in = torch.arange(3.0, device=dev) + 10 * r  # rank 0 sends 1 row to 0 and 2 to 1; rank 1 2 and 1
uneven_out = torch.empty(3, device=dev)
dist.all_to_all_single(uneven_out, uneven_in, output_split_sizes=[1, 2] if r == 0 else [2, 1],
                       input_split_sizes=[1, 2] if r == 0 else [2, 1])
assert uneven_out.cpu().tolist() == ([0.0, 10.0, 11.0] if r == 0 else [1.0, 2.0, 12.0]), uneven_out
host_grid = torch.full((3, 2), float(r))  # CPU tensors too, strided ones through copies
dist.broadcast(host_grid[:, 0], src=1)
assert host_grid.tolist() == [[1.0, float(r)]] * 3, host_grid
torch.npu.config.allow_internal_format = True
nc1hwc0 = torch_npu.npu_format_cast(torch.full((1, 3, 2, 2), float(r + 1), device=dev), 3)
dist.all_reduce(nc1hwc0)
assert torch_npu.get_npu_format(nc1hwc0) == 3 and nc1hwc0.cpu().unique().tolist() == [3.0]
torch.npu.config.allow_internal_format = False
obj = [None]
dist.broadcast_object_list(obj if r else [{"from": 0}], src=0)
assert r == 0 or obj[0] == {"from": 0}
dist.barrier()
print(f"collectives OK {r}", flush=True)
dist.destroy_process_group()
