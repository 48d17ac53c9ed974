//! `fill_`, `zero_` and `arange`.
use npu_kernels::Scalar;

use super::{common_device, launch, launch_sized, Ctx};
use crate::status::{Error, Result};

fn fill(ctx: &Ctx, value: Scalar) -> Result<()> {
    let dst = ctx.tensor(0)?;
    let device = common_device(ctx.op, &[&dst])?;
    if dst.numel() > 0 {
        let view = dst.view.clone();
        launch_sized(ctx.op, device, view.numel(), move || npu_kernels::fill(&view, value).map_err(|e| e.0))?;
    }
    ctx.return_arg(0);
    Ok(())
}

pub fn fill_scalar(ctx: &Ctx) -> Result<()> {
    fill(ctx, ctx.scalar(1)?)
}

pub fn fill_tensor(ctx: &Ctx) -> Result<()> {
    let value = ctx.tensor(1)?;
    if !value.sizes().is_empty() {
        return Err(Error::runtime(format!(
            "fill_ only supports 0-dimension value tensor but got tensor with {} dimensions.",
            value.sizes().len()
        )));
    }
    fill(ctx, ctx.scalar(1)?)
}

pub fn zero(ctx: &Ctx) -> Result<()> {
    fill(ctx, Scalar::Int(0))
}

/// arange.start_out(start, end, step, *, out): `out` is resized to the number of steps.
pub fn arange_out(ctx: &Ctx) -> Result<()> {
    let op = ctx.op;
    let (start, end, step) = (ctx.scalar(0)?, ctx.scalar(1)?, ctx.scalar(2)?);
    let out = ctx.tensor(3)?;
    let device = common_device(&op, &[&out])?;
    let f = |s: Scalar| match s {
        Scalar::Bool(b) => b as u8 as f64,
        Scalar::Int(i) => i as f64,
        Scalar::Float(v) | Scalar::Complex(v, _) => v,
    };
    let (a, b, d) = (f(start), f(end), f(step));
    if d == 0.0 {
        return Err(Error::runtime(format!("{op}: step must be nonzero")));
    }
    if !a.is_finite() || !b.is_finite() {
        return Err(Error::runtime(format!("{op}: unsupported range: {a} -> {b}")));
    }
    if (d > 0.0 && b < a) || (d < 0.0 && b > a) {
        return Err(Error::runtime(format!("{op}: upper bound and larger bound inconsistent with step sign")));
    }
    let n = match (start, end, step) {
        // integer bounds count in integer arithmetic (exact beyond 2^53), as PyTorch does
        (Scalar::Int(a), Scalar::Int(b), Scalar::Int(d)) if !out.dtype().is_floating() => {
            ((b - a + d - d.signum()) / d) as f64
        }
        // otherwise the count comes from the bounds as given, in double, whatever the dtype
        _ => ((b - a) / d).ceil(),
    };
    if !(0.0..=(i64::MAX as f64)).contains(&n) {
        return Err(Error::runtime(format!("{op}: invalid size, possible overflow?")));
    }
    let out = ctx.resize_arg(3, &[n as i64])?;
    ctx.return_arg(3);
    let dst = out.view.clone();
    launch_sized(&op, device, dst.numel(), move || npu_kernels::arange(&dst, start, step).map_err(|e| e.0))
}

/// linspace.out(start, end, steps, *, out) and logspace.out(start, end, steps, base, *, out).
pub fn linspace_out(ctx: &Ctx, log: bool) -> Result<()> {
    let op = ctx.op;
    let (start, end, steps) = (ctx.scalar(0)?, ctx.scalar(1)?, ctx.int(2));
    let base = log.then(|| ctx.double(3));
    let i = ctx.nargs() - 1;
    let out = ctx.tensor(i)?;
    let device = common_device(&op, &[&out])?;
    if steps < 0 {
        return Err(Error::runtime(format!("{op}: number of steps must be non-negative")));
    }
    if out.dtype().is_complex() || matches!(start, Scalar::Complex(..)) || matches!(end, Scalar::Complex(..)) {
        return Err(Error::use_fallback("complex linspace"));
    }
    for bound in [start, end] {
        bound.check_fits(out.dtype()).map_err(|e| Error::runtime(format!("{op}: {}", e.0)))?;
    }
    let out = ctx.resize_arg(i, &[steps])?;
    ctx.return_arg(i);
    let dst = out.view.clone();
    launch(&op, device, move || npu_kernels::linspace(&dst, start, end, base).map_err(|e| e.0))
}

/// eye.out(n, *, out) and eye.m_out(n, m, *, out): zeros with ones on the main diagonal.
pub fn eye_out(ctx: &Ctx, with_m: bool) -> Result<()> {
    let op = ctx.op;
    let n = ctx.int(0);
    let m = if with_m { ctx.int(1) } else { n };
    for (what, v) in [("n", n), ("m", m)] {
        if v < 0 {
            return Err(Error::runtime(format!("{op}: {what} must be greater or equal to 0, got {v}")));
        }
    }
    let i = ctx.nargs() - 1;
    let out = ctx.tensor(i)?;
    let device = common_device(&op, &[&out])?;
    let out = ctx.resize_arg(i, &[n, m])?;
    ctx.return_arg(i);
    let dst = out.view.clone();
    let diag = npu_kernels::View { sizes: vec![n.min(m)], strides: vec![dst.strides[0] + dst.strides[1]], ..dst.clone() };
    launch(&op, device, move || {
        npu_kernels::fill(&dst, Scalar::Int(0)).map_err(|e| e.0)?;
        npu_kernels::fill(&diag, Scalar::Int(1)).map_err(|e| e.0)
    })
}
