//! Pooling: max_pool2d/3d_with_indices, avg_pool2d/3d, _adaptive_avg_pool2d/3d and their
//! backward ops (max_pool1d, avg_pool1d and adaptive_avg_pool1d are composites over these).
use npu_kernels::{DType, PoolParams};

use super::{common_device, launch, Ctx, Tensor};
use crate::status::{Error, Result};

/// An int list argument expanded to `nd` values (a single value repeats; empty gives `empty`).
fn expand(ctx: &Ctx, i: usize, nd: usize, name: &str, empty: Option<&[i64]>) -> Result<Vec<i64>> {
    let v = ctx.int_list(i)?;
    match v.len() {
        0 => empty.map(|e| e.to_vec()).ok_or_else(|| Error::runtime(format!("{}: {name} must not be empty", ctx.op))),
        1 => Ok(vec![v[0]; nd]),
        n if n == nd => Ok(v),
        _ => Err(Error::runtime(format!("{}: {name} must either be a single int, or a tuple of {nd} ints", ctx.op))),
    }
}

fn check_input(op: &str, t: &Tensor, nd: usize) -> Result<()> {
    let r = t.sizes().len();
    if r != nd + 1 && r != nd + 2 {
        return Err(Error::runtime(format!(
            "{op}: Expected {}D or {}D (batch mode) tensor for input, but got: {:?}",
            nd + 1,
            nd + 2,
            t.sizes()
        )));
    }
    if t.sizes()[r - nd..].iter().any(|&s| s == 0) {
        return Err(Error::runtime(format!("{op}: Expected input's non-batch dimensions to have positive length, but got {:?}", t.sizes())));
    }
    if t.dtype().is_complex() {
        return Err(Error::use_fallback("complex input"));
    }
    if !t.dtype().is_floating() {
        // PyTorch's CPU kernels pool integers; the npu kernels are float-only for now
        return Err(Error::use_fallback("integer pooling"));
    }
    Ok(())
}

/// (kernel, stride, padding, dilation, ceil_mode) from argument `first` on (max pooling).
fn max_params(ctx: &Ctx, first: usize, nd: usize) -> Result<PoolParams> {
    let kernel = expand(ctx, first, nd, "kernel_size", None)?;
    Ok(PoolParams {
        stride: expand(ctx, first + 1, nd, "stride", Some(&kernel))?,
        padding: expand(ctx, first + 2, nd, "padding", None)?,
        dilation: expand(ctx, first + 3, nd, "dilation", None)?,
        ceil_mode: ctx.bool(first + 4),
        kernel,
    })
}

fn output_sizes(op: &str, input: &Tensor, p: &PoolParams) -> Result<Vec<i64>> {
    let nd = p.kernel.len();
    let sizes = input.sizes();
    if p.padding.iter().zip(&p.kernel).any(|(&pd, &k)| pd * 2 > k) {
        return Err(Error::runtime(format!("{op}: pad should be at most half of effective kernel size")));
    }
    let spatial = p.output_size(&sizes[sizes.len() - nd..]);
    if spatial.iter().any(|&s| s < 1) {
        return Err(Error::runtime(format!("{op}: Given input size: {sizes:?}. Calculated output size: {spatial:?}. Output size is too small")));
    }
    Ok(sizes[..sizes.len() - nd].iter().copied().chain(spatial).collect())
}

/// max_poolNd_with_indices(self, kernel_size, stride, padding, dilation, ceil_mode)
fn max_pool(ctx: &Ctx, nd: usize) -> Result<()> {
    let op = ctx.op.clone();
    let x = ctx.tensor(0)?;
    let device = common_device(&op, &[&x])?;
    check_input(&op, &x, nd)?;
    let p = max_params(ctx, 1, nd)?;
    let sizes = output_sizes(&op, &x, &p)?;
    let out = ctx.new_output(&sizes, None, x.dtype(), device)?;
    let idx = ctx.new_output(&sizes, None, DType::I64, device)?;
    let (o, i, xv) = (out.view, idx.view, x.view);
    launch(&op, device, move || npu_kernels::max_pool(&o, &i, &xv, &p).map_err(|e| e.0))
}

/// max_poolNd_with_indices_backward(grad_output, self, kernel_size, stride, padding, dilation,
/// ceil_mode, indices)
fn max_pool_backward(ctx: &Ctx, nd: usize) -> Result<()> {
    let op = ctx.op.clone();
    let (g, x, idx) = (ctx.tensor(0)?, ctx.tensor(1)?, ctx.tensor(7)?);
    let device = common_device(&op, &[&g, &x, &idx])?;
    check_input(&op, &x, nd)?;
    let p = max_params(ctx, 2, nd)?;
    let sizes = output_sizes(&op, &x, &p)?;
    if g.sizes() != sizes.as_slice() || idx.sizes() != sizes.as_slice() {
        return Err(Error::runtime(format!("{op}: grad_output of size {:?}, expected {sizes:?}", g.sizes())));
    }
    let gi = ctx.new_output(x.sizes(), None, x.dtype(), device)?;
    let (gv, dy, iv) = (gi.view, g.view, idx.view);
    launch(&op, device, move || npu_kernels::max_pool_backward(&gv, &dy, &iv, nd).map_err(|e| e.0))
}

/// (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override) from `first` on.
fn avg_params(ctx: &Ctx, first: usize, nd: usize) -> Result<(PoolParams, bool, Option<i64>)> {
    let kernel = expand(ctx, first, nd, "kernel_size", None)?;
    let p = PoolParams {
        stride: expand(ctx, first + 1, nd, "stride", Some(&kernel))?,
        padding: expand(ctx, first + 2, nd, "padding", None)?,
        dilation: vec![1; nd],
        ceil_mode: ctx.bool(first + 3),
        kernel,
    };
    let divisor = ctx.opt_int(first + 5);
    if divisor == Some(0) {
        return Err(Error::runtime(format!("{}: divisor must be not zero", ctx.op)));
    }
    Ok((p, ctx.bool(first + 4), divisor))
}

/// avg_poolNd(self, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
fn avg_pool(ctx: &Ctx, nd: usize) -> Result<()> {
    let op = ctx.op.clone();
    let x = ctx.tensor(0)?;
    let device = common_device(&op, &[&x])?;
    check_input(&op, &x, nd)?;
    let (p, include_pad, divisor) = avg_params(ctx, 1, nd)?;
    let sizes = output_sizes(&op, &x, &p)?;
    let out = ctx.new_output(&sizes, None, x.dtype(), device)?;
    let (o, xv) = (out.view, x.view);
    launch(&op, device, move || npu_kernels::avg_pool(&o, &xv, &p, include_pad, divisor).map_err(|e| e.0))
}

/// avg_poolNd_backward(grad_output, self, kernel_size, stride, padding, ceil_mode,
/// count_include_pad, divisor_override)
fn avg_pool_backward(ctx: &Ctx, nd: usize) -> Result<()> {
    let op = ctx.op.clone();
    let (g, x) = (ctx.tensor(0)?, ctx.tensor(1)?);
    let device = common_device(&op, &[&g, &x])?;
    check_input(&op, &x, nd)?;
    let (p, include_pad, divisor) = avg_params(ctx, 2, nd)?;
    let sizes = output_sizes(&op, &x, &p)?;
    if g.sizes() != sizes.as_slice() {
        return Err(Error::runtime(format!("{op}: grad_output of size {:?}, expected {sizes:?}", g.sizes())));
    }
    let gi = ctx.new_output(x.sizes(), None, x.dtype(), device)?;
    let (gv, dy) = (gi.view, g.view);
    launch(&op, device, move || npu_kernels::avg_pool_backward(&gv, &dy, &p, include_pad, divisor).map_err(|e| e.0))
}

/// _adaptive_avg_poolNd(self, output_size)
fn adaptive(ctx: &Ctx, nd: usize) -> Result<()> {
    let op = ctx.op.clone();
    let x = ctx.tensor(0)?;
    let device = common_device(&op, &[&x])?;
    check_input(&op, &x, nd)?;
    let osz = expand(ctx, 1, nd, "output_size", None)?;
    if osz.iter().any(|&s| s < 0) {
        return Err(Error::runtime(format!("{op}: elements of output_size must be greater than or equal to 0 but received {osz:?}")));
    }
    let lead = x.sizes().len() - nd;
    let sizes: Vec<i64> = x.sizes()[..lead].iter().copied().chain(osz).collect();
    let out = ctx.new_output(&sizes, None, x.dtype(), device)?;
    let (o, xv) = (out.view, x.view);
    launch(&op, device, move || npu_kernels::adaptive_avg_pool(&o, &xv, nd, false).map_err(|e| e.0))
}

/// _adaptive_avg_poolNd_backward(grad_output, self)
fn adaptive_backward(ctx: &Ctx, nd: usize) -> Result<()> {
    let op = ctx.op.clone();
    let (g, x) = (ctx.tensor(0)?, ctx.tensor(1)?);
    let device = common_device(&op, &[&g, &x])?;
    check_input(&op, &x, nd)?;
    let gi = ctx.new_output(x.sizes(), None, x.dtype(), device)?;
    let (gv, dy) = (gi.view, g.view);
    launch(&op, device, move || npu_kernels::adaptive_avg_pool(&dy, &gv, nd, true).map_err(|e| e.0))
}

pub const OPS: &[(&str, fn(&Ctx) -> Result<()>)] = &[
    ("max_pool2d_with_indices", |c| max_pool(c, 2)),
    ("max_pool3d_with_indices", |c| max_pool(c, 3)),
    ("max_pool2d_with_indices_backward", |c| max_pool_backward(c, 2)),
    ("max_pool3d_with_indices_backward", |c| max_pool_backward(c, 3)),
    ("avg_pool2d", |c| avg_pool(c, 2)),
    ("avg_pool3d", |c| avg_pool(c, 3)),
    ("avg_pool2d_backward", |c| avg_pool_backward(c, 2)),
    ("avg_pool3d_backward", |c| avg_pool_backward(c, 3)),
    ("_adaptive_avg_pool2d", |c| adaptive(c, 2)),
    ("_adaptive_avg_pool3d", |c| adaptive(c, 3)),
    ("_adaptive_avg_pool2d_backward", |c| adaptive_backward(c, 2)),
    ("_adaptive_avg_pool3d_backward", |c| adaptive_backward(c, 3)),
];
