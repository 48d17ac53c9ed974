//! cumsum and cumprod (functional, in-place, out=), with the optional `dtype` argument.
use npu_kernels::{DType, ScanOp};

use super::elementwise::{output, Variant};
use super::softmax::wrap_dim;
use super::{common_device, launch, Ctx};
use crate::status::{Error, Result};

/// (self, dim, *, dtype=None[, out]).
fn scan_impl(ctx: &Ctx, op_kind: ScanOp, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let x = ctx.tensor(0)?;
    let device = common_device(&op, &[&x])?;
    let dim = wrap_dim(&op, ctx.int(1), x.sizes().len())?;
    if x.dtype().is_complex() {
        return Err(Error::use_fallback("complex scans"));
    }
    let requested = if ctx.is_none(2) { None } else { DType::from_i32(ctx.int(2) as i32) };
    let natural = if x.dtype().is_floating() { x.dtype() } else { DType::I64 };
    let out = match variant {
        Variant::InPlace => {
            if let Some(d) = requested.filter(|&d| d != x.dtype()) {
                return Err(Error::runtime(format!("{op}: provided dtype must match the dtype of self tensor in cumsum/cumprod, got {}", d.name())));
            }
            ctx.return_arg(0);
            x.clone()
        }
        Variant::Functional => ctx.new_output(x.sizes(), None, requested.unwrap_or(natural), device)?,
        Variant::Out => {
            let out = output(ctx, variant, x.sizes(), requested.unwrap_or(natural), device)?;
            if let Some(d) = requested.filter(|&d| d != out.dtype()) {
                return Err(Error::runtime(format!("{op}: Expected out tensor to have dtype {}, but got {} instead", d.name(), out.dtype().name())));
            }
            out
        }
    };
    if out.dtype().is_complex() {
        return Err(Error::use_fallback("complex scans"));
    }
    let (d, s) = (out.view.clone(), x.view);
    launch(&op, device, move || npu_kernels::scan(&d, &s, dim, op_kind).map_err(|e| e.0))
}

pub const OPS: &[(&str, fn(&Ctx) -> Result<()>)] = &[
    ("cumsum", |c| scan_impl(c, ScanOp::Sum, Variant::Functional)),
    ("cumsum_", |c| scan_impl(c, ScanOp::Sum, Variant::InPlace)),
    ("cumsum.out", |c| scan_impl(c, ScanOp::Sum, Variant::Out)),
    ("cumprod", |c| scan_impl(c, ScanOp::Prod, Variant::Functional)),
    ("cumprod_", |c| scan_impl(c, ScanOp::Prod, Variant::InPlace)),
    ("cumprod.out", |c| scan_impl(c, ScanOp::Prod, Variant::Out)),
];
