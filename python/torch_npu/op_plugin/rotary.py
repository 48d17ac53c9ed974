"""Rotary position embeddings: npu_rotary_mul, npu_apply_rotary_pos_emb."""
import torch

from ._registry import composite, float_math


def _rotate(x, mode, op):
    """The partner of each element in the rotation: half mode (-x2, x1) over the two halves of
    the last dim; interleave mode (-x[1], x[0]) over each pair."""
    if x.shape[-1] % 2:
        raise RuntimeError(f"{op}: the last dim ({x.shape[-1]}) must be even")
    if mode == "half":
        x1, x2 = x.chunk(2, -1)
        return torch.cat((-x2, x1), -1)
    if mode == "interleave":
        x1, x2 = x[..., ::2], x[..., 1::2]
        return torch.stack((-x2, x1), -1).flatten(-2)
    raise RuntimeError(f"{op}: rotary_mode must be 'half' or 'interleave', got {mode!r}")


@composite("npu_rotary_mul(Tensor input, Tensor r1, Tensor r2, str rotary_mode='half', Tensor? rotate=None) -> Tensor")
def npu_rotary_mul(input, r1, r2, rotary_mode="half", rotate=None):
    """r1 * x + r2 * rotated(x), rotated(x) = x @ rotate when a rotation matrix is given."""
    x = float_math(input)
    turned = x @ float_math(rotate) if rotate is not None else _rotate(x, rotary_mode, "npu_rotary_mul")
    return (float_math(r1) * x + float_math(r2) * turned).to(input.dtype)


@composite("npu_apply_rotary_pos_emb(Tensor(a!) query, Tensor(b!) key, Tensor cos, Tensor sin, *, "
           "str layout='BSND', str rotary_mode='half') -> (Tensor(a!), Tensor(b!))")
def npu_apply_rotary_pos_emb(query, key, cos, sin, layout="BSND", rotary_mode="half"):
    """Rotates query and key in place: x * cos + rotated(x) * sin."""
    if layout not in ("BSND", "SBND", "BNSD", "TND"):
        raise RuntimeError(f"npu_apply_rotary_pos_emb: layout must be BSND, SBND, BNSD or TND, got {layout!r}")
    rank = 3 if layout == "TND" else 4
    for name, t in (("query", query), ("key", key), ("cos", cos), ("sin", sin)):
        if t.dim() != rank:
            raise RuntimeError(f"npu_apply_rotary_pos_emb: {name} must have {rank} dims for layout {layout}, "
                               f"got shape {tuple(t.shape)}")
    c, s = float_math(cos), float_math(sin)
    for t in (query, key):
        x = float_math(t)
        t.copy_(x * c + _rotate(x, rotary_mode, "npu_apply_rotary_pos_emb") * s)
    return query, key
