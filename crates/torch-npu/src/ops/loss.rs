//! `nll_loss_forward` / `nll_loss2d_forward` and their backward ops (`F.nll_loss`,
//! `F.cross_entropy`).
use npu_kernels::{DType, Reduction, View};

use super::{common_device, launch, Ctx, Tensor};
use crate::status::{Error, Result};

/// The input as the kernel's `[N, C, S]` and the target as `[N, S]`.
fn kernel_views(op: &str, input: &Tensor, target: &Tensor, spatial: bool) -> Result<(View, View)> {
    let (x, t) = (&input.view, &target.view);
    let bad_batch = || {
        Error::value(format!(
            "{op}: Expected input batch_size ({}) to match target batch_size ({}).",
            x.sizes.first().copied().unwrap_or(1),
            t.sizes.first().copied().unwrap_or(1)
        ))
    };
    if spatial {
        if x.sizes.len() != 4 || t.sizes.len() != 3 {
            return Err(Error::runtime(format!(
                "{op}: only batches of spatial targets supported (3D tensors) but got targets of dimension: {}",
                t.sizes.len()
            )));
        }
        if t.sizes[0] != x.sizes[0] || t.sizes[1..] != x.sizes[2..] {
            return Err(Error::runtime(format!(
                "{op}: size mismatch (got input: {:?} , target: {:?}",
                x.sizes, t.sizes
            )));
        }
        // H and W must merge into one dim of the kernel's view.
        let mergeable = |v: &View| v.sizes[v.sizes.len() - 2] <= 1 || v.strides[v.sizes.len() - 2] == v.strides[v.sizes.len() - 1] * v.sizes[v.sizes.len() - 1];
        if !mergeable(x) || !mergeable(t) {
            return Err(Error::use_fallback("spatial dims that do not merge"));
        }
        let s = x.sizes[2] * x.sizes[3];
        let xv = View { sizes: vec![x.sizes[0], x.sizes[1], s], strides: vec![x.strides[0], x.strides[1], x.strides[3]], ..x.clone() };
        let tv = View { sizes: vec![t.sizes[0], s], strides: vec![t.strides[0], t.strides[2]], ..t.clone() };
        return Ok((xv, tv));
    }
    match (x.sizes.len(), t.sizes.len()) {
        (1, 0) => Ok((
            View { sizes: vec![1, x.sizes[0], 1], strides: vec![0, x.strides[0], 0], ..x.clone() },
            View { sizes: vec![1, 1], strides: vec![0, 0], ..t.clone() },
        )),
        (2, 1) => {
            if x.sizes[0] != t.sizes[0] {
                return Err(bad_batch());
            }
            Ok((
                View { sizes: vec![x.sizes[0], x.sizes[1], 1], strides: vec![x.strides[0], x.strides[1], 0], ..x.clone() },
                View { sizes: vec![t.sizes[0], 1], strides: vec![t.strides[0], 0], ..t.clone() },
            ))
        }
        (1 | 2, _) => Err(Error::runtime(format!(
            "{op}: 0D or 1D target tensor expected, multi-target not supported"
        ))),
        (r, _) => Err(Error::runtime(format!("{op}: input tensor should be 1D or 2D, got {r}D"))),
    }
}

fn common_checks(op: &str, input: &Tensor, target: &Tensor, weight: Option<&Tensor>) -> Result<i32> {
    let mut all = vec![input, target];
    all.extend(weight);
    let device = common_device(op, &all)?;
    if input.dtype().is_complex() {
        return Err(Error::use_fallback("complex input"));
    }
    if !input.dtype().is_floating() {
        return Err(Error::runtime(format!("{op}: \"nll_loss\" not implemented for '{}'", input.dtype().name())));
    }
    if !matches!(target.dtype(), DType::I64 | DType::U8) {
        return Err(Error::runtime(format!(
            "{op}: expected scalar type Long but found {}",
            target.dtype().name()
        )));
    }
    let classes = if input.sizes().len() == 1 { input.sizes()[0] } else { input.sizes()[1] };
    if let Some(w) = weight {
        if w.numel() as i64 != classes || w.sizes().len() != 1 {
            return Err(Error::runtime(format!(
                "{op}: weight tensor should be defined either for all {classes} classes or no classes but got weight tensor of shape: {:?}",
                w.sizes()
            )));
        }
        if w.dtype() != input.dtype() {
            return Err(Error::runtime(format!("{op}: expected weight to have dtype {}, got {}", input.dtype().name(), w.dtype().name())));
        }
    }
    Ok(device)
}

fn reduction(ctx: &Ctx, i: usize) -> Result<Reduction> {
    let r = ctx.int(i);
    Reduction::from_i64(r).ok_or_else(|| Error::value(format!("{}: {r} is not a valid value for reduction", ctx.op)))
}

/// nll_loss_forward(self, target, weight?, reduction, ignore_index) -> (output, total_weight)
fn forward(ctx: &Ctx, spatial: bool) -> Result<()> {
    let op = ctx.op;
    let (input, target, weight) = (ctx.tensor(0)?, ctx.tensor(1)?, ctx.opt_tensor(2)?);
    let device = common_checks(&op, &input, &target, weight.as_ref())?;
    let red = reduction(ctx, 3)?;
    let ignore = ctx.int(4);
    let (xv, tv) = kernel_views(&op, &input, &target, spatial)?;
    let out_sizes: Vec<i64> = match red {
        Reduction::None => target.sizes().to_vec(),
        _ => vec![],
    };
    let out = ctx.new_output(&out_sizes, None, input.dtype(), device)?;
    let tw = ctx.new_output(&[], None, input.dtype(), device)?;
    let n_s = [tv.sizes[0], tv.sizes[1]];
    let ov = match red {
        Reduction::None => View { sizes: n_s.to_vec(), strides: vec![tv.sizes[1], 1], ..out.view.clone() },
        _ => out.view.clone(),
    };
    let (twv, wv) = (tw.view.clone(), weight.map(|w| w.view));
    launch(&op, device, move || npu_kernels::nll_loss(&ov, &twv, &xv, &tv, wv.as_ref(), red, ignore).map_err(|e| e.0))
}

/// nll_loss_backward(grad_output, self, target, weight?, reduction, ignore_index, total_weight)
fn backward(ctx: &Ctx, spatial: bool) -> Result<()> {
    let op = ctx.op;
    let (go, input, target, weight) = (ctx.tensor(0)?, ctx.tensor(1)?, ctx.tensor(2)?, ctx.opt_tensor(3)?);
    let tw = ctx.tensor(6)?;
    let device = common_checks(&op, &input, &target, weight.as_ref())?;
    common_device(&op, &[&input, &go, &tw])?;
    let red = reduction(ctx, 4)?;
    let ignore = ctx.int(5);
    let (_, tv) = kernel_views(&op, &input, &target, spatial)?;
    let gi = ctx.new_output(input.sizes(), None, input.dtype(), device)?;
    let (gv, _) = kernel_views(&op, &gi, &target, spatial)?;
    let gov = match red {
        Reduction::None => {
            if go.sizes() != target.sizes() {
                return Err(Error::runtime(format!(
                    "{op}: Expected a tensor of dimension 1 and tensor.size[0] == {} but got: dimension {} and tensor.size[0] == {}",
                    target.sizes().first().copied().unwrap_or(1),
                    go.sizes().len(),
                    go.sizes().first().copied().unwrap_or(1)
                )));
            }
            let (_, gov) = kernel_views(&op, &input, &go, spatial).map_err(|_| Error::use_fallback("grad_output layout"))?;
            gov
        }
        _ => {
            if go.numel() != 1 {
                return Err(Error::runtime(format!("{op}: Expected a single element grad_output tensor, but got: {:?}", go.sizes())));
            }
            View { sizes: vec![], strides: vec![], ..go.view.clone() }
        }
    };
    let (twv, wv) = (tw.view.clone(), weight.map(|w| w.view));
    launch(&op, device, move || {
        npu_kernels::nll_loss_backward(&gv, &gov, &tv, wv.as_ref(), red, ignore, &twv).map_err(|e| e.0)
    })
}

pub const OPS: &[(&str, fn(&Ctx) -> Result<()>)] = &[
    ("nll_loss_forward", |c| forward(c, false)),
    ("nll_loss2d_forward", |c| forward(c, true)),
    ("nll_loss_backward", |c| backward(c, false)),
    ("nll_loss2d_backward", |c| backward(c, true)),
];
