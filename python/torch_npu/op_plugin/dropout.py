"""_npu_dropout (dropout returning torch_npu's bit mask: one bit per element, kept = 1, little-
endian within each byte, padded to a multiple of 128 bits; with its own backward) and
npu_dropout_with_add_softmax built on it."""
import torch

from ._registry import composite, define

_NAME = define("_npu_dropout(Tensor self, float p) -> (Tensor, Tensor)")


def _mask_bytes(n: int) -> int:
    return (n + 127) // 128 * 16


def _pack(keep: torch.Tensor) -> torch.Tensor:
    bits = torch.zeros(_mask_bytes(keep.numel()) * 8, dtype=torch.uint8, device=keep.device)
    bits[:keep.numel()] = keep.reshape(-1).to(torch.uint8)
    weights = (2 ** torch.arange(8, device=keep.device)).to(torch.uint8)
    return (bits.view(-1, 8) * weights).sum(-1, dtype=torch.uint8)


def _unpack(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    weights = (2 ** torch.arange(8, device=mask.device)).to(torch.uint8)
    bits = (mask.unsqueeze(-1) & weights) != 0
    return bits.reshape(-1)[:like.numel()].reshape(like.shape)


@torch.library.impl(_NAME, "PrivateUse1")
def _npu_dropout(self, p):
    if not 0.0 <= p <= 1.0:
        raise RuntimeError(f"_npu_dropout: p must be in [0, 1], got {p}")
    keep = torch.rand(self.shape, device=self.device) >= p if p < 1.0 else torch.zeros(self.shape, dtype=torch.bool,
                                                                                       device=self.device)
    scale = 0.0 if p >= 1.0 else 1.0 / (1.0 - p)
    return self * keep * scale, _pack(keep)


@torch.library.register_fake(_NAME)
def _(self, p):
    return torch.empty_like(self), self.new_empty((_mask_bytes(self.numel()),), dtype=torch.uint8)


def _setup(ctx, inputs, output):
    ctx.save_for_backward(output[1])
    ctx.p = inputs[1]
    ctx.shape_like = inputs[0]


def _backward(ctx, grad, _grad_mask):
    (mask,) = ctx.saved_tensors
    keep = _unpack(mask, grad)
    scale = 0.0 if ctx.p >= 1.0 else 1.0 / (1.0 - ctx.p)
    return grad * keep * scale, None


torch.library.register_autograd(_NAME, _backward, setup_context=_setup)


@composite("npu_dropout_with_add_softmax(Tensor self, Tensor x1, Scalar alpha, float prob, int dim) "
           "-> (Tensor, Tensor, Tensor)")
def npu_dropout_with_add_softmax(self, x1, alpha, prob, dim):
    """(bit mask, softmax(x1 + alpha * self, dim), its dropout): prob is the probability of
    dropping an element, kept ones are scaled by 1 / (1 - prob)."""
    if self.shape != x1.shape:
        raise RuntimeError(f"npu_dropout_with_add_softmax: self {tuple(self.shape)} and x1 {tuple(x1.shape)} "
                           "must have one shape")
    softmax = torch.softmax((x1.float() + float(alpha) * self.float()), dim).to(self.dtype)
    out, mask = torch.ops.npu._npu_dropout(softmax, prob)
    return mask, softmax, out
