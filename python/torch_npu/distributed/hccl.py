"""The ``hccl`` backend: ``init_process_group("hccl")`` for npu tensors, on PyTorch's Gloo
(transport, TCPStore / env:// rendezvous), so it runs across machines with ``torchrun``
exactly as Gloo does on CPU clusters.

Each collective stages its npu tensors through host memory: the inputs are read after the work
queued on the current stream (``Tensor.cpu()`` orders the read), Gloo runs on the host copies,
and the results are written back on the current stream. The collective has completed when the
call returns, so ``wait()`` on its work object has nothing left to order. Reduce ops Gloo lacks
are composed: AVG is SUM / world size, PREMUL_SUM scales the inputs first. Ranks that pass
tensors of different sizes get an error on every rank (Gloo itself would abort the process);
a rank that dies makes the others raise (Gloo's connection errors, or the group's timeout)."""
import threading

import torch
import torch.distributed as dist
import torch._C._distributed_c10d as c10d
from torch._C._distributed_c10d import _create_work_from_future
from torch.futures import Future

__all__ = ["ProcessGroupHCCL", "is_hccl_available"]

RedOpType = dist.ReduceOp.RedOpType


def is_hccl_available() -> bool:
    return True


def _host(t):
    """A host copy of an npu tensor (after its queued writes); CPU tensors as they are (Gloo
    works on them in place, and _write_back skips them)."""
    return t.cpu() if t.device.type == "npu" else t


def _host_list(ts):
    return [_host(t) for t in ts]


def _write_back(dst, src):
    for d, s in zip(dst, src):
        if d is not s:
            d.copy_(s)


def _in_background(gloo_work, finish):
    """A work object completed by a helper thread once Gloo's work is done and ``finish()``
    (writing results back) has run: point-to-point transfers must not block the caller, or two
    ranks sending to each other first would wait for each other."""
    fut = Future()

    def run():
        try:
            gloo_work.wait()
            fut.set_result(finish())
        except Exception as e:  # the waiter sees it
            fut.set_exception(e)

    threading.Thread(target=run, daemon=True, name="hccl-p2p").start()
    return _create_work_from_future(fut)


_DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.uint8, torch.int16,
           torch.int32, torch.int64, torch.bool, torch.complex64, torch.complex128]


def _describe(tensors):
    """(elements, dtype code) of a rank's side of a collective."""
    dtype = tensors[0].dtype if tensors else torch.float32
    code = _DTYPES.index(dtype) if dtype in _DTYPES else len(_DTYPES)
    return [sum(t.numel() for t in tensors), code]


def _done(result):
    fut = Future()
    fut.set_result(result)
    return _create_work_from_future(fut)


class ProcessGroupHCCL(dist.ProcessGroup):
    """The process group ``init_process_group("hccl")`` creates."""

    def __init__(self, store, rank, size, timeout):
        super().__init__(rank, size)
        self._gloo = dist.ProcessGroupGloo(store, rank, size, timeout)
        self._timeout = timeout
        self._name = ""

    def getBackendName(self):
        return "hccl"

    # c10d names a group through its backends; this group has none of its own, so it keeps
    # the name itself (DeviceMesh and FSDP look groups up by name).
    def _set_group_name(self, name):
        self._name = name

    @property
    def group_name(self):
        return self._name

    def _agree(self, op, tensors):
        """Gloo aborts the process when ranks disagree on a collective's sizes: compare them first
        (a small all_gather), and raise on every rank, naming each rank's side."""
        mine = torch.tensor(_describe(tensors), dtype=torch.int64)
        every = [torch.empty(2, dtype=torch.int64) for _ in range(self.size())]
        self._gloo.allgather([every], [mine]).wait()
        if any(not torch.equal(e, every[0]) for e in every):
            sides = ", ".join(f"rank {i}: {int(e[0])} elements of "
                              f"{_DTYPES[int(e[1])] if int(e[1]) < len(_DTYPES) else 'another dtype'}"
                              for i, e in enumerate(every))
            raise RuntimeError(f"hccl {op}: the ranks passed tensors that do not match ({sides})")

    # ---- reductions ----
    def _reduce_opts(self, opts, cls, host):
        """Gloo's options for opts.reduceOp; scales the host tensors for PREMUL_SUM. Returns
        (options, whether to divide the result by the world size)."""
        op = opts.reduceOp
        kind = op.op if hasattr(op, "op") else op
        new = cls()
        for name in ("rootRank", "rootTensor", "timeout"):
            if hasattr(opts, name):
                setattr(new, name, getattr(opts, name))
        average = False
        if kind == RedOpType.AVG:
            new.reduceOp, average = dist.ReduceOp.SUM, True
        elif kind == RedOpType.PREMUL_SUM:
            factor = op.factor
            for t in host:
                t.mul_(factor.to(t.device) if isinstance(factor, torch.Tensor) else factor)
            new.reduceOp = dist.ReduceOp.SUM
        elif kind in (RedOpType.BAND, RedOpType.BOR, RedOpType.BXOR) and any(t.is_floating_point() for t in host):
            raise RuntimeError(f"hccl: {kind} is not defined for floating point tensors")
        else:
            new.reduceOp = op
        return new, average

    def _finish_reduce(self, host, average):
        if average:
            for t in host:
                if t.is_floating_point() or t.is_complex():
                    t.div_(self.size())
                else:
                    t.floor_divide_(self.size())

    def allreduce(self, tensors, opts=c10d.AllreduceOptions()):
        self._agree("all_reduce", tensors)
        host = _host_list(tensors)
        gopts, average = self._reduce_opts(opts, c10d.AllreduceOptions, host)
        self._gloo.allreduce(host, gopts).wait()
        self._finish_reduce(host, average)
        _write_back(tensors, host)
        return _done(list(tensors))

    def allreduce_coalesced(self, tensors, opts=c10d.AllreduceCoalescedOptions()):
        for t in tensors:
            plain = c10d.AllreduceOptions()
            plain.reduceOp = opts.reduceOp
            self.allreduce([t], plain)
        return _done(list(tensors))

    def reduce(self, tensors, opts=c10d.ReduceOptions()):
        self._agree("reduce", tensors)
        host = _host_list(tensors)
        gopts, average = self._reduce_opts(opts, c10d.ReduceOptions, host)
        self._gloo.reduce(host, gopts).wait()
        if self.rank() == opts.rootRank:
            self._finish_reduce(host, average)
            _write_back(tensors, host)
        return _done(list(tensors))

    def reduce_scatter(self, outputs, inputs, opts=c10d.ReduceScatterOptions()):
        # Gloo's reduce_scatter is the allreduce of each chunk, keeping this rank's
        for out, chunks in zip(outputs, inputs):
            stacked = torch.stack([c.to(out.device) for c in chunks])
            plain = c10d.AllreduceOptions()
            plain.reduceOp = opts.reduceOp
            self.allreduce([stacked], plain)
            out.copy_(stacked[self.rank()])
        return _done(list(outputs))

    def reduce_scatter_single(self, output, input, opts=c10d.ReduceScatterOptions()):
        return self.reduce_scatter([output], [list(input.chunk(self.size()))], opts)

    def reduce_scatter_tensor_coalesced(self, outputs, inputs, opts=c10d.ReduceScatterOptions()):
        for out, inp in zip(outputs, inputs):
            self.reduce_scatter_single(out, inp, opts)
        return _done(list(outputs))

    # ---- data movement ----
    def broadcast(self, tensors, opts=c10d.BroadcastOptions()):
        self._agree("broadcast", tensors)
        host = _host_list(tensors)
        self._gloo.broadcast(host, opts).wait()
        _write_back(tensors, host)
        return _done(list(tensors))

    def allgather(self, outputs, inputs, opts=c10d.AllgatherOptions()):
        self._agree("all_gather", inputs)
        host_out = [[torch.empty_like(t, device="cpu") for t in out] for out in outputs]
        self._gloo.allgather(host_out, _host_list(inputs), opts).wait()
        for dst, src in zip(outputs, host_out):
            _write_back(dst, src)
        return _done(outputs)

    def all_gather_single(self, output, input, opts=c10d.AllgatherOptions()):
        chunks = list(output.chunk(self.size()))
        self.allgather([chunks], [input], opts)
        return _done([output])

    def allgather_coalesced(self, outputs, inputs, opts=c10d.AllgatherOptions()):
        for out, inp in zip(outputs, inputs):
            self.allgather([out], [inp], opts)
        return _done(outputs)

    def allgather_into_tensor_coalesced(self, outputs, inputs, opts=c10d.AllgatherOptions()):
        for out, inp in zip(outputs, inputs):
            self.all_gather_single(out, inp, opts)
        return _done(list(outputs))

    def gather(self, outputs, inputs, opts=c10d.GatherOptions()):
        self._agree("gather", inputs)
        root = self.rank() == opts.rootRank
        host_out = [[torch.empty_like(t, device="cpu") for t in out] for out in outputs] if root else []
        self._gloo.gather(host_out, _host_list(inputs), opts).wait()
        if root:
            for dst, src in zip(outputs, host_out):
                _write_back(dst, src)
        return _done(outputs)

    def scatter(self, outputs, inputs, opts=c10d.ScatterOptions()):
        self._agree("scatter", outputs)
        host_out = [torch.empty_like(t, device="cpu") for t in outputs]
        host_in = [_host_list(chunks) for chunks in inputs] if self.rank() == opts.rootRank else []
        self._gloo.scatter(host_out, host_in, opts).wait()
        _write_back(outputs, host_out)
        return _done(list(outputs))

    def alltoall(self, outputs, inputs, opts=c10d.AllToAllOptions()):
        self._agree("all_to_all", inputs)
        host_out = [torch.empty_like(t, device="cpu") for t in outputs]
        self._gloo.alltoall(host_out, _host_list(inputs), opts).wait()
        _write_back(outputs, host_out)
        return _done(list(outputs))

    def all_to_all_single(self, output, input, output_split_sizes, input_split_sizes, opts=c10d.AllToAllOptions()):
        host_out = torch.empty_like(output, device="cpu")
        self._gloo.alltoall_base(host_out, _host(input), list(output_split_sizes or []),
                                 list(input_split_sizes or []), opts).wait()
        output.copy_(host_out)
        return _done([output])

    def send(self, tensors, dst, tag):
        host = _host_list(tensors)
        return _in_background(self._gloo.send(host, dst, tag), lambda: list(tensors))

    def recv(self, tensors, src, tag):
        host = [torch.empty_like(t, device="cpu") for t in tensors]
        return _in_background(self._gloo.recv(host, src, tag), lambda: (_write_back(tensors, host), list(tensors))[1])

    def recv_anysource(self, tensors, tag):
        host = [torch.empty_like(t, device="cpu") for t in tensors]
        return _in_background(self._gloo.recv_anysource(host, tag),
                              lambda: (_write_back(tensors, host), list(tensors))[1])

    def _get_backend(self, device):
        # batch_isend_irecv asks the device's backend whether it coalesces: Gloo does not.
        return self._gloo

    def barrier(self, opts=c10d.BarrierOptions()):
        self._gloo.barrier().wait()
        return _done([])


def _create(store, rank, size, timeout):
    return ProcessGroupHCCL(store, rank, size, timeout)


dist.Backend.register_backend("hccl", _create, devices=["npu"])
dist.is_hccl_available = is_hccl_available
