//! sort (stable or not: always stable here, which PyTorch allows) and topk, functional and out=.
use npu_kernels::DType;

use super::softmax::wrap_dim;
use super::{common_device, launch, Ctx, Tensor};
use crate::status::{Error, Result};

/// The two outputs: new tensors, or the `values`/`indices` out= arguments resized.
fn outputs(ctx: &Ctx, out_args: bool, sizes: &[i64], dtype: DType, device: i32) -> Result<(Tensor, Tensor)> {
    if !out_args {
        return Ok((ctx.new_output(sizes, None, dtype, device)?, ctx.new_output(sizes, None, DType::I64, device)?));
    }
    let (vi, ii) = (ctx.nargs() - 2, ctx.nargs() - 1);
    let (v, i) = (ctx.tensor(vi)?, ctx.tensor(ii)?);
    common_device(ctx.op, &[&v, &i])?;
    if v.dtype() != dtype || i.dtype() != DType::I64 {
        return Err(Error::runtime(format!(
            "{}: expected values of dtype {} and indices of dtype int64, got {} and {}",
            ctx.op, dtype.name(), v.dtype().name(), i.dtype().name()
        )));
    }
    let (v, i) = (ctx.resize_arg(vi, sizes)?, ctx.resize_arg(ii, sizes)?);
    ctx.return_arg(vi);
    ctx.return_arg(ii);
    Ok((v, i))
}

fn checked_input(ctx: &Ctx) -> Result<(Tensor, i32)> {
    let x = ctx.tensor(0)?;
    let device = common_device(ctx.op, &[&x])?;
    if x.dtype().is_complex() {
        return Err(Error::use_fallback("complex input"));
    }
    Ok((x, device))
}

/// sort / sort.values (dim at 1, descending at 2) and sort.stable / sort.values_stable
/// (stable at 1, dim at 2, descending at 3).
fn sort(ctx: &Ctx, stable_overload: bool, out_args: bool) -> Result<()> {
    let op = ctx.op;
    let (x, device) = checked_input(ctx)?;
    let base = if stable_overload { 2 } else { 1 };
    let dim = wrap_dim(&op, ctx.int(base), x.sizes().len())?;
    let descending = ctx.bool(base + 1);
    let (v, i) = outputs(ctx, out_args, x.sizes(), x.dtype(), device)?;
    let (vv, iv, src) = (v.view, i.view, x.view);
    launch(&op, device, move || npu_kernels::sort(&vv, &iv, &src, dim, descending).map_err(|e| e.0))
}

/// topk(self, k, dim=-1, largest=True, sorted=True) and topk.values.
fn topk(ctx: &Ctx, out_args: bool) -> Result<()> {
    let op = ctx.op;
    let (x, device) = checked_input(ctx)?;
    let dim = wrap_dim(&op, ctx.int(2), x.sizes().len())?;
    let k = ctx.int(1);
    let n = x.sizes().get(dim).copied().unwrap_or(1);
    if k < 0 || k > n {
        return Err(Error::runtime(format!("{op}: selected index k out of range")));
    }
    let mut sizes = x.sizes().to_vec();
    if !sizes.is_empty() {
        sizes[dim] = k;
    }
    let largest = ctx.bool(3);
    let (v, i) = outputs(ctx, out_args, &sizes, x.dtype(), device)?;
    let (vv, iv, src) = (v.view, i.view, x.view);
    launch(&op, device, move || npu_kernels::topk(&vv, &iv, &src, k as usize, dim, largest).map_err(|e| e.0))
}

pub const OPS: &[(&str, fn(&Ctx) -> Result<()>)] = &[
    ("sort", |c| sort(c, false, false)),
    ("sort.values", |c| sort(c, false, true)),
    ("sort.stable", |c| sort(c, true, false)),
    ("sort.values_stable", |c| sort(c, true, true)),
    ("topk", |c| topk(c, false)),
    ("topk.values", |c| topk(c, true)),
];
