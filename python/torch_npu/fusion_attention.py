"""``torch_npu.npu_fusion_attention`` and ``npu_fusion_attention_grad``: torch_npu's fused
attention, served by the same blocked attention kernel as ``F.scaled_dot_product_attention``
(the ``aten::_scaled_dot_product_fused_attention_overrideable`` ops, which carry autograd).

Semantics follow torch_npu's documentation: ``y = Softmax(Mask(scale * (pse + q kᵀ),
atten_mask)) · v`` with dropout ``keep_prob``; ``atten_mask`` is True (or 1) where a score is
hidden; layouts BNSD, BSND, BSH, SBH; sparse modes 0–4. The softmax statistics come back as
``softmax_max`` = the row log-sum-exp and ``softmax_sum`` = 1 (so max + log(sum) is the
log-sum-exp, as the backward needs), each repeated 8 times on the last dim like the device's.
"""
import math

import torch
import torch._subclasses.fake_tensor

_BIG = 2147483647
_LAYOUTS = ("BNSD", "BSND", "BSH", "SBH")


def _unsupported(what):
    return NotImplementedError(f"npu_fusion_attention: {what} is not supported yet")


def _to_bnsd(t, layout, heads, op="npu_fusion_attention"):
    """(B, N, S, D) view of a query/key/value tensor in `layout` with `heads` heads."""
    if layout == "BNSD":
        return t
    if layout == "BSND":
        return t.transpose(1, 2)
    if layout == "SBH":
        t = t.transpose(0, 1)
    b, s, h = t.shape
    if heads <= 0 or h % heads:
        raise RuntimeError(f"{op}: hidden size {h} is not a multiple of {heads} heads")
    return t.reshape(b, s, heads, h // heads).transpose(1, 2)


def _from_bnsd(t, layout):
    if layout == "BNSD":
        return t
    if layout == "BSND":
        return t.transpose(1, 2)
    b, n, s, d = t.shape
    t = t.transpose(1, 2).reshape(b, s, n * d)
    return t.transpose(0, 1) if layout == "SBH" else t


def _kv_heads(q4, key, layout, head_num):
    if layout in ("BNSD", "BSND"):
        return key.shape[1] if layout == "BNSD" else key.shape[2]
    d = q4.shape[-1]
    return key.shape[-1] // d if d else head_num


def _check(query, key, value, head_num, input_layout, padding_mask, prefix, actual_seq_qlen,
           actual_seq_kvlen, sparse_mode):
    if input_layout == "TND":
        raise _unsupported("input_layout TND (variable-length batches)")
    if input_layout not in _LAYOUTS:
        raise RuntimeError(f"npu_fusion_attention: input_layout must be one of {_LAYOUTS + ('TND',)}, got {input_layout!r}")
    if padding_mask is not None:
        raise _unsupported("padding_mask (torch_npu does not support it either)")
    if prefix is not None or actual_seq_qlen is not None or actual_seq_kvlen is not None:
        raise _unsupported("prefix / actual_seq_qlen / actual_seq_kvlen")
    if sparse_mode not in (0, 1, 2, 3, 4):
        raise _unsupported(f"sparse_mode {sparse_mode} (prefix and varlen modes)")
    if not (query.dtype == key.dtype == value.dtype):
        raise RuntimeError(f"npu_fusion_attention: query, key and value must have one dtype, got "
                           f"{query.dtype}, {key.dtype}, {value.dtype}")
    if head_num <= 0:
        raise RuntimeError(f"npu_fusion_attention: head_num must be positive, got {head_num}")


def _bias(q4, k4, pse, atten_mask, scale, pre_tockens, next_tockens, sparse_mode):
    """The additive mask the kernel takes: scale·pse, and -inf where a score is hidden."""
    sq, skv = q4.shape[2], k4.shape[2]
    hidden = None
    if atten_mask is not None:
        if sparse_mode in (0, 1):
            hidden = atten_mask.to(torch.bool)
        else:
            i = torch.arange(sq, device=q4.device).unsqueeze(1)
            j = torch.arange(skv, device=q4.device).unsqueeze(0)
            if sparse_mode == 2:  # causal from the top-left corner
                hidden = j > i
            elif sparse_mode == 3:  # causal from the bottom-right corner
                hidden = j > i + (skv - sq)
            else:  # band around the bottom-right diagonal
                rel = j - i - (skv - sq)
                hidden = (rel > next_tockens) | (rel < -pre_tockens)
    if pse is None and hidden is None:
        return None
    bias = torch.zeros((), dtype=q4.dtype, device=q4.device)
    if pse is not None:
        bias = pse.to(q4.dtype) * scale
    if hidden is not None:
        bias = bias.masked_fill(hidden, -math.inf) if bias.dim() >= hidden.dim() else \
            torch.zeros(hidden.shape, dtype=q4.dtype, device=q4.device).add_(bias).masked_fill_(hidden, -math.inf)
    return bias


def npu_fusion_attention(query, key, value, head_num, input_layout, pse=None, padding_mask=None,
                         atten_mask=None, scale=1.0, keep_prob=1.0, pre_tockens=_BIG,
                         next_tockens=_BIG, inner_precise=0, prefix=None, actual_seq_qlen=None,
                         actual_seq_kvlen=None, sparse_mode=0, gen_mask_parallel=True, sync=False,
                         softmax_layout=""):
    """-> (attention_out, softmax_max, softmax_sum, softmax_out, seed, offset, numels)"""
    _check(query, key, value, head_num, input_layout, padding_mask, prefix, actual_seq_qlen,
           actual_seq_kvlen, sparse_mode)
    if not 0 < keep_prob <= 1:
        raise RuntimeError(f"npu_fusion_attention: keep_prob must be in (0, 1], got {keep_prob}")
    q4 = _to_bnsd(query, input_layout, head_num)
    nkv = _kv_heads(q4, key, input_layout, head_num)
    k4, v4 = _to_bnsd(key, input_layout, nkv), _to_bnsd(value, input_layout, nkv)
    bias = _bias(q4, k4, pse, atten_mask, scale, pre_tockens, next_tockens, sparse_mode)
    res = torch.ops.aten._scaled_dot_product_fused_attention_overrideable(
        q4, k4, v4, bias, 1.0 - keep_prob, False, False, scale=scale)
    out, lse, seed_t, offset_t = res[0], res[1], res[6], res[7]
    stat_dtype = torch.float64 if lse.dtype == torch.float64 else torch.float32
    softmax_max = lse.detach().to(stat_dtype).unsqueeze(-1).expand(*lse.shape, 8).contiguous()
    softmax_sum = torch.ones_like(softmax_max)
    softmax_out = torch.empty(0, dtype=query.dtype, device=query.device)
    if keep_prob < 1:
        # A fake tensor (tracing) has no value: 0, as torch_npu's meta kernel gives.
        traced = isinstance(seed_t, torch._subclasses.fake_tensor.FakeTensor)
        seed, offset = (0, 0) if traced else (int(seed_t.item()), int(offset_t.item()))
        numels = q4.shape[0] * q4.shape[1] * q4.shape[2] * k4.shape[2]
    else:
        seed = offset = numels = 0
    return _from_bnsd(out, input_layout), softmax_max, softmax_sum, softmax_out, seed, offset, numels


def npu_fusion_attention_grad(query, key, value, dy, head_num, input_layout, *, pse=None,
                              padding_mask=None, atten_mask=None, softmax_max=None, softmax_sum=None,
                              softmax_in=None, attention_in=None, scale_value=1.0, keep_prob=1.0,
                              pre_tockens=_BIG, next_tockens=_BIG, inner_precise=0, seed=0, offset=0,
                              numels=0, prefix=None, actual_seq_qlen=None, actual_seq_kvlen=None,
                              sparse_mode=0, gen_mask_parallel=True, sync=False, softmax_layout="",
                              sink=None):
    """-> (dq, dk, dv, dpse, dsink), from the forward's softmax_max, softmax_sum and attention_in."""
    _check(query, key, value, head_num, input_layout, padding_mask, prefix, actual_seq_qlen,
           actual_seq_kvlen, sparse_mode)
    if sink is not None:
        raise _unsupported("sink")
    if softmax_max is None or softmax_sum is None or attention_in is None:
        raise RuntimeError("npu_fusion_attention_grad: softmax_max, softmax_sum and attention_in "
                           "from the forward are required")
    q4 = _to_bnsd(query, input_layout, head_num)
    nkv = _kv_heads(q4, key, input_layout, head_num)
    k4, v4 = _to_bnsd(key, input_layout, nkv), _to_bnsd(value, input_layout, nkv)
    dy4, out4 = _to_bnsd(dy, input_layout, head_num), _to_bnsd(attention_in, input_layout, head_num)
    lse_dtype = torch.float64 if query.dtype == torch.float64 else torch.float32
    lse = (softmax_max[..., 0] + softmax_sum[..., 0].log()).to(lse_dtype)
    bias = _bias(q4, k4, pse, atten_mask, scale_value, pre_tockens, next_tockens, sparse_mode)
    p = 1.0 - keep_prob
    dev = query.device
    none = torch.empty(0, device=dev)  # the aten op's tensor arguments are not optional
    seed_t = torch.tensor(seed, dtype=torch.int64, device=dev) if p > 0 else none
    offset_t = torch.tensor(offset, dtype=torch.int64, device=dev) if p > 0 else none
    if bias is None:
        bias = torch.zeros((), dtype=query.dtype, device=dev)  # adds nothing
    dq, dk, dv, dbias = torch.ops.aten._scaled_dot_product_fused_attention_overrideable_backward(
        dy4, q4, k4, v4, bias, [True, True, True, pse is not None], out4, lse, none, none,
        q4.shape[2], k4.shape[2], p, False, seed_t, offset_t, scale=scale_value)
    dpse = torch.empty(0, dtype=query.dtype, device=dev)
    if pse is not None:
        dpse = (dbias * scale_value).sum_to_size(pse.shape).to(pse.dtype)
    dsink = torch.empty(0, dtype=query.dtype, device=dev)
    return (_from_bnsd(dq, input_layout), _from_bnsd(dk, input_layout),
            _from_bnsd(dv, input_layout), dpse, dsink)
