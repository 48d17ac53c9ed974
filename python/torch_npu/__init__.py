"""torch_npu: the PyTorch adapter for NPUs, with a Rust core and a software NPU.

``import torch_npu`` (or just ``import torch``, through the ``torch.backends`` entry point)
gives PyTorch an ``npu`` device: ``torch.randn(2, 3, device="npu")``, ``tensor.npu()``,
``torch.npu.*``.
"""
import os


def _autoload():
    """Entry point of group ``torch.backends``: importing this module did the work. Defined
    before ``import torch``, which calls it when this package is imported first."""


import torch  # noqa: E402
import torch.utils

# The device is PyTorch's PrivateUse1 backend under the name "npu"; rename before anything
# prints a device.
if torch._C._get_privateuse1_backend_name() != "npu":
    torch.utils.rename_privateuse1_backend("npu")

try:
    from . import _C  # noqa: E402  (registers the device with PyTorch's dispatcher)
except ImportError as e:
    raise ImportError(
        f"torch_npu failed to load its native module with torch {torch.__version__} installed: {e}. "
        "torch_npu must be built against the torch it runs with: rebuild it (`make build`)."
    ) from e

from . import npu  # noqa: E402

torch._register_device_module("npu", npu)
torch.utils.generate_methods_for_privateuse1_backend(
    for_tensor=True, for_module=True, for_packed_sequence=True, for_storage=True
)

from . import op_plugin  # noqa: E402

globals().update(op_plugin._registry.EXPORTED)  # torch_npu.npu_rms_norm, ... (torch.ops.npu.*)
from . import distributed, optim, utils  # noqa: E402,F401
from ._format import Format, empty_with_format, get_npu_format, npu_format_cast, npu_format_cast_  # noqa: E402,F401
from . import _exit  # noqa: E402,F401  (drains autograd's npu threads before the interpreter ends)

__version__ = "0.1.0"

# TORCH_TRANSFER_TO_NPU=1: CUDA scripts run on the npu without editing them.
if os.environ.get("TORCH_TRANSFER_TO_NPU") == "1":
    from .contrib import transfer_to_npu  # noqa: E402,F401

