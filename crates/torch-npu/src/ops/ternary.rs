//! Selection between two values by a mask: `where(condition, self, other)` and
//! `masked_fill_(self, mask, value)`, one kernel (npu_kernels::where_) for both.
use npu_kernels::DType;

use super::elementwise::{check_overlap, input, input_view, output, plan, Input, Kind, Variant};
use super::shape::broadcast_shapes;
use super::{launch, Ctx};
use crate::status::{Error, Result};

fn bool_mask(op: &str, what: &str, m: &Input) -> Result<()> {
    let dtype = match m {
        Input::Device(t) => t.dtype(),
        Input::Host(..) => DType::Bool,
    };
    if dtype != DType::Bool {
        return Err(Error::runtime(format!(
            "{op}: {what} expected to be a boolean tensor, but got a tensor with dtype {}",
            dtype.name()
        )));
    }
    Ok(())
}

/// where.self(condition, self, other) and where.self_out.
fn where_self(ctx: &Ctx, variant: Variant) -> Result<()> {
    let op = ctx.op.clone();
    let (cond, a, b) = (input(ctx, 0)?, input(ctx, 1)?, input(ctx, 2)?);
    let Input::Device(c) = &cond else {
        return Err(Error::use_fallback("a host condition"));
    };
    if c.dtype() != DType::Bool {
        return Err(Error::runtime(format!(
            "{op}: where expected condition to be a boolean tensor, but got a tensor with dtype {}",
            c.dtype().name()
        )));
    }
    let p = plan(ctx, &[&cond, &a, &b], Kind::Promoted, Variant::Functional)?;
    // the condition takes no part in type promotion
    let dtype = plan(ctx, &[&a, &b], Kind::Promoted, Variant::Functional).map(|q| q.result).unwrap_or(p.result);
    let out = output(ctx, variant, &p.sizes, dtype, p.device)?;
    if out.numel() == 0 {
        return Ok(());
    }
    if variant != Variant::Functional {
        check_overlap(&op, &out, &[&cond, &a, &b])?;
    }
    let (vc, _) = input_view(&cond, &p.sizes, &op)?;
    let (va, ka) = input_view(&a, &p.sizes, &op)?;
    let (vb, kb) = input_view(&b, &p.sizes, &op)?;
    let dst = out.view.clone();
    launch(&op, p.device, move || {
        let _keep = (ka, kb);
        npu_kernels::where_(&dst, &vc, &va, &vb).map_err(|e| e.0)
    })
}

/// masked_fill_.Scalar(self, mask, value) and masked_fill_.Tensor (a 0-dim value).
fn masked_fill_(ctx: &Ctx) -> Result<()> {
    let op = ctx.op.clone();
    let (s, mask, value) = (ctx.tensor(0)?, input(ctx, 1)?, input(ctx, 2)?);
    bool_mask(&op, "mask", &mask)?;
    if let Input::Device(v) = &value {
        if !v.sizes().is_empty() {
            return Err(Error::runtime(format!(
                "{op}: only supports a 0-dimensional value tensor, but got tensor with {} dimension(s).",
                v.sizes().len()
            )));
        }
    }
    let this = Input::Device(s.clone());
    let p = plan(ctx, &[&this, &mask], Kind::Promoted, Variant::InPlace)?;
    let sizes = broadcast_shapes(s.sizes(), &p.sizes, &op)?;
    if sizes != s.sizes() {
        return Err(Error::runtime(format!("{op}: mask of shape {:?} cannot be broadcast to self {:?}", p.sizes, s.sizes())));
    }
    ctx.return_arg(0);
    if s.numel() == 0 {
        return Ok(());
    }
    check_overlap(&op, &s, &[&mask, &value])?;
    let (vm, _) = input_view(&mask, &sizes, &op)?;
    let (vv, kv) = input_view(&value, &sizes, &op)?;
    let dst = s.view.clone();
    launch(&op, p.device, move || {
        let _keep = kv;
        npu_kernels::where_(&dst, &vm, &vv, &dst).map_err(|e| e.0)
    })
}

pub const OPS: &[(&str, fn(&Ctx) -> Result<()>)] = &[
    ("where.self", |c| where_self(c, Variant::Functional)),
    ("where.self_out", |c| where_self(c, Variant::Out)),
    ("masked_fill_.Scalar", masked_fill_),
    ("masked_fill_.Tensor", masked_fill_),
];
