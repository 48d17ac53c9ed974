"""A clean interpreter exit after backward passes on the npu.

PyTorch's autograd runs npu backward work on one engine thread per device, and that thread often
drops the last reference to a finished graph task, whose Python objects (the ``contextvars``
context ``torch.autograd.backward`` stashes in the thread state since PyTorch 2.15, the gradient
tensors Python created) it must then free under the GIL — possibly after the script ended. If
the interpreter is already finalizing, Python ends the thread with ``pthread_exit`` inside a
``noexcept`` destructor and the process aborts ("terminate called without an active
exception"). CUDA has the same race; this module closes it for the npu.

At exit (while the interpreter is still whole) one tiny backward pass, built in C++ with the GIL
released (``_C.drain_autograd``), runs on each used device's engine thread. The thread serves its
queue in order and releases each finished task before taking the next, so when the tiny pass
returns, every earlier task is gone; the tiny task itself holds no Python object.
"""
import atexit


def drain_autograd_threads() -> None:
    from . import _C, npu

    try:
        count = npu.device_count()
    except Exception:  # the runtime may already be unusable; nothing to drain then
        return
    for index in range(count):
        try:
            # a device that never held memory never ran autograd work
            if npu.memory_reserved(index) > 0 or npu.max_memory_reserved(index) > 0:
                _C.drain_autograd(index)
        except Exception:
            pass  # exiting anyway; a failure here must not mask the program's own exit status


atexit.register(drain_autograd_threads)
