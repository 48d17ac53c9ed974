//! gather, scatter (tensor or scalar source, legacy "add"/"multiply" reduce), scatter_add and
//! scatter_reduce (sum, prod, mean, amax, amin, include_self): functional, in-place and out=.
use npu_kernels::{ScatterReduce, ScatterSrc};

use super::elementwise::{output, Variant};
use super::softmax::wrap_dim;
use super::{common_device, launch_sized, Ctx};
use crate::status::{Error, Result};

/// gather(self, dim, index, *, sparse_grad=False) and gather.out.
fn gather_impl(ctx: &Ctx, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let (src, index) = (ctx.tensor(0)?, ctx.tensor(2)?);
    let device = common_device(&op, &[&src, &index])?;
    if ctx.bool(3) {
        return Err(Error::not_implemented(format!("{op}: sparse_grad=True is not supported on npu")));
    }
    let dim = wrap_dim(&op, ctx.int(1), src.sizes().len())?;
    let out = output(ctx, variant, index.sizes(), src.dtype(), device)?;
    if out.dtype() != src.dtype() {
        return Err(Error::runtime(format!("{op}: Expected out tensor to have dtype {}, but got {} instead", src.dtype().name(), out.dtype().name())));
    }
    // PyTorch's CPU kernels take any integer index dtype
    if index.dtype().is_floating() || index.dtype().is_complex() || index.dtype() == npu_kernels::DType::Bool {
        return Err(Error::runtime(format!("{op}: Expected dtype int64 for index, got {}", index.dtype().name())));
    }
    let (d, s, i) = (out.view.clone(), src.view, index.view);
    // shapes are checked here, so a bad call raises at once; index values are checked by the
    // kernel (before it writes anything) and reported at the next synchronisation
    npu_kernels::check_index_shapes(&op, &i, dim, &s, None).map_err(|e| Error::runtime(e.0))?;
    launch_sized(&op, device, d.numel(), move || npu_kernels::gather(&d, &s, dim, &i).map_err(|e| e.0))
}

#[derive(Clone, Copy)]
enum Source {
    /// The source tensor is argument 3.
    Tensor,
    /// A Scalar at argument 3.
    Value,
}

#[derive(Clone, Copy)]
enum Reduce {
    None,
    /// scatter's `reduce` keyword ("add" / "multiply") at argument 4.
    Legacy,
    /// scatter_add.
    Add,
    /// scatter_reduce's `reduce` (argument 4) and `include_self` (argument 5).
    Two,
}

fn parse_reduce(op: &str, s: &str, legacy: bool) -> Result<ScatterReduce> {
    Ok(match (s, legacy) {
        ("add", true) | ("sum", false) => ScatterReduce::Sum,
        ("multiply", true) | ("prod", false) => ScatterReduce::Prod,
        ("mean", false) => ScatterReduce::Mean,
        ("amax", false) => ScatterReduce::Amax,
        ("amin", false) => ScatterReduce::Amin,
        _ if legacy => return Err(Error::runtime(format!("{op}: reduce argument must be either add or multiply. Got {s}"))),
        _ => return Err(Error::runtime(format!("{op}: reduce argument must be either sum, prod, mean, amax or amin, got {s}"))),
    })
}

fn scatter_impl(ctx: &Ctx, variant: Variant, source: Source, reduce: Reduce) -> Result<()> {
    let op = ctx.op;
    let (this, index) = (ctx.tensor(0)?, ctx.tensor(2)?);
    let src = match source {
        Source::Tensor => Some(ctx.tensor(3)?),
        Source::Value => None,
    };
    let mut all = vec![&this, &index];
    all.extend(src.as_ref());
    let device = common_device(&op, &all)?;
    let dim = wrap_dim(&op, ctx.int(1), this.sizes().len())?;
    let (mode, include_self) = match reduce {
        Reduce::None => (ScatterReduce::Assign, true),
        Reduce::Add => (ScatterReduce::Sum, true),
        Reduce::Legacy => (parse_reduce(&op, &ctx.string(4)?, true)?, true),
        Reduce::Two => (parse_reduce(&op, &ctx.string(4)?, false)?, ctx.is_none(5) || ctx.bool(5)),
    };
    if this.dtype().is_complex() && mode != ScatterReduce::Assign {
        return Err(Error::use_fallback("complex reductions"));
    }
    let value = match source {
        Source::Value => Some(ctx.scalar(3)?),
        Source::Tensor => None,
    };
    let out = match variant {
        Variant::InPlace => {
            ctx.return_arg(0);
            this.clone()
        }
        _ => output(ctx, variant, this.sizes(), this.dtype(), device)?,
    };
    if out.dtype() != this.dtype() {
        return Err(Error::runtime(format!("{op}: Expected out tensor to have dtype {}, but got {} instead", this.dtype().name(), out.dtype().name())));
    }
    let (d, selfv, iv) = (out.view.clone(), this.view.clone(), index.view.clone());
    let sv = src.map(|s| s.view);
    npu_kernels::check_index_shapes(&op, &iv, dim, &selfv, sv.as_ref()).map_err(|e| Error::runtime(e.0))?;
    if let Some(s) = &sv {
        if s.dtype != selfv.dtype {
            return Err(Error::runtime(format!(
                "{op}: Expected self.dtype to be equal to src.dtype, got {} and {}",
                selfv.dtype.name(), s.dtype.name()
            )));
        }
    }
    // PyTorch's CPU kernels take any integer index dtype
    if index.dtype().is_floating() || index.dtype().is_complex() || index.dtype() == npu_kernels::DType::Bool {
        return Err(Error::runtime(format!("{op}: Expected dtype int64 for index, got {}", index.dtype().name())));
    }
    let copy_self = variant != Variant::InPlace;
    let work = iv.numel() + if copy_self { d.numel() } else { 0 };
    launch_sized(&op, device, work, move || {
        if copy_self {
            npu_kernels::copy(&d, &selfv).map_err(|e| e.0)?;
        }
        let s = match (&sv, value) {
            (Some(v), _) => ScatterSrc::Tensor(v),
            (None, v) => ScatterSrc::Scalar(v.unwrap_or(npu_kernels::Scalar::Int(0))),
        };
        npu_kernels::scatter(&d, dim, &iv, s, mode, include_self).map_err(|e| e.0)
    })
}

pub const OPS: &[(&str, fn(&Ctx) -> Result<()>)] = {
    use Reduce::*;
    use Source::*;
    use Variant::*;
    &[
        ("gather", |c| gather_impl(c, Functional)),
        ("gather.out", |c| gather_impl(c, Out)),
        ("scatter.src", |c| scatter_impl(c, Functional, Tensor, None)),
        ("scatter_.src", |c| scatter_impl(c, InPlace, Tensor, None)),
        ("scatter.src_out", |c| scatter_impl(c, Out, Tensor, None)),
        ("scatter.value", |c| scatter_impl(c, Functional, Value, None)),
        ("scatter_.value", |c| scatter_impl(c, InPlace, Value, None)),
        ("scatter.value_out", |c| scatter_impl(c, Out, Value, None)),
        ("scatter.reduce", |c| scatter_impl(c, Functional, Tensor, Legacy)),
        ("scatter_.reduce", |c| scatter_impl(c, InPlace, Tensor, Legacy)),
        ("scatter.reduce_out", |c| scatter_impl(c, Out, Tensor, Legacy)),
        ("scatter.value_reduce", |c| scatter_impl(c, Functional, Value, Legacy)),
        ("scatter_.value_reduce", |c| scatter_impl(c, InPlace, Value, Legacy)),
        ("scatter.value_reduce_out", |c| scatter_impl(c, Out, Value, Legacy)),
        ("scatter_add", |c| scatter_impl(c, Functional, Tensor, Add)),
        ("scatter_add_", |c| scatter_impl(c, InPlace, Tensor, Add)),
        ("scatter_add.out", |c| scatter_impl(c, Out, Tensor, Add)),
        ("scatter_reduce.two", |c| scatter_impl(c, Functional, Tensor, Two)),
        ("scatter_reduce_.two", |c| scatter_impl(c, InPlace, Tensor, Two)),
        ("scatter_reduce.two_out", |c| scatter_impl(c, Out, Tensor, Two)),
    ]
};
