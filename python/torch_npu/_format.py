"""torch_npu's storage formats: ``torch_npu.Format``, ``npu_format_cast(_)``,
``get_npu_format``, ``empty_with_format``, and what keeps a private-format tensor's values and
format through printing, ``copy.deepcopy`` and ``torch.save``/``torch.load``.

A tensor keeps its logical shape and strides; its storage holds the format's physical layout
(padding included, so ``untyped_storage().nbytes()`` is what the device would use). Every op
accepts such tensors: it reads a plain copy, and a tensor it writes goes back to its format.
Views (``view``, ``transpose``, slicing...) alias memory, so the storage becomes plain first."""
import copy
from enum import IntEnum

import torch

__all__ = ["Format", "npu_format_cast", "npu_format_cast_", "get_npu_format", "empty_with_format"]


class Format(IntEnum):
    """NPU storage format codes (ACL_FORMAT_*)."""
    UNDEFINED = -1
    NCHW = 0
    NHWC = 1
    ND = 2
    NC1HWC0 = 3
    FRACTAL_Z = 4
    NC1HWC0_C04 = 12
    HWCN = 16
    NDHWC = 27
    FRACTAL_NZ = 29
    NCDHW = 30
    NDC1HWC0 = 32
    FRACTAL_Z_3D = 33
    NC = 35
    NCL = 47

    def __str__(self):
        return self.name


_BASE = {Format.NHWC: Format.NCHW, Format.NC1HWC0: Format.NCHW, Format.FRACTAL_Z: Format.NCHW,
         Format.NDHWC: Format.NCDHW, Format.NDC1HWC0: Format.NCDHW, Format.FRACTAL_Z_3D: Format.NCDHW,
         Format.FRACTAL_NZ: Format.ND}


def _code(acl_format) -> int:
    if isinstance(acl_format, bool) or not isinstance(acl_format, int):
        raise TypeError(f"acl_format must be an int or a torch_npu.Format, got {type(acl_format).__name__}")
    return int(acl_format)


def npu_format_cast(self: torch.Tensor, acl_format) -> torch.Tensor:
    """``self``'s values in a tensor whose storage has format ``acl_format`` (``self`` when it
    already has it). Needs ``torch.npu.config.allow_internal_format = True`` for private formats."""
    return torch.ops.npu.npu_format_cast(self, _code(acl_format))


def npu_format_cast_(self: torch.Tensor, src) -> torch.Tensor:
    """Converts ``self`` in place to format ``src`` (a format code, or a tensor whose format to take)."""
    if isinstance(src, torch.Tensor):
        return torch.ops.npu.npu_format_cast_(self, src)
    return torch.ops.npu.npu_format_cast_.acl_format(self, _code(src))


def get_npu_format(tensor: torch.Tensor) -> Format:
    """The storage format of an npu tensor."""
    return Format(torch.ops.npu.get_npu_format(tensor))


def empty_with_format(size, dtype=None, layout=None, device=None, pin_memory=None, acl_format=2):
    """An uninitialized npu tensor whose storage has format ``acl_format``."""
    if device is not None:
        device = torch.device(device)
        if device.type == "npu" and device.index is None:
            device = torch.device("npu", torch.npu.current_device())
    return torch.ops.npu.empty_with_format(list(size), dtype=dtype, layout=layout, device=device,
                                           pin_memory=pin_memory, acl_format=_code(acl_format))


def _private(t) -> bool:
    return isinstance(t, torch.Tensor) and t.device.type == "npu" and torch.ops.npu.has_private_format(t)


def _plain(t: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.ops.npu.npu_format_cast(t.detach(), int(_BASE[get_npu_format(t)]))


def _rebuild_npu_tensor_with_format(plain: torch.Tensor, acl_format: int, requires_grad: bool) -> torch.Tensor:
    """Unpickles a private-format tensor saved as its plain values: on an npu (the usual
    ``torch.load``) the format comes back; mapped to another device it stays plain."""
    t = plain
    if plain.device.type == "npu":
        with torch.no_grad():
            t = torch.ops.npu.npu_format_cast(plain, acl_format)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _install():
    """Autograd and fake kernels of the format ops; the Tensor methods; printing, deepcopy and
    pickling of private-format tensors."""
    torch.library.register_autograd("npu::npu_format_cast", lambda ctx, grad: (grad, None))

    @torch.library.register_fake("npu::npu_format_cast")
    def _(self, acl_format):
        return torch.empty_like(self, memory_format=torch.contiguous_format)

    @torch.library.register_fake("npu::empty_with_format")
    def _(size, dtype=None, layout=None, device=None, pin_memory=None, acl_format=2):
        return torch.empty(size, dtype=dtype, layout=layout, device=device)

    torch.Tensor.npu_format_cast = npu_format_cast
    torch.Tensor.npu_format_cast_ = npu_format_cast_

    # Printing reads a plain copy: its slicing would otherwise make the storage plain.
    str_impl = torch._tensor_str._str

    def _str(self, *, tensor_contents=None):
        if tensor_contents is None and _private(self):
            indent = len("tensor(") if type(self) in (torch.Tensor, torch.nn.Parameter) else len(type(self).__name__) + 1
            tensor_contents = torch._tensor_str._tensor_str(_plain(self), indent)
        return str_impl(self, tensor_contents=tensor_contents)

    torch._tensor_str._str = _str

    # deepcopy of a plain Tensor copies its storage's bytes; a private storage needs its format
    # too, which clone keeps. (Parameter's own __deepcopy__ clones already.)
    deepcopy_impl = torch.Tensor.__deepcopy__

    def __deepcopy__(self, memo):
        if type(self) is not torch.Tensor or not _private(self):
            return deepcopy_impl(self, memo)
        if id(self) in memo:
            return memo[id(self)]
        with torch.no_grad():
            new = self.clone()
        new.requires_grad_(self.requires_grad)
        if self.grad is not None:
            new.grad = copy.deepcopy(self.grad, memo)
        memo[id(self)] = new
        return new

    torch.Tensor.__deepcopy__ = __deepcopy__

    # torch.save writes a private-format tensor as its plain values and its format code, so the
    # file loads on any device (map_location="cpu" gives plain CPU tensors).
    reduce_impl = torch.Tensor._reduce_ex_internal

    def _reduce_ex_internal(self, proto):
        if _private(self):
            return (_rebuild_npu_tensor_with_format, (_plain(self), int(get_npu_format(self)), self.requires_grad))
        return reduce_impl(self, proto)

    torch.Tensor._reduce_ex_internal = _reduce_ex_internal
    torch.serialization.add_safe_globals([_rebuild_npu_tensor_with_format])


_install()
