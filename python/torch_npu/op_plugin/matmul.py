"""Grouped and quantized matmuls: npu_grouped_matmul, npu_quant_matmul,
npu_weight_quant_batchmatmul."""
import torch

from ._registry import _LIB, EXPORTED, _recompute_autograd, composite


def _group_sizes(group_list, group_list_type, rows):
    """Rows per group from torch_npu's group_list: cumulative ends (type 0) or sizes (type 1)."""
    values = group_list.tolist() if isinstance(group_list, torch.Tensor) else list(group_list)
    sizes = values if group_list_type == 1 else [b - a for a, b in zip([0] + values[:-1], values)]
    if any(s < 0 for s in sizes) or sum(sizes) > rows:
        raise RuntimeError(f"npu_grouped_matmul: group_list {values} does not split {rows} rows")
    return sizes


def _grouped_matmul(x, weight, bias=None, scale=None, offset=None, antiquant_scale=None, antiquant_offset=None,
                    per_token_scale=None, group_list=None, activation_input=None, activation_quant_scale=None,
                    activation_quant_offset=None, split_item=0, group_type=None, group_list_type=0, act_type=0,
                    output_dtype=None):
    if any(a is not None for a in (scale, offset, antiquant_scale, antiquant_offset, per_token_scale, activation_input,
                                   activation_quant_scale, activation_quant_offset)):
        raise NotImplementedError("npu_grouped_matmul: the quantized forms (scale, offset, antiquant_*, "
                                  "per_token_scale, activation_*) are not supported yet")
    if act_type not in (0, None):
        raise NotImplementedError(f"npu_grouped_matmul: act_type {act_type} is not supported yet (0: none)")
    if group_type not in (None, -1, 0):
        raise NotImplementedError(f"npu_grouped_matmul: group_type {group_type} is not supported (-1 or 0: m axis)")
    weights = list(weight[0].unbind(0)) if len(weight) == 1 and weight[0].dim() == 3 else list(weight)
    biases = None
    if bias is not None:
        biases = list(bias[0].unbind(0)) if len(bias) == 1 and bias[0].dim() == 2 else list(bias)
        if len(biases) != len(weights):
            raise RuntimeError(f"npu_grouped_matmul: {len(biases)} biases for {len(weights)} weights")
    rest = None
    if group_list is not None and group_type != -1:
        # one x split by rows into the groups; rows past the last group give zeros
        xs = torch.cat(list(x)) if len(x) > 1 else x[0]
        sizes = _group_sizes(group_list, group_list_type, xs.shape[0])
        if len(sizes) != len(weights):
            raise RuntimeError(f"npu_grouped_matmul: group_list has {len(sizes)} groups for {len(weights)} weights")
        rest = xs.shape[0] - sum(sizes)
        xs = list(xs[:sum(sizes)].split(sizes))
    else:
        xs = list(x)
        if len(xs) == 1 and len(weights) > 1:
            xs = xs * len(weights)
        if len(xs) != len(weights):
            raise RuntimeError(f"npu_grouped_matmul: {len(xs)} inputs for {len(weights)} weights")
    ys = []
    for i, (xi, wi) in enumerate(zip(xs, weights)):
        yi = torch.matmul(xi, wi)
        if biases is not None:
            yi = yi + biases[i].to(yi.dtype)
        ys.append(yi.to(output_dtype) if output_dtype is not None else yi)
    if split_item in (2, 3):
        if rest:
            ys.append(ys[0].new_zeros((rest,) + tuple(ys[0].shape[1:])))
        return [torch.cat(ys)]
    return ys


def _grouped_matmul_fake(x, weight, bias=None, scale=None, offset=None, antiquant_scale=None, antiquant_offset=None,
                         per_token_scale=None, group_list=None, activation_input=None, activation_quant_scale=None,
                         activation_quant_offset=None, split_item=0, group_type=None, group_list_type=0, act_type=0,
                         output_dtype=None):
    weights = list(weight[0].unbind(0)) if len(weight) == 1 and weight[0].dim() == 3 else list(weight)
    dtype = output_dtype or x[0].dtype
    if group_list is not None and group_type != -1:
        rows = sum(t.shape[0] for t in x)
        n = weights[0].shape[-1]
        if split_item in (2, 3):
            return [x[0].new_empty((rows, n), dtype=dtype)]
        if isinstance(group_list, torch.Tensor):
            sizes = [torch.library.get_ctx().new_dynamic_size() for _ in weights]
        else:
            sizes = _group_sizes(group_list, group_list_type, rows)
        return [x[0].new_empty((m, w.shape[-1]), dtype=dtype) for m, w in zip(sizes, weights)]
    xs = list(x) * len(weights) if len(x) == 1 and len(weights) > 1 else list(x)
    ys = [xi.new_empty(tuple(xi.shape[:-1]) + (wi.shape[-1],), dtype=dtype) for xi, wi in zip(xs, weights)]
    return [torch.cat(ys)] if split_item in (2, 3) else ys


# (torch_npu's schema makes these keyword-only; register_autograd needs them positional.)
_SCHEMA_TAIL = ("Tensor[]? bias=None, Tensor[]? scale=None, Tensor[]? offset=None, Tensor[]? antiquant_scale=None, "
                "Tensor[]? antiquant_offset=None, Tensor[]? per_token_scale=None, {group_list}, "
                "Tensor[]? activation_input=None, Tensor[]? activation_quant_scale=None, "
                "Tensor[]? activation_quant_offset=None, int? split_item=0, int? group_type=None, "
                "int? group_list_type=0, int? act_type=0, ScalarType? output_dtype=None) -> Tensor[]")
# Group sizes are read on the host, so the op is opaque to tracing: a fake kernel gives the
# shapes, and gradients (x, weight, bias) come from running it again under autograd.
for _overload, _group_list in (("", "Tensor? group_list=None"), (".List", "int[]? group_list=None")):
    _LIB.define(f"npu_grouped_matmul{_overload}(Tensor[] x, Tensor[] weight, "
                + _SCHEMA_TAIL.format(group_list=_group_list))
    _name = f"npu::npu_grouped_matmul{_overload}"
    torch.library.impl(_name, "PrivateUse1")(_grouped_matmul)
    torch.library.register_fake(_name)(_grouped_matmul_fake)
    _recompute_autograd(_name, _grouped_matmul, (0, 1, 2))


def npu_grouped_matmul(x, weight, **kwargs):
    """y_i = x_i @ weight_i + bias_i per group; groups are list entries, or rows of x split by
    group_list (cumulative ends, or sizes with group_list_type=1). split_item 2/3 returns one
    tensor of all groups' rows."""
    group_list = kwargs.get("group_list")
    if isinstance(group_list, (list, tuple)):
        return torch.ops.npu.npu_grouped_matmul.List(x, weight, **kwargs)
    return torch.ops.npu.npu_grouped_matmul(x, weight, **kwargs)


EXPORTED["npu_grouped_matmul"] = npu_grouped_matmul


@composite("npu_quant_matmul(Tensor x1, Tensor x2, Tensor scale, *, Tensor? offset=None, Tensor? pertoken_scale=None, "
           "Tensor? bias=None, ScalarType? output_dtype=None) -> Tensor")
def npu_quant_matmul(x1, x2, scale, offset=None, pertoken_scale=None, bias=None, output_dtype=None):
    """int8 x1 @ x2 accumulated exactly (int32 range), + bias, * scale per output channel (and
    * pertoken_scale per row), then + offset, rounded and saturated for int8 output."""
    if x1.dtype != torch.int8 or x2.dtype != torch.int8:
        raise NotImplementedError(f"npu_quant_matmul: int8 inputs are supported, got {x1.dtype} and {x2.dtype} "
                                  "(packed int4 is not)")
    if scale.dtype == torch.int64:
        raise NotImplementedError("npu_quant_matmul: int64 scales (npu_trans_quant_param) are not supported; "
                                  "pass the float32 scale")
    out_dtype = output_dtype or torch.int8
    # int8 products summed in float64 are exact for any realistic k (|sum| < 2^53)
    acc = torch.matmul(x1.double(), x2.double())
    if bias is not None:
        acc = acc + bias.double()
    if out_dtype == torch.int32:
        return acc.to(torch.int32)
    acc = acc * scale.double()
    if pertoken_scale is not None:
        acc = acc * pertoken_scale.double().unsqueeze(-1)
    if out_dtype == torch.int8:
        if offset is not None:
            acc = acc + offset.double()
        return torch.round(acc).clamp(-128, 127).to(torch.int8)
    return acc.to(out_dtype)


@composite("npu_weight_quant_batchmatmul(Tensor x, Tensor weight, Tensor antiquant_scale, Tensor? antiquant_offset=None, "
           "Tensor? quant_scale=None, Tensor? quant_offset=None, Tensor? bias=None, int antiquant_group_size=0, "
           "int inner_precise=0) -> Tensor")
def npu_weight_quant_batchmatmul(x, weight, antiquant_scale, antiquant_offset=None, quant_scale=None, quant_offset=None,
                                 bias=None, antiquant_group_size=0, inner_precise=0):
    """x @ ((weight + antiquant_offset) * antiquant_scale) + bias, the scale per tensor, per
    output channel, or per group of antiquant_group_size rows of weight (k)."""
    if quant_scale is not None or quant_offset is not None:
        raise NotImplementedError("npu_weight_quant_batchmatmul: quantized outputs (quant_scale) are not supported yet")
    if weight.dtype != torch.int8:
        raise NotImplementedError(f"npu_weight_quant_batchmatmul: int8 weights are supported, got {weight.dtype}")
    w = weight.float()
    k = w.shape[-2]

    def per_k(t):
        t = t.float()
        if antiquant_group_size > 0:  # (groups, n): each row covers group_size rows of k
            return t.repeat_interleave(antiquant_group_size, dim=-2)[..., :k, :]
        return t

    if antiquant_offset is not None:
        w = w + per_k(antiquant_offset)
    w = (w * per_k(antiquant_scale)).to(x.dtype)
    y = torch.matmul(x, w)
    if bias is not None:
        y = y + bias.to(y.dtype)
    return y
