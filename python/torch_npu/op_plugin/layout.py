"""Shape, dtype and matmul helpers: npu_confusion_transpose, npu_transpose, npu_linear,
npu_bmmV2, npu_dtype_cast, npu_one_hot, npu_scaled_masked_softmax."""
import torch
import torch.nn.functional as F

from ._registry import composite, float_math


@composite("npu_confusion_transpose(Tensor self, int[] perm, int[] shape, bool transpose_first) -> Tensor")
def npu_confusion_transpose(self, perm, shape, transpose_first):
    """permute then reshape (transpose_first), or reshape then permute."""
    if transpose_first:
        return self.permute(perm).reshape(shape)
    return self.reshape(shape).permute(perm)


@composite("npu_transpose(Tensor self, int[] perm, bool require_contiguous=True) -> Tensor")
def npu_transpose(self, perm, require_contiguous=True):
    return self.permute(perm).contiguous()


@composite("npu_linear(Tensor input, Tensor weight, Tensor? bias=None) -> Tensor")
def npu_linear(input, weight, bias=None):
    return F.linear(input, weight, bias)


@composite("npu_bmmV2(Tensor self, Tensor mat2, SymInt[] output_sizes) -> Tensor")
def npu_bmmV2(self, mat2, output_sizes):
    return torch.matmul(self, mat2)


@composite("npu_dtype_cast(Tensor input, ScalarType dtype, ScalarType? input_dtype=None) -> Tensor")
def npu_dtype_cast(input, dtype, input_dtype=None):
    return input.to(dtype)


@composite("npu_one_hot(Tensor input, int num_classes=-1, int depth=1, Scalar on_value=1, Scalar off_value=0) -> Tensor")
def npu_one_hot(input, num_classes=-1, depth=1, on_value=1, off_value=0):
    """A float32 tensor with a new axis of size ``depth`` at ``num_classes`` (the axis; -1 is
    last): on_value where the class equals the index, off_value elsewhere (indices outside
    [0, depth) give off_value everywhere)."""
    if input.is_floating_point() or input.is_complex():
        raise RuntimeError(f"npu_one_hot: expected an integer tensor of classes, got {input.dtype}")
    if depth < 1:
        raise RuntimeError(f"npu_one_hot: depth must be at least 1, got {depth}")
    classes = torch.arange(depth, device=input.device)
    hit = input.unsqueeze(-1).long() == classes
    out = torch.where(hit, torch.tensor(float(on_value), device=input.device),
                      torch.tensor(float(off_value), device=input.device))
    axis = num_classes if num_classes >= 0 else out.dim() + num_classes
    return out.movedim(-1, axis)


@composite("npu_scaled_masked_softmax(Tensor x, Tensor mask, float scale=1.0, bool fixed_triu_mask=False) -> Tensor")
def npu_scaled_masked_softmax(x, mask, scale=1.0, fixed_triu_mask=False):
    """softmax over the last dim of x * scale with masked positions (mask True, or the upper
    triangle above the diagonal with fixed_triu_mask) set to -10000, as Megatron's fused
    kernel; computed in float32, returned in x's dtype."""
    if fixed_triu_mask:
        h, w = x.shape[-2], x.shape[-1]
        mask = torch.ones(h, w, dtype=torch.bool, device=x.device).triu(1)
    elif mask.dtype != torch.bool:
        raise RuntimeError(f"npu_scaled_masked_softmax: mask must be bool, got {mask.dtype}")
    scores = (float_math(x) * scale).masked_fill(mask, -10000.0)
    return torch.softmax(scores, -1).to(x.dtype)
