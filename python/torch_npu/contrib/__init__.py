"""torch_npu.contrib: optional add-ons. ``from torch_npu.contrib import transfer_to_npu`` makes
scripts written for CUDA run on the npu."""
