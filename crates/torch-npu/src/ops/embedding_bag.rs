//! _embedding_bag (and _forward_only), its dense weight gradient and the gradient of the
//! per-sample weights. (The sparse gradient, `sparse=True`, is left to the CPU fallback.)
use npu_kernels::{BagMode, BagSpec, DType};

use super::{common_device, launch, Ctx, Tensor};
use crate::status::{Error, Result};

fn bag_mode(op: &str, mode: i64) -> Result<BagMode> {
    match mode {
        0 => Ok(BagMode::Sum),
        1 => Ok(BagMode::Mean),
        2 => Ok(BagMode::Max),
        m => Err(Error::runtime(format!("{op}: mode has to be one of sum, mean or max, got {m}"))),
    }
}

fn check_index(op: &str, t: &Tensor, what: &str) -> Result<()> {
    if t.sizes().len() != 1 || !matches!(t.dtype(), DType::I64 | DType::I32) {
        return Err(Error::runtime(format!("{op}: {what} must be a 1-d int64 or int32 tensor, got {:?} {}", t.sizes(), t.dtype().name())));
    }
    Ok(())
}

/// (weight, indices, offsets, scale_grad_by_freq, mode, sparse, per_sample_weights,
/// include_last_offset, padding_idx) -> (output, offset2bag, bag_size, max_indices).
fn forward(ctx: &Ctx) -> Result<()> {
    let op = ctx.op;
    let (weight, indices, offsets) = (ctx.tensor(0)?, ctx.tensor(1)?, ctx.tensor(2)?);
    let mode = bag_mode(&op, ctx.int(4))?;
    let psw = ctx.opt_tensor(6)?;
    let (include_last_offset, padding_idx) = (ctx.bool(7), ctx.int(8));
    let device = common_device(&op, &[&weight, &indices, &offsets].into_iter().chain(psw.as_ref()).collect::<Vec<_>>())?;
    check_index(&op, &indices, "indices")?;
    check_index(&op, &offsets, "offsets")?;
    if weight.sizes().len() != 2 || !weight.dtype().is_floating() {
        return Err(Error::runtime(format!("{op}: weight must be a 2-d float tensor, got {:?} {}", weight.sizes(), weight.dtype().name())));
    }
    if let Some(p) = &psw {
        if mode != BagMode::Sum {
            return Err(Error::runtime(format!("{op}: per_sample_weights was not None. per_sample_weights is only supported for mode='sum'")));
        }
        if p.dtype() != weight.dtype() || p.sizes() != indices.sizes() {
            return Err(Error::runtime(format!("{op}: per_sample_weights must have the weight's dtype and one value per index, got {:?} {}", p.sizes(), p.dtype().name())));
        }
    }
    if include_last_offset && offsets.sizes()[0] < 1 {
        return Err(Error::runtime(format!("{op}: include_last_offset: number of offsets should be at least 1")));
    }
    let bags = offsets.sizes()[0] - include_last_offset as i64;
    let (n, dim) = (indices.sizes()[0], weight.sizes()[1]);
    let out = ctx.new_output(&[bags, dim], None, weight.dtype(), device)?;
    let offset2bag = ctx.new_output(&[n], None, DType::I64, device)?;
    let bag_size = ctx.new_output(&[bags], None, DType::I64, device)?;
    let max_sizes = if mode == BagMode::Max { vec![bags, dim] } else { vec![bags] };
    let max_indices = ctx.new_output(&max_sizes, None, DType::I64, device)?;
    let spec = BagSpec { mode, padding_idx: (padding_idx >= 0).then_some(padding_idx), include_last_offset };
    let views = [out.view, offset2bag.view, bag_size.view, max_indices.view, weight.view, indices.view, offsets.view];
    let pv = psw.map(|p| p.view);
    launch(&op, device, move || {
        let [o, ob, bs, mi, w, i, of] = &views;
        npu_kernels::embedding_bag(o, ob, bs, mi, w, i, of, pv.as_ref(), spec).map_err(|e| e.0)
    })
}

/// _embedding_bag_dense_backward(grad, indices, offset2bag, bag_size, maximum_indices,
/// num_weights, scale_grad_by_freq, mode, per_sample_weights, padding_idx), or (`with_offsets`)
/// _embedding_bag_backward(grad, indices, offsets, offset2bag, bag_size, maximum_indices,
/// num_weights, scale_grad_by_freq, mode, sparse, per_sample_weights, padding_idx).
fn dense_backward(ctx: &Ctx, with_offsets: bool) -> Result<()> {
    let op = ctx.op;
    let k = with_offsets as usize; // arguments after `indices` shift by one
    let (grad, indices, offset2bag, bag_size, max_indices) = (ctx.tensor(0)?, ctx.tensor(1)?, ctx.tensor(2 + k)?, ctx.tensor(3 + k)?, ctx.tensor(4 + k)?);
    let (num_weights, by_freq, mode) = (ctx.int(5 + k), ctx.bool(6 + k), bag_mode(&op, ctx.int(7 + k))?);
    if with_offsets && ctx.bool(9) {
        return Err(Error::use_fallback("sparse embedding_bag gradient"));
    }
    let psw = ctx.opt_tensor(8 + 2 * k)?;
    let padding_idx = ctx.int(9 + 2 * k);
    let device = common_device(&op, &[&grad, &indices, &offset2bag, &bag_size, &max_indices].into_iter().chain(psw.as_ref()).collect::<Vec<_>>())?;
    if grad.sizes().len() != 2 || !grad.dtype().is_floating() {
        return Err(Error::runtime(format!("{op}: grad must be a 2-d float tensor, got {:?}", grad.sizes())));
    }
    // the npu forward always fills offset2bag (PyTorch CPU's sum fast path leaves it empty)
    if offset2bag.sizes() != indices.sizes() {
        return Err(Error::runtime(format!("{op}: offset2bag must have one entry per index, got {:?} for {:?}", offset2bag.sizes(), indices.sizes())));
    }
    let out = ctx.new_output(&[num_weights, grad.sizes()[1]], None, grad.dtype(), device)?;
    let views = [out.view, grad.view, indices.view, offset2bag.view, bag_size.view, max_indices.view];
    let pv = psw.map(|p| p.view);
    let pad = (padding_idx >= 0).then_some(padding_idx);
    launch(&op, device, move || {
        let [o, g, i, ob, bs, mi] = &views;
        npu_kernels::embedding_bag_backward(o, g, i, ob, bs, mi, pv.as_ref(), mode, pad, by_freq).map_err(|e| e.0)
    })
}

/// (grad, weight, indices, offsets, offset2bag, mode, padding_idx) -> grad_per_sample_weights.
fn psw_backward(ctx: &Ctx) -> Result<()> {
    let op = ctx.op;
    let (grad, weight, indices, offsets) = (ctx.tensor(0)?, ctx.tensor(1)?, ctx.tensor(2)?, ctx.tensor(3)?);
    let (mode, padding_idx) = (bag_mode(&op, ctx.int(5))?, ctx.int(6));
    let device = common_device(&op, &[&grad, &weight, &indices, &offsets])?;
    if mode != BagMode::Sum {
        return Err(Error::runtime(format!("{op}: embedding_bag_backward: per_sample_weights only supported for mode='sum'")));
    }
    check_index(&op, &indices, "indices")?;
    check_index(&op, &offsets, "offsets")?;
    if grad.sizes().len() != 2 {
        return Err(Error::runtime(format!("{op}: grad must be 2-d, got {:?}", grad.sizes())));
    }
    // one more offset than bags: the last offset closes the last bag (include_last_offset)
    let include_last = offsets.sizes()[0] == grad.sizes()[0] + 1;
    let out = ctx.new_output(indices.sizes(), None, weight.dtype(), device)?;
    let views = [out.view, grad.view, weight.view, indices.view, offsets.view];
    let pad = (padding_idx >= 0).then_some(padding_idx);
    launch(&op, device, move || {
        let [o, g, w, i, of] = &views;
        npu_kernels::embedding_bag_psw_backward(o, g, w, i, of, pad, include_last).map_err(|e| e.0)
    })
}

pub const OPS: &[(&str, fn(&Ctx) -> Result<()>)] = &[
    ("_embedding_bag", forward),
    ("_embedding_bag_forward_only", forward),
    ("_embedding_bag_dense_backward", |c| dense_backward(c, false)),
    ("_embedding_bag_backward", |c| dense_backward(c, true)),
    ("_embedding_bag_per_sample_weights_backward", psw_backward),
];
