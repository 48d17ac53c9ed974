//! Three-operand elementwise ops: selection by a mask (`where`, `masked_fill_`, one kernel:
//! npu_kernels::where_) and the optimizers' arithmetic (`addcmul`, `addcdiv`, `lerp`).
use npu_kernels::{DType, Scalar, TernaryOp, Third};

use super::elementwise::{check_overlap, input, input_view, output, plan, Input, Kind, Variant};
use super::shape::broadcast_shapes;
use super::{launch, launch_sized, Ctx};
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
    let op = ctx.op;
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
    launch_sized(&op, p.device, dst.numel(), move || {
        let _keep = (ka, kb);
        npu_kernels::where_(&dst, &vc, &va, &vb).map_err(|e| e.0)
    })
}

/// masked_fill_.Scalar(self, mask, value) and masked_fill_.Tensor (a 0-dim value).
fn masked_fill_(ctx: &Ctx) -> Result<()> {
    let op = ctx.op;
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

/// addcmul / addcdiv (self, tensor1, tensor2, *, value) and lerp (self, end, weight).
fn arith(ctx: &Ctx, op: TernaryOp, variant: Variant) -> Result<()> {
    let name = ctx.op;
    let (a, b, c) = (input(ctx, 0)?, input(ctx, 1)?, input(ctx, 2)?);
    let value = if op == TernaryOp::Lerp { Scalar::Int(1) } else { ctx.scalar(3)? };
    let p = plan(ctx, &[&a, &b, &c], Kind::Promoted, variant)?;
    if op == TernaryOp::Lerp {
        let (Input::Device(s), Input::Device(e)) = (&a, &b) else {
            return Err(Error::runtime(format!("{name}: expected tensors for self and end")));
        };
        if s.dtype() != e.dtype() {
            return Err(Error::runtime(format!(
                "{name}: expected dtype {} for `end` but got dtype {}",
                s.dtype().name(),
                e.dtype().name()
            )));
        }
        if !p.compute.is_floating() {
            return Err(Error::runtime(format!("{name}: \"lerp_kernel_scalar\" not implemented for '{}'", p.compute.name())));
        }
    }
    if op == TernaryOp::Addcdiv && !p.compute.is_floating() && p.compute != DType::Bool {
        return Err(Error::runtime(format!(
            "{name}: Integer division with addcdiv is no longer supported, and in a future release addcdiv will perform a true division of tensor1 and tensor2. The historic addcdiv behavior can be implemented as (input + value * torch.trunc(tensor1 / tensor2)).to(input.dtype) for integer inputs and as (input + value * tensor1 / tensor2) for float inputs. The future addcdiv behavior is just the latter implementation: (input + value * tensor1 / tensor2), for all dtypes."
        )));
    }
    if p.compute == DType::Bool {
        return Err(Error::runtime(format!(
            "{name}: \"{}_cpu_out\" not implemented for '{}'",
            op.name(),
            p.compute.name()
        )));
    }
    let out = output(ctx, variant, &p.sizes, p.result, p.device)?;
    if out.numel() == 0 {
        return Ok(());
    }
    if variant != Variant::Functional {
        check_overlap(&name, &out, &[&a, &b, &c])?;
    }
    let (va, ka) = input_view(&a, &p.sizes, &name)?;
    let (vb, kb) = input_view(&b, &p.sizes, &name)?;
    // a scalar weight goes to the kernel as a value, at full precision
    let (weight, vc, kc) = match (&c, op) {
        (Input::Host(s, _), TernaryOp::Lerp) => (Some(*s), None, None),
        _ => {
            let (v, k) = input_view(&c, &p.sizes, &name)?;
            (None, Some(v), k)
        }
    };
    let (dst, compute) = (out.view.clone(), p.compute);
    launch(&name, p.device, move || {
        let _keep = (ka, kb, kc);
        let third = match (&vc, weight) {
            (Some(v), _) => Third::View(v),
            (None, Some(s)) => Third::Scalar(s),
            (None, None) => unreachable!("one of the two is set above"),
        };
        npu_kernels::ternary(op, &dst, &va, &vb, third, value, compute).map_err(|e| e.0)
    })
}

pub const OPS: &[(&str, fn(&Ctx) -> Result<()>)] = &[
    ("addcmul", |c| arith(c, TernaryOp::Addcmul, Variant::Functional)),
    ("addcmul_", |c| arith(c, TernaryOp::Addcmul, Variant::InPlace)),
    ("addcmul.out", |c| arith(c, TernaryOp::Addcmul, Variant::Out)),
    ("addcdiv", |c| arith(c, TernaryOp::Addcdiv, Variant::Functional)),
    ("addcdiv_", |c| arith(c, TernaryOp::Addcdiv, Variant::InPlace)),
    ("addcdiv.out", |c| arith(c, TernaryOp::Addcdiv, Variant::Out)),
    ("lerp.Scalar", |c| arith(c, TernaryOp::Lerp, Variant::Functional)),
    ("lerp_.Scalar", |c| arith(c, TernaryOp::Lerp, Variant::InPlace)),
    ("lerp.Scalar_out", |c| arith(c, TernaryOp::Lerp, Variant::Out)),
    ("lerp.Tensor", |c| arith(c, TernaryOp::Lerp, Variant::Functional)),
    ("lerp_.Tensor", |c| arith(c, TernaryOp::Lerp, Variant::InPlace)),
    ("lerp.Tensor_out", |c| arith(c, TernaryOp::Lerp, Variant::Out)),
    ("where.self", |c| where_self(c, Variant::Functional)),
    ("where.self_out", |c| where_self(c, Variant::Out)),
    ("masked_fill_.Scalar", masked_fill_),
    ("masked_fill_.Tensor", masked_fill_),
];
