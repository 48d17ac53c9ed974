"""Normalizations: npu_rms_norm, npu_add_rms_norm, npu_layer_norm_eval."""
import torch
import torch.nn.functional as F

from ._registry import composite, float_math


def _rms(x, gamma, epsilon, op):
    if gamma.dim() == 0 or gamma.dim() > x.dim() or tuple(x.shape[x.dim() - gamma.dim():]) != tuple(gamma.shape):
        raise RuntimeError(f"{op}: gamma of shape {tuple(gamma.shape)} must match the last dims of the input "
                           f"{tuple(x.shape)}")
    dims = tuple(range(x.dim() - gamma.dim(), x.dim()))
    xf = float_math(x)
    rstd = torch.rsqrt(xf.square().mean(dims, keepdim=True) + epsilon)
    y = (xf * rstd * float_math(gamma)).to(x.dtype)
    return y, rstd


@composite("npu_rms_norm(Tensor self, Tensor gamma, float epsilon=1e-06) -> (Tensor, Tensor)")
def npu_rms_norm(self, gamma, epsilon=1e-6):
    """(x / sqrt(mean(x^2) + eps) * gamma, the reciprocal rms in float32), over gamma's dims."""
    return _rms(self, gamma, epsilon, "npu_rms_norm")


@composite("npu_add_rms_norm(Tensor x1, Tensor x2, Tensor gamma, float epsilon=1e-06) -> (Tensor, Tensor, Tensor)")
def npu_add_rms_norm(x1, x2, gamma, epsilon=1e-6):
    """rms norm of x = x1 + x2: (y, reciprocal rms, x)."""
    x = x1 + x2
    y, rstd = _rms(x, gamma, epsilon, "npu_add_rms_norm")
    return y, rstd, x


@composite("npu_layer_norm_eval(Tensor input, int[] normalized_shape, Tensor? weight=None, Tensor? bias=None, "
           "float eps=1e-05) -> Tensor")
def npu_layer_norm_eval(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    return F.layer_norm(input, normalized_shape, weight, bias, eps)
