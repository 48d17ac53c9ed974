"""Mixture-of-experts routing: npu_moe_gating_top_k_softmax, npu_moe_init_routing,
npu_moe_finalize_routing (inference ops: no gradients), with the formulas of torch_npu's
documentation."""
import torch

from ._registry import composite


@composite("npu_moe_gating_top_k_softmax(Tensor x, Tensor? finished=None, int k=1) -> (Tensor, Tensor, Tensor)")
def npu_moe_gating_top_k_softmax(x, finished=None, k=1):
    """(top-k of softmax(x), their expert indices, row_idx): row_idx[i, j] = j * rows + i over
    the flattened rows; finished rows get expert index E (the number of experts)."""
    if x.dim() not in (2, 3):
        raise RuntimeError(f"npu_moe_gating_top_k_softmax: x must have 2 or 3 dims, got shape {tuple(x.shape)}")
    experts = x.shape[-1]
    if not 0 < k <= experts:
        raise RuntimeError(f"npu_moe_gating_top_k_softmax: k must be in [1, {experts}], got {k}")
    probs = torch.softmax(x.float(), -1)
    y, idx = probs.topk(k, -1)
    idx = idx.to(torch.int32)
    if finished is not None:
        idx = torch.where(finished.unsqueeze(-1), torch.full_like(idx, experts), idx)
    rows = x.numel() // experts
    row_idx = torch.arange(rows * k, dtype=torch.int32, device=x.device).reshape(k, rows).t()
    return y.to(x.dtype), idx, row_idx.reshape(idx.shape)


@composite("npu_moe_init_routing(Tensor x, Tensor row_idx, Tensor expert_idx, int active_num) -> (Tensor, Tensor, Tensor)")
def npu_moe_init_routing(x, row_idx, expert_idx, active_num):
    """Sorts the (expert, row) pairs by expert (ties by row): expanded_x[i] =
    x[sorted_row[i] % rows] for the first min(rows, active_num) * k of them;
    expanded_row_idx[sorted_row[i]] = i; expanded_expert_idx = the sorted experts."""
    if x.dim() != 2 or expert_idx.dim() != 2 or row_idx.shape != expert_idx.shape:
        raise RuntimeError("npu_moe_init_routing: x must be (rows, H) and row_idx, expert_idx (rows, k) alike, got "
                           f"{tuple(x.shape)}, {tuple(row_idx.shape)}, {tuple(expert_idx.shape)}")
    rows, k = expert_idx.shape
    experts, rids = expert_idx.reshape(-1).long(), row_idx.reshape(-1).long()
    order = torch.argsort(experts * (rows * k) + rids, stable=True)
    sorted_rows = rids[order]
    expanded_row_idx = torch.empty(rows * k, dtype=torch.int32, device=x.device)
    expanded_row_idx[sorted_rows] = torch.arange(rows * k, dtype=torch.int32, device=x.device)
    active = min(rows, active_num) * k
    expanded_x = x[sorted_rows[:active] % rows]
    return expanded_x, expanded_row_idx, experts[order].to(torch.int32)


@composite("npu_moe_finalize_routing(Tensor expanded_permuted_rows, Tensor? skip1, Tensor? skip2, Tensor? bias, "
           "Tensor? scales, Tensor expanded_src_to_dst_row, Tensor? export_for_source_row, int? drop_pad_mode=0, "
           "int? k=1) -> Tensor")
def npu_moe_finalize_routing(expanded_permuted_rows, skip1, skip2, bias, scales, expanded_src_to_dst_row,
                             export_for_source_row, drop_pad_mode=0, k=1):
    """out[i] = skip1[i] + skip2[i] + sum_k scales[i, k] * (expanded[src_to_dst[i + k * rows]]
    + bias[expert[i, k]])."""
    if drop_pad_mode not in (0, None):
        raise NotImplementedError("npu_moe_finalize_routing: drop_pad_mode other than 0 is not supported")
    if skip2 is not None and skip1 is None:
        raise RuntimeError("npu_moe_finalize_routing: skip2 needs skip1")
    k = scales.shape[1] if scales is not None else (k or 1)
    rows = expanded_src_to_dst_row.numel() // k
    gathered = expanded_permuted_rows[expanded_src_to_dst_row.long()].float().reshape(k, rows, -1)
    if bias is not None:
        if export_for_source_row is None:
            raise RuntimeError("npu_moe_finalize_routing: bias needs export_for_source_row")
        gathered = gathered + bias.float()[export_for_source_row.long().t()]
    weights = scales.float().t().unsqueeze(-1) if scales is not None else torch.ones(k, rows, 1, device=gathered.device)
    out = (gathered * weights).sum(0)
    for skip in (skip1, skip2):
        if skip is not None:
            out = out + skip.float()
    return out.to(expanded_permuted_rows.dtype)
