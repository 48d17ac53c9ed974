//! `_softmax`, `_log_softmax` and their backward ops (`F.softmax`, `F.log_softmax`,
//! `cross_entropy`, attention all end here).
use npu_kernels::DType;

use super::elementwise::{output, Variant};
use super::{common_device, launch_sized, Ctx};
use crate::status::{Error, Result};

/// `dim` wrapped into `0..rank` (0-dim tensors take -1 and 0).
pub fn wrap_dim(op: &str, dim: i64, rank: usize) -> Result<usize> {
    let r = rank.max(1) as i64;
    let d = if dim < 0 { dim + r } else { dim };
    if d < 0 || d >= r {
        return Err(Error::index(format!(
            "{op}: Dimension out of range (expected to be in range of [{}, {}], but got {dim})",
            -r,
            r - 1
        )));
    }
    Ok(d as usize)
}

fn floating(op: &str, d: DType) -> Result<()> {
    if d.is_complex() {
        return Err(Error::use_fallback("complex input"));
    }
    if !d.is_floating() {
        return Err(Error::runtime(format!("{op}: \"softmax_kernel_impl\" not implemented for '{}'", d.name())));
    }
    Ok(())
}

/// _softmax(self, dim, half_to_float) / _log_softmax, functional and out=.
fn forward(ctx: &Ctx, log: bool, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let x = ctx.tensor(0)?;
    let device = common_device(&op, &[&x])?;
    floating(&op, x.dtype())?;
    let dim = wrap_dim(&op, ctx.int(1), x.sizes().len())?;
    let half_to_float = ctx.bool(2);
    let dtype = if half_to_float && matches!(x.dtype(), DType::F16 | DType::BF16) { DType::F32 } else { x.dtype() };
    let out = output(ctx, variant, x.sizes(), dtype, device)?;
    if out.numel() == 0 {
        return Ok(());
    }
    let (dst, src) = (out.view.clone(), x.view.clone());
    launch_sized(&op, device, src.numel(), move || npu_kernels::softmax(&dst, &src, dim, log).map_err(|e| e.0))
}

/// _softmax_backward_data(grad_output, output, dim, input_dtype), functional and out=.
fn backward(ctx: &Ctx, log: bool, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let (g, y) = (ctx.tensor(0)?, ctx.tensor(1)?);
    let device = common_device(&op, &[&g, &y])?;
    floating(&op, g.dtype())?;
    floating(&op, y.dtype())?;
    if g.sizes() != y.sizes() {
        return Err(Error::runtime(format!("{op}: grad_output size {:?} does not match output size {:?}", g.sizes(), y.sizes())));
    }
    let dim = wrap_dim(&op, ctx.int(2), y.sizes().len())?;
    let dtype = DType::from_i32(ctx.int(3) as i32).ok_or_else(|| Error::type_error(format!("{op}: unsupported input_dtype")))?;
    floating(&op, dtype)?;
    let out = output(ctx, variant, y.sizes(), dtype, device)?;
    if out.numel() == 0 {
        return Ok(());
    }
    let (dst, gv, yv) = (out.view.clone(), g.view.clone(), y.view.clone());
    launch_sized(&op, device, gv.numel(), move || npu_kernels::softmax_backward(&dst, &gv, &yv, dim, log).map_err(|e| e.0))
}

pub const OPS: &[(&str, fn(&Ctx) -> Result<()>)] = &[
    ("_softmax", |c| forward(c, false, Variant::Functional)),
    ("_softmax.out", |c| forward(c, false, Variant::Out)),
    ("_log_softmax", |c| forward(c, true, Variant::Functional)),
    ("_log_softmax.out", |c| forward(c, true, Variant::Out)),
    ("_softmax_backward_data", |c| backward(c, false, Variant::Functional)),
    ("_softmax_backward_data.out", |c| backward(c, false, Variant::Out)),
    ("_log_softmax_backward_data", |c| backward(c, true, Variant::Functional)),
    ("_log_softmax_backward_data.out", |c| backward(c, true, Variant::Out)),
];
