//! repeat_interleave(repeats) (the index tensor the other overloads build on), bincount and
//! histc. repeat_interleave and bincount size their output from the data, so they wait for
//! the stream first, as CUDA does.
use npu_kernels::DType;
use npu_runtime as rt;

use super::elementwise::{output, Variant};
use super::{common_device, launch, Ctx};
use crate::status::{Error, Result};

/// repeat_interleave.Tensor(repeats, *, output_size) [and .Tensor_out].
fn repeat_interleave(ctx: &Ctx, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let r = ctx.tensor(0)?;
    let device = common_device(&op, &[&r])?;
    if !matches!(r.dtype(), DType::I64 | DType::I32) {
        return Err(Error::runtime(format!("{op}: repeats has to be Long or Int tensor")));
    }
    if r.sizes().len() != 1 {
        return Err(Error::runtime(format!("{op}: repeat_interleave only accept 1D vector as repeat")));
    }
    rt::current_stream(device)?.synchronize()?;
    let total = npu_kernels::repeat_total(&r.view).map_err(|e| Error::runtime(e.0))?;
    if let Some(n) = ctx.opt_int(1) {
        if n != total {
            return Err(Error::runtime(format!("{op}: allocated size does not match required size")));
        }
    }
    let out = output(ctx, variant, &[total], r.dtype(), device)?;
    let (dst, src) = (out.view.clone(), r.view);
    launch(&op, device, move || npu_kernels::repeat_index(&dst, &src).map_err(|e| e.0))
}

/// bincount(self, weights, minlength) [and .out].
fn bincount(ctx: &Ctx, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let x = ctx.tensor(0)?;
    let w = ctx.opt_tensor(1)?;
    let minlength = ctx.int(2);
    let device = common_device(&op, &[&x].into_iter().chain(w.as_ref()).collect::<Vec<_>>())?;
    if minlength < 0 {
        return Err(Error::runtime(format!("{op}: minlength should be >= 0")));
    }
    if x.sizes().len() != 1 || x.dtype().is_floating() || x.dtype().is_complex() || x.dtype() == DType::Bool {
        return Err(Error::runtime(format!("{op}: bincount only supports 1-d non-negative integral inputs.")));
    }
    if let Some(w) = &w {
        if w.sizes() != x.sizes() {
            return Err(Error::runtime(format!("{op}: weights should be 1-d and have the same length as input")));
        }
        if w.dtype().is_complex() {
            return Err(Error::use_fallback("complex weights"));
        }
    }
    rt::current_stream(device)?.synchronize()?;
    let bins = npu_kernels::bincount_size(&x.view, minlength).map_err(|e| Error::runtime(e.0))?;
    // CPU's result types: counts are int64, float weights sum in float, any other in double
    let dtype = match &w {
        None => DType::I64,
        Some(w) if w.dtype() == DType::F32 => DType::F32,
        Some(_) => DType::F64,
    };
    let out = output(ctx, variant, &[bins], dtype, device)?;
    let (dst, src, wv) = (out.view.clone(), x.view, w.map(|w| w.view));
    launch(&op, device, move || npu_kernels::bincount(&dst, &src, wv.as_ref()).map_err(|e| e.0))
}

/// histc(self, bins, min, max) [and .out].
fn histc(ctx: &Ctx, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let x = ctx.tensor(0)?;
    let device = common_device(&op, &[&x])?;
    let bins = ctx.int(1);
    let (min, max) = (ctx.scalar_f64(2)?, ctx.scalar_f64(3)?);
    if bins <= 0 {
        return Err(Error::runtime(format!("{op}: bins must be > 0, but got {bins} for dimension 0")));
    }
    if !x.dtype().is_floating() {
        return Err(Error::runtime(format!("{op}: \"histogram_cpu\" not implemented for '{}'", x.dtype().name())));
    }
    if min > max {
        return Err(Error::runtime(format!("{op}: max must be larger than min")));
    }
    if !min.is_finite() || !max.is_finite() {
        return Err(Error::runtime(format!("{op}: range of [{min}, {max}] is not finite")));
    }
    let out = output(ctx, variant, &[bins], x.dtype(), device)?;
    let (dst, src) = (out.view.clone(), x.view);
    launch(&op, device, move || npu_kernels::histc(&dst, &src, min, max).map_err(|e| e.0))
}

pub const OPS: &[(&str, fn(&Ctx) -> Result<()>)] = &[
    ("repeat_interleave.Tensor", |c| repeat_interleave(c, Variant::Functional)),
    ("repeat_interleave.Tensor_out", |c| repeat_interleave(c, Variant::Out)),
    ("bincount", |c| bincount(c, Variant::Functional)),
    ("bincount.out", |c| bincount(c, Variant::Out)),
    ("histc", |c| histc(c, Variant::Functional)),
    ("histc.out", |c| histc(c, Variant::Out)),
];
