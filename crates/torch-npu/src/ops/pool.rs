//! Pooling: max_pool2d/3d_with_indices, avg_pool2d/3d, _adaptive_avg_pool2d/3d,
//! adaptive_max_pool2d/3d and their backward ops (the 1d forms are composites over these).
use npu_kernels::{DType, PoolParams};

use super::elementwise::{output, Variant};
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

/// Max pooling forward takes every integer dtype, average pooling forward int64 (as on CPU).
const MAX_INTS: &[DType] = &[DType::U8, DType::I8, DType::I16, DType::I32, DType::I64];
const AVG_INTS: &[DType] = &[DType::I64];

/// `integers`: the integer dtypes the op has a kernel for.
fn check_input(op: &str, t: &Tensor, nd: usize, integers: &[DType]) -> Result<()> {
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
    if !t.dtype().is_floating() && !integers.contains(&t.dtype()) {
        return Err(Error::runtime(format!("{op}: \"{op}\" not implemented for '{}'", t.dtype().name())));
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
    let op = ctx.op;
    let x = ctx.tensor(0)?;
    let device = common_device(&op, &[&x])?;
    check_input(&op, &x, nd, MAX_INTS)?;
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
    let op = ctx.op;
    let (g, x, idx) = (ctx.tensor(0)?, ctx.tensor(1)?, ctx.tensor(7)?);
    let device = common_device(&op, &[&g, &x, &idx])?;
    check_input(&op, &x, nd, &[])?;
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
    let op = ctx.op;
    let x = ctx.tensor(0)?;
    let device = common_device(&op, &[&x])?;
    check_input(&op, &x, nd, AVG_INTS)?;
    let (p, include_pad, divisor) = avg_params(ctx, 1, nd)?;
    let sizes = output_sizes(&op, &x, &p)?;
    let out = ctx.new_output(&sizes, None, x.dtype(), device)?;
    let (o, xv) = (out.view, x.view);
    launch(&op, device, move || npu_kernels::avg_pool(&o, &xv, &p, include_pad, divisor).map_err(|e| e.0))
}

/// avg_poolNd_backward(grad_output, self, kernel_size, stride, padding, ceil_mode,
/// count_include_pad, divisor_override)
fn avg_pool_backward(ctx: &Ctx, nd: usize) -> Result<()> {
    let op = ctx.op;
    let (g, x) = (ctx.tensor(0)?, ctx.tensor(1)?);
    let device = common_device(&op, &[&g, &x])?;
    check_input(&op, &x, nd, &[])?;
    let (p, include_pad, divisor) = avg_params(ctx, 2, nd)?;
    let sizes = output_sizes(&op, &x, &p)?;
    if g.sizes() != sizes.as_slice() {
        return Err(Error::runtime(format!("{op}: grad_output of size {:?}, expected {sizes:?}", g.sizes())));
    }
    let gi = ctx.new_output(x.sizes(), None, x.dtype(), device)?;
    let (gv, dy) = (gi.view, g.view);
    launch(&op, device, move || npu_kernels::avg_pool_backward(&gv, &dy, &p, include_pad, divisor).map_err(|e| e.0))
}

/// The output sizes of adaptive pooling: the leading dims, then `output_size` (argument 1).
fn adaptive_sizes(ctx: &Ctx, x: &Tensor, nd: usize) -> Result<Vec<i64>> {
    let osz = expand(ctx, 1, nd, "output_size", None)?;
    if osz.iter().any(|&s| s < 0) {
        return Err(Error::runtime(format!("{}: elements of output_size must be greater than or equal to 0 but received {osz:?}", ctx.op)));
    }
    let lead = x.sizes().len() - nd;
    Ok(x.sizes()[..lead].iter().copied().chain(osz).collect())
}

/// _adaptive_avg_poolNd(self, output_size)
fn adaptive(ctx: &Ctx, nd: usize) -> Result<()> {
    let op = ctx.op;
    let x = ctx.tensor(0)?;
    let device = common_device(&op, &[&x])?;
    check_input(&op, &x, nd, &[])?;
    let sizes = adaptive_sizes(ctx, &x, nd)?;
    let out = ctx.new_output(&sizes, None, x.dtype(), device)?;
    let (o, xv) = (out.view, x.view);
    launch(&op, device, move || npu_kernels::adaptive_avg_pool(&o, &xv, nd, false).map_err(|e| e.0))
}

/// _adaptive_avg_poolNd_backward(grad_output, self)
fn adaptive_backward(ctx: &Ctx, nd: usize) -> Result<()> {
    let op = ctx.op;
    let (g, x) = (ctx.tensor(0)?, ctx.tensor(1)?);
    let device = common_device(&op, &[&g, &x])?;
    check_input(&op, &x, nd, &[])?;
    let gi = ctx.new_output(x.sizes(), None, x.dtype(), device)?;
    let (gv, dy) = (gi.view, g.view);
    launch(&op, device, move || npu_kernels::adaptive_avg_pool(&dy, &gv, nd, true).map_err(|e| e.0))
}

/// adaptive_max_poolNd(self, output_size) -> (out, indices), and .out(..., *, out, indices).
fn adaptive_max(ctx: &Ctx, nd: usize, out_args: bool) -> Result<()> {
    let op = ctx.op;
    let x = ctx.tensor(0)?;
    let device = common_device(&op, &[&x])?;
    check_input(&op, &x, nd, &[])?;
    let sizes = adaptive_sizes(ctx, &x, nd)?;
    let (out, idx) = if out_args {
        let (o, i) = (ctx.resize_arg(2, &sizes)?, ctx.resize_arg(3, &sizes)?);
        if o.dtype() != x.dtype() || i.dtype() != DType::I64 || !i.view.is_contiguous() {
            return Err(Error::runtime(format!("{op}: expected out of dtype {} and contiguous int64 indices", x.dtype().name())));
        }
        ctx.return_arg(2);
        ctx.return_arg(3);
        (o, i)
    } else {
        (ctx.new_output(&sizes, None, x.dtype(), device)?, ctx.new_output(&sizes, None, DType::I64, device)?)
    };
    let (o, i, xv) = (out.view, idx.view, x.view);
    launch(&op, device, move || npu_kernels::adaptive_max_pool(&o, &i, &xv, nd).map_err(|e| e.0))
}

/// adaptive_max_poolNd_backward(grad_output, self, indices) [and .grad_input]: the gradient
/// goes to where each maximum came from, as for max pooling.
fn adaptive_max_backward(ctx: &Ctx, nd: usize, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let (g, x, idx) = (ctx.tensor(0)?, ctx.tensor(1)?, ctx.tensor(2)?);
    let device = common_device(&op, &[&g, &x, &idx])?;
    check_input(&op, &x, nd, &[])?;
    if g.sizes() != idx.sizes() || g.sizes().len() != x.sizes().len() {
        return Err(Error::runtime(format!("{op}: grad_output {:?} and indices {:?} do not match", g.sizes(), idx.sizes())));
    }
    let gi = output(ctx, variant, x.sizes(), x.dtype(), device)?;
    let (gv, dy, iv) = (gi.view.clone(), g.view, idx.view);
    launch(&op, device, move || npu_kernels::max_pool_backward(&gv, &dy, &iv, nd).map_err(|e| e.0))
}

pub const OPS: &[(&str, fn(&Ctx) -> Result<()>)] = &[
    ("adaptive_max_pool2d", |c| adaptive_max(c, 2, false)),
    ("adaptive_max_pool3d", |c| adaptive_max(c, 3, false)),
    ("adaptive_max_pool2d.out", |c| adaptive_max(c, 2, true)),
    ("adaptive_max_pool3d.out", |c| adaptive_max(c, 3, true)),
    ("adaptive_max_pool2d_backward", |c| adaptive_max_backward(c, 2, Variant::Functional)),
    ("adaptive_max_pool3d_backward", |c| adaptive_max_backward(c, 3, Variant::Functional)),
    ("adaptive_max_pool2d_backward.grad_input", |c| adaptive_max_backward(c, 2, Variant::Out)),
    ("adaptive_max_pool3d_backward.grad_input", |c| adaptive_max_backward(c, 3, Variant::Out)),
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
