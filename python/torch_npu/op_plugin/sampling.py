"""Sampling filters and scatters: npu_top_k_top_p, npu_scatter_nd_update(_)."""
import torch

from ._registry import composite


@composite("npu_top_k_top_p(Tensor logits, Tensor? p=None, Tensor? k=None) -> Tensor")
def npu_top_k_top_p(logits, p=None, k=None):
    """logits with everything outside the top-k (k[b] per row) and outside the top-p nucleus
    (p[b]) set to -inf; the most likely token always stays."""
    if p is None and k is None:
        raise RuntimeError("npu_top_k_top_p: p and k cannot both be None")
    if logits.dim() != 2:
        raise RuntimeError(f"npu_top_k_top_p: logits must have 2 dims, got shape {tuple(logits.shape)}")
    values, order = torch.sort(logits, dim=-1, stable=True)  # ascending
    neg_inf = torch.tensor(float("-inf"), dtype=logits.dtype, device=logits.device)
    if k is not None:
        kth = values.gather(-1, (logits.shape[-1] - k.long()).clamp(min=0).unsqueeze(-1))
        values = torch.where(values < kth, neg_inf, values)
    if p is not None:
        cum = torch.softmax(values.float(), -1).cumsum(-1)
        drop = cum <= (1 - p.float()).unsqueeze(-1)
        drop[:, -1] = False
        values = torch.where(drop, neg_inf, values)
    return torch.empty_like(logits).scatter_(-1, order, values)


def _nd_positions(input, indices, updates, op):
    if indices.dim() < 2 or indices.shape[-1] > input.dim():
        raise RuntimeError(f"{op}: indices must have at least 2 dims and a last dim of at most {input.dim()}, "
                           f"got shape {tuple(indices.shape)}")
    depth = indices.shape[-1]
    want = tuple(indices.shape[:-1]) + tuple(input.shape[depth:])
    if tuple(updates.shape) != want:
        raise RuntimeError(f"{op}: updates must have shape {want}, got {tuple(updates.shape)}")
    return tuple(indices.reshape(-1, depth).long().unbind(-1)), updates.reshape((-1,) + tuple(input.shape[depth:]))


@composite("npu_scatter_nd_update(Tensor input, Tensor indices, Tensor updates) -> Tensor")
def npu_scatter_nd_update(input, indices, updates):
    """A copy of input with input[indices[..., :]] = updates (TensorFlow's scatter_nd_update)."""
    where, values = _nd_positions(input, indices, updates, "npu_scatter_nd_update")
    return input.index_put(where, values)


@composite("npu_scatter_nd_update_(Tensor(a!) input, Tensor indices, Tensor updates) -> Tensor(a!)")
def npu_scatter_nd_update_(input, indices, updates):
    where, values = _nd_positions(input, indices, updates, "npu_scatter_nd_update_")
    return input.index_put_(where, values)
