"""Quantization: npu_dynamic_quant (per-token symmetric int8), npu_anti_quant (int8 back to
float)."""
import torch

from ._registry import composite


@composite("npu_dynamic_quant(Tensor x, *, Tensor? smooth_scales=None, Tensor? group_index=None, "
           "ScalarType? dst_type=None) -> (Tensor, Tensor)")
def npu_dynamic_quant(x, smooth_scales=None, group_index=None, dst_type=None):
    """(round(x' / scale) as int8, scale) with x' = x * smooth_scales (per group of rows with
    group_index) and scale = max|x'| / 127 per row."""
    if dst_type not in (None, torch.int8):
        raise NotImplementedError(f"npu_dynamic_quant: dst_type {dst_type} is not supported; int8 is")
    if x.dim() < 2:
        raise RuntimeError(f"npu_dynamic_quant: x must have more than 1 dim, got shape {tuple(x.shape)}")
    xf = x.float()
    if smooth_scales is not None:
        if group_index is None:
            xf = xf * smooth_scales.float()
        else:
            rows = xf.reshape(-1, x.shape[-1])
            counts = torch.diff(group_index.long(), prepend=group_index.new_zeros(1).long())
            per_row = smooth_scales.float().repeat_interleave(counts, dim=0, output_size=rows.shape[0])
            xf = (rows * per_row).reshape(x.shape)
    scale = xf.abs().amax(-1) / 127.0
    y = torch.round(xf / scale.clamp(min=torch.finfo(torch.float32).tiny).unsqueeze(-1)).clamp(-128, 127)
    return y.to(torch.int8), scale


@composite("npu_anti_quant(Tensor x, Tensor scale, *, Tensor? offset=None, ScalarType? dst_dtype=None, "
           "ScalarType? src_dtype=None) -> Tensor")
def npu_anti_quant(x, scale, offset=None, dst_dtype=None, src_dtype=None):
    """(x + offset) * scale in dst_dtype (float16 by default), scale and offset per last-dim
    channel (or one value)."""
    if x.dtype != torch.int8 or src_dtype not in (None, torch.int8):
        raise NotImplementedError(f"npu_anti_quant: int8 input is supported, got {x.dtype} (packed int4 is not)")
    xf = x.float()
    if offset is not None:
        xf = xf + offset.float()
    return (xf * scale.float()).to(dst_dtype or torch.float16)
