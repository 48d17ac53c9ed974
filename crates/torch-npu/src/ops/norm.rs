//! `native_layer_norm`, `native_batch_norm` and their backward ops.
use npu_kernels::{DType, View};

use super::{common_device, launch, launch_sized, Ctx, Tensor};
use crate::status::{Error, Result};

fn floating(op: &str, t: &Tensor) -> Result<()> {
    if t.dtype().is_complex() {
        return Err(Error::use_fallback("complex input"));
    }
    if !t.dtype().is_floating() {
        return Err(Error::runtime(format!("{op}: expected a floating point input, got {}", t.dtype().name())));
    }
    Ok(())
}

/// Rows (M) and row length (N) of a layer norm over `normalized` trailing dims.
fn ln_geometry(op: &str, input: &Tensor, normalized: &[i64]) -> Result<(usize, usize, usize)> {
    let sizes = input.sizes();
    let k = normalized.len();
    if k == 0 || sizes.len() < k || sizes[sizes.len() - k..] != *normalized {
        return Err(Error::runtime(format!(
            "{op}: Given normalized_shape={normalized:?}, expected input with shape [*, {}], but got input of size{sizes:?}",
            normalized.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
        )));
    }
    let axis = sizes.len() - k;
    let m: i64 = sizes[..axis].iter().product();
    let n: i64 = normalized.iter().product();
    Ok((axis, m as usize, n as usize))
}

fn check_param(op: &str, name: &str, t: &Option<Tensor>, shape: &[i64]) -> Result<()> {
    if let Some(t) = t {
        if t.sizes() != shape {
            return Err(Error::runtime(format!(
                "{op}: Expected {name} to be of same shape as normalized_shape, but got {name} of shape {:?} and normalized_shape = {shape:?}",
                t.sizes()
            )));
        }
    }
    Ok(())
}

/// native_layer_norm(input, normalized_shape, weight?, bias?, eps) -> (out, mean, rstd)
fn layer_norm(ctx: &Ctx) -> Result<()> {
    let op = ctx.op;
    let input = ctx.tensor(0)?;
    let normalized = ctx.int_list(1)?;
    let (weight, bias) = (ctx.opt_tensor(2)?, ctx.opt_tensor(3)?);
    let eps = ctx.double(4);
    let mut all = vec![&input];
    all.extend([&weight, &bias].into_iter().flatten());
    let device = common_device(&op, &all)?;
    floating(&op, &input)?;
    let (axis, _m, n) = ln_geometry(&op, &input, &normalized)?;
    check_param(&op, "weight", &weight, &normalized)?;
    check_param(&op, "bias", &bias, &normalized)?;
    let stat_sizes: Vec<i64> = input.sizes()[..axis].iter().copied().chain(std::iter::repeat_n(1, normalized.len())).collect();
    let out = ctx.new_output(input.sizes(), None, input.dtype(), device)?;
    let mean = ctx.new_output(&stat_sizes, None, input.dtype(), device)?;
    let rstd = ctx.new_output(&stat_sizes, None, input.dtype(), device)?;
    let (o, mu, rs, x) = (out.view, mean.view, rstd.view, input.view);
    let (w, b) = (weight.map(|t| t.view), bias.map(|t| t.view));
    launch_sized(&op, device, x.numel(), move || {
        npu_kernels::layer_norm(&o, &mu, &rs, &x, w.as_ref(), b.as_ref(), n, eps).map_err(|e| e.0)
    })
}

/// Appends a new output of `sizes` when `wanted`, an undefined one otherwise.
fn grad_output(ctx: &Ctx, wanted: bool, sizes: &[i64], dtype: DType, device: i32) -> Result<Option<View>> {
    if wanted {
        Ok(Some(ctx.new_output(sizes, None, dtype, device)?.view))
    } else {
        ctx.return_undefined();
        Ok(None)
    }
}

/// The gradients a norm's backward was asked for (input's shape and dtype; per-channel ones in
/// the weight's dtype), or None when none was.
fn input_weight_bias_grads(ctx: &Ctx, mask: [bool; 3], input: &Tensor, w: Option<&Tensor>, c: i64, device: i32) -> Result<Option<[Option<View>; 3]>> {
    let pdtype = w.map_or(input.dtype(), |t| t.dtype());
    let gi = grad_output(ctx, mask[0], input.sizes(), input.dtype(), device)?;
    let gw = grad_output(ctx, mask[1], &[c], pdtype, device)?;
    let gb = grad_output(ctx, mask[2], &[c], pdtype, device)?;
    Ok((gi.is_some() || gw.is_some() || gb.is_some()).then_some([gi, gw, gb]))
}

fn mask3(ctx: &Ctx, i: usize) -> Result<[bool; 3]> {
    let m = ctx.bool_list(i)?;
    if m.len() != 3 {
        return Err(Error::runtime(format!("{}: output_mask must have 3 elements", ctx.op)));
    }
    Ok([m[0], m[1], m[2]])
}

/// native_layer_norm_backward(grad_out, input, normalized_shape, mean, rstd, weight?, bias?,
/// output_mask) -> (grad_input, grad_weight, grad_bias)
fn layer_norm_backward(ctx: &Ctx) -> Result<()> {
    let op = ctx.op;
    let (dy, input) = (ctx.tensor(0)?, ctx.tensor(1)?);
    let normalized = ctx.int_list(2)?;
    let (mean, rstd) = (ctx.tensor(3)?, ctx.tensor(4)?);
    let (weight, bias) = (ctx.opt_tensor(5)?, ctx.opt_tensor(6)?);
    let mask = mask3(ctx, 7)?;
    let mut all = vec![&dy, &input, &mean, &rstd];
    all.extend([&weight, &bias].into_iter().flatten());
    let device = common_device(&op, &all)?;
    floating(&op, &input)?;
    let (_, _, n) = ln_geometry(&op, &input, &normalized)?;
    let wdtype = weight.as_ref().map_or(input.dtype(), |w| w.dtype());
    let gi = grad_output(ctx, mask[0], input.sizes(), input.dtype(), device)?;
    let gw = grad_output(ctx, mask[1] && weight.is_some(), &normalized, wdtype, device)?;
    let gb = grad_output(ctx, mask[2] && bias.is_some(), &normalized, bias.as_ref().map_or(wdtype, |b| b.dtype()), device)?;
    if gi.is_none() && gw.is_none() && gb.is_none() {
        return Ok(());
    }
    let (dyv, xv, mv, rv, wv) = (dy.view, input.view, mean.view, rstd.view, weight.map(|t| t.view));
    launch(&op, device, move || {
        npu_kernels::layer_norm_backward(&dyv, &xv, &mv, &rv, wv.as_ref(), n, gi.as_ref(), gw.as_ref(), gb.as_ref())
            .map_err(|e| e.0)
    })
}

fn channels(op: &str, input: &Tensor, params: &[&Option<Tensor>]) -> Result<i64> {
    if input.sizes().len() < 2 {
        return Err(Error::value(format!("{op}: Expected 2D or more input (got {}D input)", input.sizes().len())));
    }
    let c = input.sizes()[1];
    for t in params.iter().filter_map(|t| t.as_ref()) {
        if t.numel() as i64 != c {
            return Err(Error::runtime(format!(
                "{op}: running_mean, running_var, weight and bias must have {c} elements (one per channel), got {:?}",
                t.sizes()
            )));
        }
    }
    Ok(c)
}

/// Where the batch-norm variants keep their arguments (all start with input, weight?, bias?).
struct BnArgs {
    /// running_mean and running_var positions (absent in `_native_batch_norm_legit.no_stats`)
    stats: Option<usize>,
    /// training: the position of the flag, or fixed by the variant
    training: std::result::Result<usize, bool>,
    momentum: usize,
    /// `_batch_norm_with_update` / `_no_update` also return an empty reserve tensor
    reserve: bool,
}

/// native_batch_norm(input, weight?, bias?, running_mean?, running_var?, training, momentum,
/// eps) -> (out, save_mean, save_invstd), and the variants torch.compile and export use.
fn batch_norm(ctx: &Ctx, a: BnArgs) -> Result<()> {
    let op = ctx.op;
    let input = ctx.tensor(0)?;
    let (w, b) = (ctx.opt_tensor(1)?, ctx.opt_tensor(2)?);
    let (rm, rv) = match a.stats {
        Some(i) => (ctx.opt_tensor(i)?, ctx.opt_tensor(i + 1)?),
        None => (None, None),
    };
    let training = match a.training {
        Ok(i) => ctx.bool(i),
        Err(fixed) => fixed,
    };
    let (momentum, eps) = (ctx.double(a.momentum), ctx.double(a.momentum + 1));
    let mut all = vec![&input];
    all.extend([&w, &b, &rm, &rv].into_iter().flatten());
    let device = common_device(&op, &all)?;
    floating(&op, &input)?;
    let c = channels(&op, &input, &[&w, &b, &rm, &rv])?;
    if !training && (rm.is_none() || rv.is_none()) {
        return Err(Error::runtime(format!("{op}: running_mean and running_var must be defined in evaluation mode")));
    }
    let out = ctx.new_output(input.sizes(), None, input.dtype(), device)?;
    let stat = if training { vec![c] } else { vec![0] };
    let sm = ctx.new_output(&stat, None, input.dtype(), device)?;
    let si = ctx.new_output(&stat, None, input.dtype(), device)?;
    if a.reserve {
        ctx.new_output(&[0], None, DType::U8, device)?;
    }
    let (o, x) = (out.view, input.view);
    let [w, b, rm, rv] = [w, b, rm, rv].map(|t| t.map(|t| t.view));
    let save = training.then_some((sm.view, si.view));
    launch(&op, device, move || {
        npu_kernels::batch_norm(
            &o,
            &x,
            w.as_ref(),
            b.as_ref(),
            rm.as_ref(),
            rv.as_ref(),
            save.as_ref().map(|(a, b)| (a, b)),
            training,
            momentum,
            eps,
        )
        .map_err(|e| e.0)
    })
}

/// native_batch_norm_backward(grad_out, input, weight?, running_mean?, running_var?,
/// save_mean?, save_invstd?, train, eps, output_mask) -> (grad_input, grad_weight, grad_bias)
fn batch_norm_backward(ctx: &Ctx) -> Result<()> {
    let op = ctx.op;
    let (dy, input) = (ctx.tensor(0)?, ctx.tensor(1)?);
    let (w, rm, rv, sm, si) = (ctx.opt_tensor(2)?, ctx.opt_tensor(3)?, ctx.opt_tensor(4)?, ctx.opt_tensor(5)?, ctx.opt_tensor(6)?);
    let (training, eps) = (ctx.bool(7), ctx.double(8));
    let mask = mask3(ctx, 9)?;
    let mut all = vec![&dy, &input];
    all.extend([&w, &rm, &rv, &sm, &si].into_iter().flatten());
    let device = common_device(&op, &all)?;
    floating(&op, &input)?;
    let c = channels(&op, &input, &[&w, &rm, &rv])?;
    let Some([gi, gw, gb]) = input_weight_bias_grads(ctx, mask, &input, w.as_ref(), c, device)? else {
        return Ok(());
    };
    let (dyv, xv) = (dy.view, input.view);
    let [w, rm, rv, sm, si] = [w, rm, rv, sm, si].map(|t| t.map(|t| t.view));
    launch(&op, device, move || {
        npu_kernels::batch_norm_backward(
            &dyv,
            &xv,
            w.as_ref(),
            rm.as_ref(),
            rv.as_ref(),
            sm.as_ref(),
            si.as_ref(),
            training,
            eps,
            [gi.as_ref(), gw.as_ref(), gb.as_ref()],
        )
        .map_err(|e| e.0)
    })
}

/// native_group_norm(input, weight?, bias?, N, C, HxW, group, eps) -> (out, mean, rstd), the
/// statistics of shape [N, group].
fn group_norm(ctx: &Ctx) -> Result<()> {
    let op = ctx.op;
    let input = ctx.tensor(0)?;
    let (weight, bias) = (ctx.opt_tensor(1)?, ctx.opt_tensor(2)?);
    let mut all = vec![&input];
    all.extend([&weight, &bias].into_iter().flatten());
    let device = common_device(&op, &all)?;
    floating(&op, &input)?;
    let (n, c, hw, groups, eps) = (ctx.int(3), ctx.int(4), ctx.int(5), ctx.int(6), ctx.double(7));
    let c_in = channels(&op, &input, &[&weight, &bias])?;
    if hw <= 0 {
        // as PyTorch's CPU kernel (no statistics over empty groups)
        return Err(Error::runtime(format!("{op}: Expected HxW to be greater than 0, got {hw}")));
    }
    if c_in != c || input.sizes()[0] != n || input.numel() as i64 != n * c * hw || groups <= 0 || c % groups != 0 {
        return Err(Error::runtime(format!(
            "{op}: input {:?} does not match N={n}, C={c}, HxW={hw}, group={groups}",
            input.sizes()
        )));
    }
    let out = ctx.new_output(input.sizes(), None, input.dtype(), device)?;
    let mean = ctx.new_output(&[n, groups], None, input.dtype(), device)?;
    let rstd = ctx.new_output(&[n, groups], None, input.dtype(), device)?;
    let (o, mu, rs, x) = (out.view, mean.view, rstd.view, input.view);
    let (w, b) = (weight.map(|t| t.view), bias.map(|t| t.view));
    launch(&op, device, move || {
        npu_kernels::group_norm(&o, &mu, &rs, &x, w.as_ref(), b.as_ref(), groups as usize, eps).map_err(|e| e.0)
    })
}

/// native_group_norm_backward(grad_out, input, mean, rstd, weight?, N, C, HxW, group,
/// output_mask) -> (grad_input, grad_weight, grad_bias).
fn group_norm_backward(ctx: &Ctx) -> Result<()> {
    let op = ctx.op;
    let (dy, input, mean, rstd) = (ctx.tensor(0)?, ctx.tensor(1)?, ctx.tensor(2)?, ctx.tensor(3)?);
    let w = ctx.opt_tensor(4)?;
    let mut all = vec![&dy, &input, &mean, &rstd];
    all.extend(w.as_ref());
    let device = common_device(&op, &all)?;
    floating(&op, &input)?;
    let (n, c, hw, groups) = (ctx.int(5), ctx.int(6), ctx.int(7), ctx.int(8));
    let c_in = channels(&op, &input, &[&w])?;
    if c_in != c || input.sizes()[0] != n || input.numel() as i64 != n * c * hw || groups <= 0 {
        return Err(Error::runtime(format!(
            "{op}: input {:?} does not match N={n}, C={c}, HxW={hw}, group={groups}",
            input.sizes()
        )));
    }
    let mask = mask3(ctx, 9)?;
    let Some([gi, gw, gb]) = input_weight_bias_grads(ctx, mask, &input, w.as_ref(), c, device)? else {
        return Ok(());
    };
    let (dyv, xv, mv, rv, wv) = (dy.view, input.view, mean.view, rstd.view, w.map(|t| t.view));
    launch(&op, device, move || {
        npu_kernels::group_norm_backward(&dyv, &xv, &mv, &rv, wv.as_ref(), groups as usize, [gi.as_ref(), gw.as_ref(), gb.as_ref()])
            .map_err(|e| e.0)
    })
}

pub const OPS: &[(&str, fn(&Ctx) -> Result<()>)] = &[
    ("native_group_norm", group_norm),
    ("native_group_norm_backward", group_norm_backward),
    ("native_layer_norm", layer_norm),
    ("native_layer_norm_backward", layer_norm_backward),
    ("native_batch_norm", |c| batch_norm(c, BnArgs { stats: Some(3), training: Ok(5), momentum: 6, reserve: false })),
    ("_native_batch_norm_legit", |c| batch_norm(c, BnArgs { stats: Some(3), training: Ok(5), momentum: 6, reserve: false })),
    ("_native_batch_norm_legit.no_stats", |c| batch_norm(c, BnArgs { stats: None, training: Ok(3), momentum: 4, reserve: false })),
    ("_native_batch_norm_legit_no_training", |c| batch_norm(c, BnArgs { stats: Some(3), training: Err(false), momentum: 5, reserve: false })),
    ("_batch_norm_with_update", |c| batch_norm(c, BnArgs { stats: Some(3), training: Err(true), momentum: 5, reserve: true })),
    ("_batch_norm_no_update", |c| batch_norm(c, BnArgs { stats: Some(3), training: Err(false), momentum: 5, reserve: true })),
    ("native_batch_norm_backward", batch_norm_backward),
    // (the same arguments, then the reserve tensor, which carries nothing here)
    ("batch_norm_backward", batch_norm_backward),
];
