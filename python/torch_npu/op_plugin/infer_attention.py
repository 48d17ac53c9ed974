"""Inference attention: npu_prompt_flash_attention (full prefill), npu_incre_flash_attention
(decoding), npu_fused_infer_attention_score (both, with the log-sum-exp):

    out = softmax(scale * q kᵀ + pse_shift, hidden positions excluded) · v

with layouts BSH, BSND, BNSD (and BNSD_BSND: BNSD in, BSND out), grouped key/value heads
(num_key_value_heads), per-batch valid lengths, and masks: atten_mask (True/1 hides a score),
sparse modes 0 (atten_mask plus the pre/next-token band), 1 (atten_mask alone), 2 (causal from
the top-left), 3 (causal from the bottom-right), 4 (band around the bottom-right diagonal). Rows
that see no key give zeros. Computed in float32; the quantized and paged-cache forms raise
NotImplementedError."""
import torch

from ..fusion_attention import _from_bnsd, _to_bnsd
from ._registry import composite

_BIG = 2147483647


def _unsupported(op, **args):
    given = [name for name, value in args.items() if value is not None]
    if given:
        raise NotImplementedError(f"{op}: {', '.join(given)} (quantized or paged attention) not supported yet")


def _heads(t, layout, heads, op):
    """(B, N, S, D) from one of torch_npu's layouts (BNSD_BSND reads as BNSD)."""
    if layout == "TND":
        raise NotImplementedError(f"{op}: input_layout TND is not supported yet")
    if layout not in ("BSH", "BSND", "BNSD", "BNSD_BSND"):
        raise RuntimeError(f"{op}: input_layout must be BSH, BSND, BNSD or BNSD_BSND, got {layout!r}")
    return _to_bnsd(t, "BNSD" if layout == "BNSD_BSND" else layout, heads, op)


def _out_layout(o, layout):
    """The output in the layout's output form (BNSD_BSND writes BSND)."""
    return _from_bnsd(o, "BSND" if layout == "BNSD_BSND" else layout)


def _lengths(values, batch, full, op, what):
    if values is None:
        return [full] * batch
    values = [int(v) for v in values]
    if len(values) == 1:
        values = values * batch
    if len(values) < batch or any(not 0 <= v <= full for v in values[:batch]):
        raise RuntimeError(f"{op}: {what} {values} do not fit {batch} batches of length {full}")
    return values[:batch]


def _mask4(mask, b, s1, s2):
    m = mask.to(torch.bool)
    if m.dim() == 2 and tuple(m.shape) != (s1, s2):
        m = m.reshape(m.shape[0], 1, 1, -1)  # (B, S2) for decoding
    elif m.dim() == 3:
        m = m.unsqueeze(1)
    return m[..., :s1, :s2]


def _attention(op, query, key, value, pse_shift, atten_mask, q_lens, kv_lens, num_heads, num_key_value_heads, scale,
               pre_tokens, next_tokens, input_layout, sparse_mode):
    if sparse_mode not in (0, 1, 2, 3, 4):
        raise NotImplementedError(f"{op}: sparse_mode {sparse_mode} is not supported (0-4 are)")
    q = _heads(query, input_layout, num_heads, op).float()
    d = q.shape[-1]
    kv_heads = num_key_value_heads or num_heads
    if input_layout == "BSH":
        kv_heads = key.shape[-1] // d
    k = _heads(key, input_layout, kv_heads, op).float()
    v = _heads(value, input_layout, kv_heads, op).float()
    b, n, s1, _ = q.shape
    nk, s2 = k.shape[1], k.shape[2]
    if n % nk:
        raise RuntimeError(f"{op}: {n} query heads are not a multiple of {nk} key/value heads")
    k, v = k.repeat_interleave(n // nk, 1), v.repeat_interleave(n // nk, 1)
    scores = scale * (q @ k.transpose(-1, -2))
    if pse_shift is not None:
        scores = scores + pse_shift.float()
    q_len = torch.tensor(_lengths(q_lens, b, s1, op, "actual_seq_lengths"), device=q.device).view(b, 1, 1, 1)
    kv_len = torch.tensor(_lengths(kv_lens, b, s2, op, "actual_seq_lengths_kv"), device=q.device).view(b, 1, 1, 1)
    i = torch.arange(s1, device=q.device).view(1, 1, s1, 1)
    j = torch.arange(s2, device=q.device).view(1, 1, 1, s2)
    hidden = j >= kv_len
    if sparse_mode in (0, 1) and atten_mask is not None:
        hidden = hidden | _mask4(atten_mask, b, s1, s2)
        if sparse_mode == 0:
            hidden = hidden | (j - i > next_tokens) | (i - j > pre_tokens)
    elif sparse_mode == 2:
        hidden = hidden | (j > i)
    elif sparse_mode == 3:
        hidden = hidden | (j > i + (kv_len - q_len))
    elif sparse_mode == 4:
        rel = j - i - (kv_len - q_len)
        hidden = hidden | (rel > next_tokens) | (rel < -pre_tokens)
    scores = scores.masked_fill(hidden, float("-inf"))
    lse = torch.logsumexp(scores, -1, keepdim=True)
    probs = torch.exp(scores - lse).nan_to_num(0.0)  # rows seeing no key: zeros
    out = (probs @ v).masked_fill(i >= q_len, 0.0)
    return _out_layout(out.to(query.dtype), input_layout), lse


@composite("npu_prompt_flash_attention(Tensor query, Tensor key, Tensor value, *, Tensor? pse_shift=None, "
           "Tensor? padding_mask=None, Tensor? atten_mask=None, int[]? actual_seq_lengths=None, "
           "Tensor? deq_scale1=None, Tensor? quant_scale1=None, Tensor? deq_scale2=None, Tensor? quant_scale2=None, "
           "Tensor? quant_offset2=None, int num_heads=1, float scale_value=1.0, int pre_tokens=2147483647, "
           "int next_tokens=0, str input_layout=\"BSH\", int num_key_value_heads=0, "
           "int[]? actual_seq_lengths_kv=None, int sparse_mode=0) -> Tensor")
def npu_prompt_flash_attention(query, key, value, pse_shift=None, padding_mask=None, atten_mask=None,
                               actual_seq_lengths=None, deq_scale1=None, quant_scale1=None, deq_scale2=None,
                               quant_scale2=None, quant_offset2=None, num_heads=1, scale_value=1.0, pre_tokens=_BIG,
                               next_tokens=0, input_layout="BSH", num_key_value_heads=0, actual_seq_lengths_kv=None,
                               sparse_mode=0):
    op = "npu_prompt_flash_attention"
    _unsupported(op, deq_scale1=deq_scale1, quant_scale1=quant_scale1, deq_scale2=deq_scale2,
                 quant_scale2=quant_scale2, quant_offset2=quant_offset2)
    return _attention(op, query, key, value, pse_shift, atten_mask, actual_seq_lengths, actual_seq_lengths_kv,
                      num_heads, num_key_value_heads, scale_value, pre_tokens, next_tokens, input_layout,
                      sparse_mode)[0]


@composite("npu_incre_flash_attention(Tensor query, Tensor key, Tensor value, *, Tensor? padding_mask=None, "
           "Tensor? pse_shift=None, Tensor? atten_mask=None, SymInt[]? actual_seq_lengths=None, "
           "Tensor? dequant_scale1=None, Tensor? quant_scale1=None, Tensor? dequant_scale2=None, "
           "Tensor? quant_scale2=None, Tensor? quant_offset2=None, Tensor? antiquant_scale=None, "
           "Tensor? antiquant_offset=None, Tensor? block_table=None, Tensor? kv_padding_size=None, int num_heads=1, "
           "float scale_value=1.0, str input_layout=\"BSH\", int num_key_value_heads=0, int block_size=0, "
           "int inner_precise=1) -> Tensor")
def npu_incre_flash_attention(query, key, value, padding_mask=None, pse_shift=None, atten_mask=None,
                              actual_seq_lengths=None, dequant_scale1=None, quant_scale1=None, dequant_scale2=None,
                              quant_scale2=None, quant_offset2=None, antiquant_scale=None, antiquant_offset=None,
                              block_table=None, kv_padding_size=None, num_heads=1, scale_value=1.0,
                              input_layout="BSH", num_key_value_heads=0, block_size=0, inner_precise=1):
    """Decoding: actual_seq_lengths are the key/value lengths of each batch."""
    op = "npu_incre_flash_attention"
    _unsupported(op, dequant_scale1=dequant_scale1, quant_scale1=quant_scale1, dequant_scale2=dequant_scale2,
                 quant_scale2=quant_scale2, quant_offset2=quant_offset2, antiquant_scale=antiquant_scale,
                 antiquant_offset=antiquant_offset, block_table=block_table, kv_padding_size=kv_padding_size)
    return _attention(op, query, key, value, pse_shift, atten_mask, None, actual_seq_lengths, num_heads,
                      num_key_value_heads, scale_value, _BIG, _BIG, input_layout, 1)[0]


@composite("npu_fused_infer_attention_score(Tensor query, Tensor key, Tensor value, *, Tensor? pse_shift=None, "
           "Tensor? atten_mask=None, SymInt[]? actual_seq_lengths=None, SymInt[]? actual_seq_lengths_kv=None, "
           "Tensor? dequant_scale1=None, Tensor? quant_scale1=None, Tensor? dequant_scale2=None, "
           "Tensor? quant_scale2=None, Tensor? quant_offset2=None, Tensor? antiquant_scale=None, "
           "Tensor? antiquant_offset=None, Tensor? block_table=None, Tensor? query_padding_size=None, "
           "Tensor? kv_padding_size=None, Tensor? key_antiquant_scale=None, Tensor? key_antiquant_offset=None, "
           "Tensor? value_antiquant_scale=None, Tensor? value_antiquant_offset=None, Tensor? key_shared_prefix=None, "
           "Tensor? value_shared_prefix=None, Tensor? actual_shared_prefix_len=None, Tensor? query_rope=None, "
           "Tensor? key_rope=None, Tensor? key_rope_antiquant_scale=None, int num_heads=1, float scale=1.0, "
           "int pre_tokens=2147483647, int next_tokens=2147483647, str input_layout=\"BSH\", "
           "int num_key_value_heads=0, int sparse_mode=0, int inner_precise=0, int block_size=0, "
           "int antiquant_mode=0, bool softmax_lse_flag=False, int key_antiquant_mode=0, "
           "int value_antiquant_mode=0) -> (Tensor, Tensor)")
def npu_fused_infer_attention_score(query, key, value, pse_shift=None, atten_mask=None, actual_seq_lengths=None,
                                    actual_seq_lengths_kv=None, dequant_scale1=None, quant_scale1=None,
                                    dequant_scale2=None, quant_scale2=None, quant_offset2=None, antiquant_scale=None,
                                    antiquant_offset=None, block_table=None, query_padding_size=None,
                                    kv_padding_size=None, key_antiquant_scale=None, key_antiquant_offset=None,
                                    value_antiquant_scale=None, value_antiquant_offset=None, key_shared_prefix=None,
                                    value_shared_prefix=None, actual_shared_prefix_len=None, query_rope=None,
                                    key_rope=None, key_rope_antiquant_scale=None, num_heads=1, scale=1.0,
                                    pre_tokens=_BIG, next_tokens=_BIG, input_layout="BSH", num_key_value_heads=0,
                                    sparse_mode=0, inner_precise=0, block_size=0, antiquant_mode=0,
                                    softmax_lse_flag=False, key_antiquant_mode=0, value_antiquant_mode=0):
    """(attention_out, softmax_lse): the log-sum-exp of the scaled, masked scores as (B, N, S, 1)
    float32 with softmax_lse_flag, else a one-element zero."""
    op = "npu_fused_infer_attention_score"
    _unsupported(op, dequant_scale1=dequant_scale1, quant_scale1=quant_scale1, dequant_scale2=dequant_scale2,
                 quant_scale2=quant_scale2, quant_offset2=quant_offset2, antiquant_scale=antiquant_scale,
                 antiquant_offset=antiquant_offset, block_table=block_table, query_padding_size=query_padding_size,
                 kv_padding_size=kv_padding_size, key_antiquant_scale=key_antiquant_scale,
                 key_antiquant_offset=key_antiquant_offset, value_antiquant_scale=value_antiquant_scale,
                 value_antiquant_offset=value_antiquant_offset, key_shared_prefix=key_shared_prefix,
                 value_shared_prefix=value_shared_prefix, actual_shared_prefix_len=actual_shared_prefix_len,
                 query_rope=query_rope, key_rope=key_rope, key_rope_antiquant_scale=key_rope_antiquant_scale)
    out, lse = _attention(op, query, key, value, pse_shift, atten_mask, actual_seq_lengths, actual_seq_lengths_kv,
                          num_heads, num_key_value_heads, scale, pre_tokens, next_tokens, input_layout, sparse_mode)
    if not softmax_lse_flag:
        lse = torch.zeros(1, dtype=torch.float32, device=query.device)
    return out, lse
