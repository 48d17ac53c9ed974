"""The ``hccl`` backend: ``init_process_group("hccl")`` for npu tensors, on PyTorch's Gloo
(transport, TCPStore / env:// rendezvous), so it runs across machines with ``torchrun``
exactly as Gloo does on CPU clusters.

Collectives are asynchronous, as NCCL's (see _work.py): a call queues the collective after the
work on the current stream and returns; ``wait()`` orders the current stream after it. Gloo works
on the npu tensors' memory in place where it can (_staging.py). Reduce ops Gloo lacks are
composed: AVG is SUM / world size, PREMUL_SUM scales the inputs first. Bad use fails on every rank
with an error naming the collective: ranks that pass tensors of different sizes or dtypes (Gloo
itself would abort the process), dtypes the backend cannot reduce, a rank that dies or stops
taking part (the others raise within the group's timeout or HCCL_EXEC_TIMEOUT; see _env.py)."""
import torch
import torch.distributed as dist
import torch._C._distributed_c10d as c10d

from . import _env
from ._staging import as_bytes, rows_as_bytes
from ._work import Pending, Worker

__all__ = ["ProcessGroupHCCL", "is_hccl_available"]

RedOpType = dist.ReduceOp.RedOpType

# The dtypes Gloo reduces (it moves any dtype, as bytes).
_REDUCIBLE = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.uint8,
              torch.int32, torch.int64, torch.bool]
_BITWISE = (RedOpType.BAND, RedOpType.BOR, RedOpType.BXOR)


def is_hccl_available() -> bool:
    return True


# Every dtype, in an order all ranks share (to compare dtypes across ranks by index).
_DTYPES = sorted({v for v in vars(torch).values() if isinstance(v, torch.dtype)}, key=str)


def _describe(tensors):
    """A rank's side of a collective: (elements, dtype index, tensors, a checksum of every
    tensor's dtype and size)."""
    check = 0
    for t in tensors:
        check = (check * 1000003 + t.numel() * 131 + _DTYPES.index(t.dtype)) % (1 << 61)
    dtype = _DTYPES.index(tensors[0].dtype) if tensors else -1
    return [sum(t.numel() for t in tensors), dtype, len(tensors), check]


def _flat(lists):
    return [t for ts in lists for t in ts]


class ProcessGroupHCCL(dist.ProcessGroup):
    """The process group ``init_process_group("hccl")`` creates."""

    def __init__(self, store, rank, size, timeout):
        super().__init__(rank, size)
        self._gloo = _env.gloo_group(store, rank, size, timeout)
        self._timeout = _env.exec_timeout(timeout)
        self._name = ""
        self._worker = Worker(f"rank{rank}")

    def getBackendName(self):
        return "hccl"

    # c10d names a group through its backends; this group has none of its own, so it keeps
    # the name itself (DeviceMesh and FSDP look groups up by name).
    def _set_group_name(self, name):
        self._name = name

    @property
    def group_name(self):
        return self._name

    def _get_backend(self, device):
        # batch_isend_irecv asks the device's backend whether it coalesces: Gloo does not.
        return self._gloo

    # ---- helpers (run on the worker) ----
    def _opts(self, cls, opts=None):
        """Gloo's options: the caller's root, and the backend's timeout."""
        new = cls()
        for name in ("rootRank", "rootTensor"):
            if opts is not None and hasattr(opts, name):
                setattr(new, name, getattr(opts, name))
        new.timeout = self._timeout
        return new

    def _agree(self, op, tensors):
        """Gloo aborts the process when ranks disagree on a collective's sizes: compare them first
        (a small all_gather), and raise on every rank, naming each rank's side."""
        every = self._gather_ints(_describe(tensors))
        if any(not torch.equal(e, every[0]) for e in every):
            sides = ", ".join(f"rank {i}: {int(n)} elements" + (f" of {_DTYPES[int(d)]}" if d >= 0 else "")
                              + (f" in {int(c)} tensors" if c > 1 else "") for i, (n, d, c, _) in enumerate(every))
            raise RuntimeError(f"hccl {op}: the ranks passed tensors that do not match ({sides})")

    def _gather_ints(self, values):
        """Every rank's ``values`` (a list of ints of a length all ranks share)."""
        mine = torch.tensor(values, dtype=torch.int64)
        every = [torch.empty_like(mine) for _ in range(self.size())]
        self._gloo.allgather([every], [mine], self._opts(c10d.AllgatherOptions)).wait()
        return every

    def _agree_exchange(self, op, dtype, sends, recvs):
        """For all-to-all: what each rank sends to each other rank (elements) must be what that
        rank expects from it, and the dtypes must match; Gloo would abort otherwise."""
        every = self._gather_ints([_DTYPES.index(dtype)] + list(sends) + list(recvs))
        w = self.size()
        if any(int(e[0]) != int(every[0][0]) for e in every):
            raise RuntimeError(f"hccl {op}: the ranks passed tensors of different dtypes ("
                               + ", ".join(f"rank {i}: {_DTYPES[int(e[0])]}" for i, e in enumerate(every)) + ")")
        for i in range(w):
            for j in range(w):
                sent, expected = int(every[i][1 + j]), int(every[j][1 + w + i])
                if sent != expected:
                    raise RuntimeError(f"hccl {op}: rank {i} sends {sent} elements to rank {j}, "
                                       f"which expects {expected}")

    def _check_reduce(self, op, opts, tensors):
        """Raises for a reduction the backend cannot do (after _agree, so on every rank alike)."""
        red = opts.reduceOp
        kind = red.op if hasattr(red, "op") else red
        for t in tensors:
            if t.dtype not in _REDUCIBLE:
                raise TypeError(f"hccl {op}: cannot reduce {t.dtype} tensors (it reduces "
                                f"{', '.join(str(d).replace('torch.', '') for d in _REDUCIBLE)})")
            if kind in _BITWISE and (t.is_floating_point() or t.is_complex()):
                raise TypeError(f"hccl {op}: {kind.name} is not defined for {t.dtype} tensors")
            if kind == RedOpType.AVG and t.dtype == torch.bool:
                raise TypeError(f"hccl {op}: AVG is not defined for torch.bool tensors")

    def _reduce_opts(self, opts, cls, host):
        """Gloo's options for opts.reduceOp, scaling the host tensors for PREMUL_SUM; and whether
        to divide the result by the world size (AVG)."""
        red = opts.reduceOp
        kind = red.op if hasattr(red, "op") else red
        new = self._opts(cls, opts)
        new.reduceOp = red
        if kind == RedOpType.AVG:
            new.reduceOp = dist.ReduceOp.SUM
        elif kind == RedOpType.PREMUL_SUM:
            factor = red.factor
            factor = factor.cpu() if isinstance(factor, torch.Tensor) else factor
            for t in host:
                t.mul_(factor)
            new.reduceOp = dist.ReduceOp.SUM
        return new, kind == RedOpType.AVG

    def _average(self, host):
        for t in host:
            if t.is_floating_point() or t.is_complex():
                t.div_(self.size())
            else:
                t.floor_divide_(self.size())

    def _submit(self, op, tensors, run):
        return self._worker.submit(op, tensors, run)

    # ---- reductions ----
    def allreduce(self, tensors, opts=c10d.AllreduceOptions()):

        def run(st):
            self._agree("all_reduce", tensors)
            self._check_reduce("all_reduce", opts, tensors)
            host = st.hosts(tensors)
            st.ready()
            gopts, average = self._reduce_opts(opts, c10d.AllreduceOptions, host)
            self._gloo.allreduce(host, gopts).wait()
            if average:
                self._average(host)
            return list(tensors)

        return self._submit("all_reduce", tensors, run)

    def allreduce_coalesced(self, tensors, opts=c10d.AllreduceCoalescedOptions()):

        def run(st):
            self._agree("all_reduce_coalesced", tensors)
            self._check_reduce("all_reduce_coalesced", opts, tensors)
            host = st.hosts(tensors)
            st.ready()
            for t in host:
                gopts, average = self._reduce_opts(opts, c10d.AllreduceOptions, [t])
                self._gloo.allreduce([t], gopts).wait()
                if average:
                    self._average([t])
            return list(tensors)

        return self._submit("all_reduce_coalesced", tensors, run)

    def reduce(self, tensors, opts=c10d.ReduceOptions()):
        root = self.rank() == opts.rootRank

        def run(st):
            self._agree("reduce", tensors)
            self._check_reduce("reduce", opts, tensors)
            host = st.hosts(tensors, write=root)
            st.ready()
            if not root:  # Gloo uses the non-roots' tensors as scratch space: reduce copies there
                host = [h.clone() for h in host]
            gopts, average = self._reduce_opts(opts, c10d.ReduceOptions, host)
            self._gloo.reduce(host, gopts).wait()
            if average and root:
                self._average(host)
            return list(tensors)

        return self._submit("reduce", tensors, run)

    def _reduce_scatter_one(self, st, out, chunks, opts):
        # flat: the chunks need only the output's number of elements (an input [W, n] scatters
        # to outputs [n], as with NCCL)
        host_out = st.host(out, read=False).reshape(-1)
        host_in = st.hosts(chunks, write=False)
        st.ready()
        host_in = [h.reshape(-1).clone() for h in host_in]  # Gloo reduces in place
        gopts, average = self._reduce_opts(opts, c10d.ReduceScatterOptions, host_in)
        self._gloo.reduce_scatter([host_out], [host_in], gopts).wait()
        if average:
            self._average([host_out])

    def reduce_scatter(self, outputs, inputs, opts=c10d.ReduceScatterOptions()):

        def run(st):
            self._agree("reduce_scatter", _flat(inputs))
            self._check_reduce("reduce_scatter", opts, _flat(inputs))
            for out, chunks in zip(outputs, inputs):
                self._reduce_scatter_one(st, out, chunks, opts)
            return list(outputs)

        return self._submit("reduce_scatter", list(outputs) + _flat(inputs), run)

    def reduce_scatter_single(self, output, input, opts=c10d.ReduceScatterOptions()):
        return self.reduce_scatter_tensor_coalesced([output], [input], opts)

    def reduce_scatter_tensor_coalesced(self, outputs, inputs, opts=c10d.ReduceScatterOptions()):

        def run(st):
            self._agree("reduce_scatter_tensor", inputs)
            self._check_reduce("reduce_scatter_tensor", opts, inputs)
            for out, inp in zip(outputs, inputs):
                self._reduce_scatter_one(st, out, list(inp.reshape(-1).chunk(self.size())), opts)
            return list(outputs)

        return self._submit("reduce_scatter_tensor", list(outputs) + list(inputs), run)

    # ---- data movement (as bytes: any dtype moves) ----
    def broadcast(self, tensors, opts=c10d.BroadcastOptions()):
        def run(st):
            self._agree("broadcast", tensors)
            host = st.bytes(tensors)
            st.ready()
            self._gloo.broadcast(host, self._opts(c10d.BroadcastOptions, opts)).wait()
            return list(tensors)

        return self._submit("broadcast", tensors, run)

    def allgather(self, outputs, inputs, opts=c10d.AllgatherOptions()):
        def run(st):
            self._agree("all_gather", inputs)
            host_in = st.bytes(inputs, write=False)
            host_out = [st.bytes(out, read=False) for out in outputs]
            st.ready()
            self._gloo.allgather(host_out, host_in, self._opts(c10d.AllgatherOptions)).wait()
            return outputs

        return self._submit("all_gather", _flat(outputs) + list(inputs), run)

    def all_gather_single(self, output, input, opts=c10d.AllgatherOptions()):
        return self.allgather_into_tensor_coalesced([output], [input], opts)

    def allgather_coalesced(self, outputs, inputs, opts=c10d.AllgatherOptions()):
        def run(st):
            self._agree("all_gather_coalesced", inputs)
            for out, inp in zip(outputs, inputs):
                host_in = as_bytes(st.host(inp, write=False))
                host_out = st.bytes(out, read=False)
                st.ready()
                self._gloo.allgather([host_out], [host_in], self._opts(c10d.AllgatherOptions)).wait()
            return outputs

        return self._submit("all_gather_coalesced", _flat(outputs) + list(inputs), run)

    def allgather_into_tensor_coalesced(self, outputs, inputs, opts=c10d.AllgatherOptions()):
        def run(st):
            self._agree("all_gather_into_tensor", inputs)
            for out, inp in zip(outputs, inputs):
                host_in = as_bytes(st.host(inp, write=False))
                host_out = as_bytes(st.host(out, read=False))
                st.ready()
                self._gloo._allgather_base(host_out, host_in, self._opts(c10d.AllgatherOptions)).wait()
            return list(outputs)

        return self._submit("all_gather_into_tensor", list(outputs) + list(inputs), run)

    def gather(self, outputs, inputs, opts=c10d.GatherOptions()):
        root = self.rank() == opts.rootRank

        def run(st):
            self._agree("gather", inputs)
            host_in = st.bytes(inputs, write=False)
            host_out = [st.bytes(out, read=False) for out in outputs] if root else []
            st.ready()
            self._gloo.gather(host_out, host_in, self._opts(c10d.GatherOptions, opts)).wait()
            return outputs

        return self._submit("gather", _flat(outputs) + list(inputs), run)

    def scatter(self, outputs, inputs, opts=c10d.ScatterOptions()):
        root = self.rank() == opts.rootRank

        def run(st):
            self._agree("scatter", outputs)
            host_out = st.bytes(outputs, read=False)
            host_in = [st.bytes(chunks, write=False) for chunks in inputs] if root else []
            st.ready()
            self._gloo.scatter(host_out, host_in, self._opts(c10d.ScatterOptions, opts)).wait()
            return list(outputs)

        return self._submit("scatter", list(outputs) + _flat(inputs), run)

    def alltoall(self, outputs, inputs, opts=c10d.AllToAllOptions()):
        def run(st):
            dtype = inputs[0].dtype if inputs else torch.float32
            self._agree_exchange("all_to_all", dtype, [t.numel() for t in inputs], [t.numel() for t in outputs])
            host_out = st.bytes(outputs, read=False)
            host_in = st.bytes(inputs, write=False)
            st.ready()
            self._gloo.alltoall(host_out, host_in, self._opts(c10d.AllToAllOptions)).wait()
            return list(outputs)

        return self._submit("all_to_all", list(outputs) + list(inputs), run)

    def all_to_all_single(self, output, input, output_split_sizes, input_split_sizes, opts=c10d.AllToAllOptions()):
        w = self.size()

        def elements(t, splits):
            row = t.numel() // t.shape[0] if t.dim() and t.shape[0] else 0
            return [s * row for s in splits] if splits else [t.numel() // w] * w

        def run(st):
            self._agree_exchange("all_to_all_single", input.dtype, elements(input, input_split_sizes),
                                 elements(output, output_split_sizes))
            host_out = rows_as_bytes(st.host(output, read=False))
            host_in = rows_as_bytes(st.host(input, write=False))
            st.ready()
            self._gloo.alltoall_base(host_out, host_in, list(output_split_sizes or []),
                                     list(input_split_sizes or []), self._opts(c10d.AllToAllOptions)).wait()
            return [output]

        return self._submit("all_to_all_single", [output, input], run)

    # ---- point to point (Gloo's work finishes on another thread; see Pending) ----
    def send(self, tensors, dst, tag):
        def run(st):
            host = st.bytes(tensors, write=False)
            st.ready()
            return Pending(self._gloo.send(host, dst, tag), self._timeout, lambda: list(tensors))

        return self._submit("send", tensors, run)

    def recv(self, tensors, src, tag):
        def run(st):
            host = st.bytes(tensors, read=False)
            return Pending(self._gloo.recv(host, src, tag), self._timeout, lambda: list(tensors))

        return self._submit("recv", tensors, run)

    def recv_anysource(self, tensors, tag):
        def run(st):
            host = st.bytes(tensors, read=False)
            return Pending(self._gloo.recv_anysource(host, tag), self._timeout, lambda: list(tensors))

        return self._submit("recv", tensors, run)

    def barrier(self, opts=c10d.BarrierOptions()):
        # as NCCL's: also after the work queued on the current device's stream
        gopts = self._opts(c10d.BarrierOptions)
        if opts.timeout.total_seconds() > 0:
            gopts.timeout = opts.timeout

        def run(st):
            self._gloo.barrier(gopts).wait()
            return []

        return self._worker.submit("barrier", [], run, devices=[torch.npu.current_device()])

    def shutdown(self):
        self._worker.shutdown()


def _create(store, rank, size, timeout):
    return ProcessGroupHCCL(store, rank, size, timeout)


dist.Backend.register_backend("hccl", _create, devices=["npu"])
dist.is_hccl_available = is_hccl_available
