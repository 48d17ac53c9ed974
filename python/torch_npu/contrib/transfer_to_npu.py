"""``from torch_npu.contrib import transfer_to_npu`` (or ``TORCH_TRANSFER_TO_NPU=1``): an
unmodified CUDA script runs on the npu.

* ``torch.cuda.*`` (and ``torch.cuda.amp.*``) become ``torch.npu.*``; ``torch.cuda.is_available()``
  is true when an npu is.
* ``Tensor.cuda`` / ``Module.cuda`` are ``.npu``; ``Tensor.is_cuda`` is ``is_npu``.
* ``"cuda"``, ``"cuda:N"`` and ``torch.device("cuda", N)`` become npu devices in the factory
  functions, ``Tensor.to``/``new_*``, ``Module.to``, ``torch.load(map_location=...)`` (and
  checkpoints saved on CUDA load onto the npu), ``torch.Generator``, ``torch.Event``,
  ``torch.autocast``, ``torch.amp.GradScaler``, ``torch.set_default_device`` and
  DistributedDataParallel's ``device_ids``.
* ``init_process_group("nccl")`` asks for ``"hccl"``.

Importing it twice changes nothing more."""
import functools
import re
import warnings

import torch
import torch.utils._device

import torch_npu

__all__ = []

_TORCH_FACTORIES = [
    "arange", "as_tensor", "bartlett_window", "blackman_window", "empty", "empty_like", "empty_strided", "eye",
    "frombuffer", "full", "full_like", "hamming_window", "hann_window", "kaiser_window", "linspace", "logspace",
    "normal", "ones", "ones_like", "rand", "rand_like", "randint", "randint_like", "randn", "randn_like", "randperm",
    "range", "scalar_tensor", "tensor", "tril_indices", "triu_indices", "zeros", "zeros_like", "set_default_device",
    "get_device_module", "sparse_coo_tensor",
]
_TENSOR_METHODS = ["new_empty", "new_empty_strided", "new_full", "new_ones", "new_tensor", "new_zeros", "to",
                   "pin_memory"]
_MODULE_METHODS = ["to", "to_empty"]
_DEVICE_KWARGS = ("device", "device_type", "map_location", "device_id", "output_device")


def _npu(value, ints: bool = False):
    """``value`` with CUDA devices replaced by npu ones (ints too when ``ints``)."""
    if isinstance(value, str):
        return re.sub(r"\bcuda\b", "npu", value)
    if isinstance(value, torch.device):
        return torch.device("npu", value.index) if value.type == "cuda" else value
    if ints and isinstance(value, int) and not isinstance(value, bool):
        return torch.device("npu", value)
    if isinstance(value, dict):
        return {_npu(k): _npu(v) for k, v in value.items()}
    return value


def _translating(fn, ints: bool = False):
    """``fn`` with its device arguments translated (positional ones, and the device keywords)."""
    if getattr(fn, "_transfer_to_npu", False):
        return fn

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        args = tuple(_npu(a, ints) for a in args)
        for key in _DEVICE_KWARGS:
            if key in kwargs:
                kwargs[key] = _npu(kwargs[key], ints)
        for key in ("device_ids",):
            if isinstance(kwargs.get(key), (list, tuple)):
                kwargs[key] = type(kwargs[key])(_npu(d) for d in kwargs[key])
        return fn(*args, **kwargs)

    wrapper._transfer_to_npu = True
    return wrapper


def _patch_all(owner, names, ints=False):
    for name in names:
        fn = getattr(owner, name, None)
        if fn is not None:
            setattr(owner, name, _translating(fn, ints))


class _ProxyMeta(type(torch.Generator)):
    """Keeps ``isinstance(x, torch.Generator)`` true for real generators once the name points
    at the device-translating subclass."""

    def __instancecheck__(cls, instance):
        return isinstance(instance, cls.__mro__[1])


def _make_proxies():
    base_generator, base_event = torch.Generator, torch.Event

    class Generator(base_generator, metaclass=_ProxyMeta):
        def __new__(cls, device="cpu"):
            return base_generator(_npu(device))

    class Event(base_event, metaclass=_ProxyMeta):
        def __new__(cls, *args, **kwargs):
            return base_event(*(_npu(a) for a in args), **{k: _npu(v) for k, v in kwargs.items()})

    return Generator, Event


def _load_default_to_npu(load):
    """torch.load: storages saved on CUDA devices restore onto the npu ones."""

    @functools.wraps(load)
    def wrapper(f, map_location=None, *args, **kwargs):
        if map_location is None:
            def map_location(storage, location):
                return torch.serialization.default_restore_location(storage, _npu(location))
        else:
            map_location = _npu(map_location)
        return load(f, map_location, *args, **kwargs)

    wrapper._transfer_to_npu = True
    return wrapper


def _backend_to_hccl(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        swap = (lambda b: re.sub(r"\bnccl\b", "hccl", _npu(b)) if isinstance(b, str) else b)
        args = tuple(swap(a) if isinstance(a, str) else a for a in args)
        if "backend" in kwargs:
            kwargs["backend"] = swap(kwargs["backend"])
        return fn(*args, **kwargs)

    return wrapper


def _patch_cuda_namespace():
    npu = torch_npu.npu
    for name in npu.__all__:
        value = getattr(npu, name)
        if name in ("Stream", "Event", "device", "device_of", "StreamContext", "amp", "config", "sim"):
            continue
        setattr(torch.cuda, name, _translating(value) if callable(value) else value)
    torch.cuda.is_available = npu.is_available

    class Stream(npu.Stream):
        def __new__(cls, device=None, priority=0, **kwargs):
            return super().__new__(cls, _npu(device), priority, **kwargs)

    class device(npu.device):
        def __init__(self, device):
            super().__init__(_npu(device))

    torch.cuda.Stream, torch.cuda.Event, torch.cuda.device = Stream, npu.Event, device
    torch.cuda.StreamContext, torch.cuda.device_of = npu.StreamContext, npu.device_of
    for name in ("autocast", "GradScaler", "custom_fwd", "custom_bwd"):
        setattr(torch.cuda.amp, name, getattr(npu.amp, name))
    torch.cuda.amp.autocast_mode = npu.amp.autocast_mode
    torch.cuda.amp.grad_scaler = npu.amp.grad_scaler


def _install():
    if getattr(torch, "_transferred_to_npu", False):
        return
    torch._transferred_to_npu = True
    warnings.warn("transfer_to_npu: torch.cuda.* and CUDA devices now mean torch.npu.* and the npu "
                  "(Tensor.cuda / Module.cuda are .npu; init_process_group('nccl') asks for 'hccl').")
    _patch_cuda_namespace()
    # `with torch.device(...)` recognises factories by identity: let it cache the originals
    # before they are wrapped.
    torch.utils._device._device_constructors()
    _patch_all(torch, _TORCH_FACTORIES)
    # ints are device indices only in to() / to_empty()
    _patch_all(torch.Tensor, [m for m in _TENSOR_METHODS if m != "to"])
    _patch_all(torch.Tensor, ["to"], ints=True)
    _patch_all(torch.nn.Module, _MODULE_METHODS, ints=True)
    torch.Tensor.cuda = torch.Tensor.npu
    torch.Tensor.is_cuda = property(lambda self: self.is_npu)
    torch.nn.Module.cuda = torch.nn.Module.npu
    torch.load = _load_default_to_npu(torch.load)
    torch.Generator, torch.Event = _make_proxies()
    torch.amp.autocast_mode.autocast.__init__ = _translating(torch.amp.autocast_mode.autocast.__init__)
    torch.amp.GradScaler.__init__ = _translating(torch.amp.GradScaler.__init__)
    _patch_all(torch, ["is_autocast_enabled", "set_autocast_enabled", "get_autocast_dtype", "set_autocast_dtype"])
    torch.amp.custom_fwd = _translating(torch.amp.custom_fwd)
    torch.amp.custom_bwd = _translating(torch.amp.custom_bwd)
    torch.utils._device.DeviceContext.__init__ = _translating(torch.utils._device.DeviceContext.__init__)
    if torch.distributed.is_available():
        dist = torch.distributed
        dist.init_process_group = _translating(_backend_to_hccl(dist.init_process_group))
        dist.new_group = _backend_to_hccl(dist.new_group)
        torch.nn.parallel.DistributedDataParallel.__init__ = _translating(
            torch.nn.parallel.DistributedDataParallel.__init__, ints=False)


_install()
