"""Collectives in flight: a group's worker thread runs them, and the work objects callers wait on.

A collective is queued with an event recorded on the caller's current stream of each device it
touches, and returns at once, so the caller goes on queueing device work meanwhile (as NCCL's
collectives run on a stream of their own). The worker runs the group's collectives one at a time
in the order they were issued, the same order on every rank: it waits for the events (the tensors'
values are then final), runs the collective on a stream of its own per device, and completes the
work's future (on a thread of its own, see _complete). The future is device-aware (torch.futures.Future(devices=...)), so ``wait()``
makes the waiter's current streams wait for the collective's device work, as NCCL's does, and
raises the collective's error."""
import concurrent.futures
import contextlib
import datetime
import queue
import threading
from typing import Callable, List, Optional

import torch
import torch.distributed as dist
from torch.futures import Future

from ._staging import Staging


class Work(dist.Work):
    def __init__(self, fut: Future):
        super().__init__()
        self._fut = fut

    def wait(self, timeout: Optional[datetime.timedelta] = None) -> bool:
        if timeout is not None and timeout.total_seconds() > 0 and not self._fut.done():
            done = threading.Event()
            self._fut.add_done_callback(lambda _: done.set())
            if not done.wait(timeout.total_seconds()):
                raise RuntimeError(f"hccl: the collective did not complete within {timeout}")
        self._fut.wait()
        return True

    def is_completed(self) -> bool:
        return self._fut.done()

    def is_success(self) -> bool:
        if not self._fut.done():
            raise RuntimeError("hccl: the collective has not completed")
        return self.exception() is None

    def exception(self):
        if not self._fut.done():
            return None
        try:
            self._fut.value()
        except Exception as e:  # the collective's error
            return e
        return None

    def result(self):
        return self._fut.wait()

    def get_future(self) -> Future:
        return self._fut

    def synchronize(self) -> None:
        self._fut.wait()


class Pending:
    """What a point-to-point job hands back instead of a result: Gloo's work, still running, and
    what to do once it is done. The worker waits for it on another thread, so that two ranks that
    both send first do not wait for each other."""

    def __init__(self, gloo_work, timeout: datetime.timedelta, finish: Callable[[], list]):
        self.gloo_work, self.timeout, self.finish = gloo_work, timeout, finish


class Worker:
    def __init__(self, name: str):
        self._name = name
        self._jobs: "queue.SimpleQueue" = queue.SimpleQueue()
        self._streams = {}
        self._lock = threading.Lock()
        # Threads reused across collectives (starting one costs more than a small collective);
        # more start only while callbacks still block the others.
        self._completers = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix=f"hccl-{name}-done")
        self._thread = threading.Thread(target=self._serve, daemon=True, name=f"hccl-{name}")
        self._thread.start()

    def submit(self, op: str, tensors: List[torch.Tensor], run: Callable[[Staging], object],
               devices: Optional[List[int]] = None) -> Work:
        """Queues ``run(staging)``, which runs the collective ``op`` and returns its result (or a
        Pending), for after the work queued so far on the current streams of ``tensors``' devices
        (and of ``devices``)."""
        devices = sorted({t.device.index for t in tensors if t.device.type == "npu"} | set(devices or []))
        ready = [torch.npu.current_stream(d).record_event() for d in devices]
        fut = Future(devices=[torch.device("npu", d) for d in devices])
        self._jobs.put((op, devices, ready, run, fut))
        return Work(fut)

    def shutdown(self) -> None:
        """Stops the threads once the collectives queued so far have run."""
        self._jobs.put(None)

    @contextlib.contextmanager
    def _on_streams(self, devices):
        with contextlib.ExitStack() as stack:
            for d in devices:
                with self._lock:  # the worker and the completers
                    if d not in self._streams:
                        self._streams[d] = torch.npu.Stream(device=d)
                stack.enter_context(torch.npu.stream(self._streams[d]))
            yield

    def _serve(self):
        while True:
            job = self._jobs.get()
            if job is None:
                self._completers.shutdown(wait=False)  # lets the queued completions finish
                return
            op, devices, ready, run, fut = job
            try:
                for event in ready:
                    event.synchronize()
                staging = Staging()
                with self._on_streams(devices):
                    result = run(staging)
                    if isinstance(result, Pending):
                        self._finish_later(op, devices, staging, result, fut)
                        continue
                    staging.write_back()
                self._complete(op, devices, fut, result)
            except Exception as e:
                self._complete(op, devices, fut, error=e)

    def _complete(self, op, devices, fut, result=None, error=None):
        """Completes ``fut`` on a thread of its own: its callbacks run there, and one that waits
        for another collective of this group (as DDP's PowerSGD hook does) must not block the
        worker that runs it."""
        def complete():
            with self._on_streams(devices):  # the events the waiters wait for: after write-backs
                if error is None:
                    fut.set_result(result)
                else:
                    fut.set_exception(_named(op, error))

        self._completers.submit(complete)

    def _finish_later(self, op, devices, staging, pending, fut):
        def finish():
            try:
                pending.gloo_work.wait(pending.timeout)
                with self._on_streams(devices):
                    result = pending.finish()
                    staging.write_back()
                    fut.set_result(result)
            except Exception as e:
                fut.set_exception(_named(op, e))

        threading.Thread(target=finish, daemon=True, name=f"hccl-{self._name}-{op}").start()


def _named(op: str, e: Exception) -> Exception:
    """The error as the waiter sees it: naming the backend and the collective."""
    if str(e).startswith("hccl"):
        return e
    named = RuntimeError(f"hccl {op}: {e}")
    named.__cause__ = e
    return named
