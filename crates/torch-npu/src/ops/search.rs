//! searchsorted and bucketize (Tensor and Scalar values), functional and out=.
use npu_kernels::DType;

use super::advanced_index::scalar_view;
use super::elementwise::{output, Variant};
use super::{common_device, launch, Ctx, Tensor};
use crate::status::{Error, Result};

/// Runs the search: `values` is a tensor or a scalar (argument index `vi`).
#[allow(clippy::too_many_arguments)]
fn run(ctx: &Ctx, sorted: Tensor, vi: usize, scalar: bool, out_int32: bool, right: bool, sorter: Option<Tensor>, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let (values, buf, mut on) = if scalar {
        let (v, b) = scalar_view(ctx.scalar(vi)?)?;
        (v, Some(b), vec![])
    } else {
        let t = ctx.tensor(vi)?;
        (t.view.clone(), None, vec![t])
    };
    on.push(sorted.clone());
    on.extend(sorter.clone());
    let device = common_device(&op, &on.iter().collect::<Vec<_>>())?;
    if sorted.dtype().is_complex() || values.dtype.is_complex() {
        return Err(Error::use_fallback("complex input"));
    }
    if let Some(s) = &sorter {
        if s.dtype() != DType::I64 {
            return Err(Error::runtime(format!("{op}: sorter must be a tensor of long dtype but got dtype {}", s.dtype().name())));
        }
        if s.sizes() != sorted.sizes() {
            return Err(Error::runtime(format!("{op}: boundary and sorter must have the same size, but got boundary tensor {:?}and got sorter tensor {:?}", sorted.sizes(), s.sizes())));
        }
    }
    let (sr, vs) = (sorted.sizes().len(), &values.sizes);
    if sr == 0 {
        return Err(Error::runtime(format!("{op}: boundaries tensor should have positive dimension, but got 0 dimension")));
    }
    if sr > 1 && (vs.len() != sr || vs[..sr - 1] != sorted.sizes()[..sr - 1]) {
        return Err(Error::runtime(format!(
            "{op}: boundaries tensor should be 1 dimension or the first N-1 dimensions of boundaries tensor and input value tensor must match, but we got boundaries tensor {:?} and input value tensor {vs:?}",
            sorted.sizes()
        )));
    }
    let dtype = if out_int32 { DType::I32 } else { DType::I64 };
    let out = output(ctx, variant, vs, dtype, device)?;
    if out.dtype() != dtype {
        return Err(Error::runtime(format!("{op}: output tensor's dtype is wrong, it can only be Int(int32) or Long(int64) depending on whether out_int32 flag is True, but we got output tensor's dtype {} and out_int32 flag is {}", out.dtype().name(), if out_int32 { "True" } else { "False" })));
    }
    let (dst, seq, order) = (out.view.clone(), sorted.view, sorter.map(|s| s.view));
    launch(&op, device, move || {
        let _keep = buf;
        npu_kernels::searchsorted(&dst, &seq, &values, order.as_ref(), right).map_err(|e| e.0)
    })
}

/// searchsorted(sorted_sequence, self, *, out_int32, right, side, sorter[, out]).
fn searchsorted(ctx: &Ctx, scalar: bool, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let sorted = ctx.tensor(0)?;
    let (out_int32, mut right) = (ctx.bool(2), ctx.bool(3));
    if !ctx.is_none(4) {
        let side = ctx.string(4)?;
        match side.as_str() {
            "left" if right => {
                return Err(Error::runtime(format!("{op}: side and right can't be set to opposites, got side of left while right was True")));
            }
            "left" => {}
            "right" => right = true,
            s => return Err(Error::runtime(format!("{op}: side can only be 'left' or 'right' but got {s}"))),
        }
    }
    let sorter = ctx.opt_tensor(5)?;
    run(ctx, sorted, 1, scalar, out_int32, right, sorter, variant)
}

/// bucketize(self, boundaries, *, out_int32, right[, out]): searchsorted with 1-d boundaries.
fn bucketize(ctx: &Ctx, scalar: bool, variant: Variant) -> Result<()> {
    let boundaries = ctx.tensor(1)?;
    if boundaries.sizes().len() != 1 {
        return Err(Error::runtime(format!("{}: boundaries tensor must be 1 dimension, but got dim({})", ctx.op, boundaries.sizes().len())));
    }
    run(ctx, boundaries, 0, scalar, ctx.bool(2), ctx.bool(3), None, variant)
}

pub const OPS: &[(&str, fn(&Ctx) -> Result<()>)] = {
    use Variant::*;
    &[
        ("searchsorted.Tensor", |c| searchsorted(c, false, Functional)),
        ("searchsorted.Tensor_out", |c| searchsorted(c, false, Out)),
        ("searchsorted.Scalar", |c| searchsorted(c, true, Functional)),
        ("searchsorted.Scalar_out", |c| searchsorted(c, true, Out)),
        ("bucketize.Tensor", |c| bucketize(c, false, Functional)),
        ("bucketize.Tensor_out", |c| bucketize(c, false, Out)),
        ("bucketize.Scalar", |c| bucketize(c, true, Functional)),
        ("bucketize.Scalar_out", |c| bucketize(c, true, Out)),
    ]
};
