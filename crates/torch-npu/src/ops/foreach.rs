//! `_foreach_*` ops (torch.optim with `foreach=True`, `clip_grad_norm_`): one launch per call
//! runs the elementwise kernel over every tensor of the lists, in place or into new tensors
//! returned as one list.
use npu_kernels::{BinaryOp, DType, Scalar, TernaryOp, Third, UnaryOp, View};
use std::sync::Mutex;

use super::elementwise::Kind;
use super::promote::{can_cast, result_type, to_float, Operand};
use super::shape::expand_to;
use super::{common_device, launch, Ctx, Tensor};
use crate::status::{Error, Result};

/// The second (or third) operand of each element.
#[derive(Clone, Copy)]
pub enum Other {
    /// A Tensor[] argument, one per element.
    List(usize),
    /// One Scalar argument for every element.
    Scalar(usize),
    /// A Scalar[] argument, one per element.
    ScalarList(usize),
}

enum Value {
    View(View),
    Scalar(Scalar),
}

fn values(ctx: &Ctx, other: Other, n: usize, selves: &[Tensor]) -> Result<Vec<(Value, Operand)>> {
    let op = ctx.op;
    let mismatch = |m: usize| Error::runtime(format!("{op}: Tensor lists must have the same number of tensors, got {n} and {m}"));
    match other {
        Other::List(i) => {
            let list = ctx.tensor_list(i)?;
            if list.len() != n {
                return Err(mismatch(list.len()));
            }
            list.iter()
                .zip(selves)
                .map(|(t, s)| {
                    common_device(op, &[s, t])?;
                    Ok((Value::View(expand_to(&t.view, s.sizes(), op)?), Operand::of(t)))
                })
                .collect()
        }
        Other::Scalar(i) => {
            let s = ctx.scalar(i)?;
            Ok((0..n).map(|_| (Value::Scalar(s), Operand::scalar(&s))).collect())
        }
        Other::ScalarList(i) => {
            let list = ctx.scalar_list(i)?;
            if list.len() != n {
                return Err(mismatch(list.len()));
            }
            Ok(list.into_iter().map(|s| (Value::Scalar(s), Operand::scalar(&s))).collect())
        }
    }
}

/// The destination of element `i`: `self[i]` in place, or a new tensor appended to the results.
fn destination(ctx: &Ctx, inplace: bool, s: &Tensor, dtype: DType, device: i32) -> Result<View> {
    if inplace {
        if !can_cast(dtype, s.dtype()) {
            return Err(Error::runtime(format!(
                "{}: result type {} can't be cast to the desired output type {}",
                ctx.op,
                dtype.name(),
                s.dtype().name()
            )));
        }
        Ok(s.view.clone())
    } else {
        Ok(ctx.new_output(s.sizes(), None, dtype, device)?.view)
    }
}

/// One tensor's kernel and its element count.
struct Item(usize, Box<dyn FnOnce() -> std::result::Result<(), String> + Send>);

/// Tensors at least this large run one after another, each split over the pool. Smaller ones
/// run whole, side by side: one fork-join for all of them instead of one per tensor (an
/// optimizer's parameter list is mostly small tensors).
const SPLIT_MIN_ELEMENTS: usize = 1 << 20;

fn finish(ctx: &Ctx, inplace: bool, device: Option<i32>, work: Vec<Item>) -> Result<()> {
    if !inplace {
        ctx.pack_results();
    }
    let Some(device) = device else { return Ok(()) };
    launch(ctx.op, device, move || {
        let (big, small): (Vec<Item>, Vec<Item>) = work.into_iter().partition(|w| w.0 >= SPLIT_MIN_ELEMENTS);
        big.into_iter().try_for_each(|w| (w.1)())?;
        let small: Vec<Mutex<Option<Item>>> = small.into_iter().map(|w| Mutex::new(Some(w))).collect();
        npu_kernels::for_each_parallel(small.len(), |i| {
            let w = small[i].lock().unwrap_or_else(|p| p.into_inner()).take();
            w.map_or(Ok(()), |w| npu_kernels::with_sequential(w.1))
        })
    })
}

fn selves(ctx: &Ctx) -> Result<(Vec<Tensor>, Option<i32>)> {
    let list = ctx.tensor_list(0)?;
    let refs: Vec<&Tensor> = list.iter().collect();
    let device = if list.is_empty() { None } else { Some(common_device(ctx.op, &refs)?) };
    if list.iter().any(|t| t.dtype().is_complex()) {
        return Err(Error::use_fallback("complex tensors"));
    }
    Ok((list, device))
}

/// op(self[i], other[i]) for a binary op; `alpha_arg` for add/sub.
fn binary(ctx: &Ctx, op: BinaryOp, kind: Kind, other: Other, alpha_arg: Option<usize>, inplace: bool) -> Result<()> {
    let (list, device) = selves(ctx)?;
    let others = values(ctx, other, list.len(), &list)?;
    let alpha = match alpha_arg {
        Some(i) => ctx.scalar(i)?,
        None => Scalar::Int(1),
    };
    let default = ctx.default_float();
    let mut work: Vec<Item> = Vec::new();
    for (s, (b, bo)) in list.iter().zip(others) {
        let promoted = result_type(&[Operand::of(s), bo], default);
        let compute = if kind == Kind::Float { to_float(promoted, default) } else { promoted };
        if !op.accepts(compute) {
            return Err(Error::runtime(format!("{}: \"{}_cpu\" not implemented for '{}'", ctx.op, op.name(), compute.name())));
        }
        let dst = destination(ctx, inplace, s, compute, device.unwrap_or(0))?;
        let a = s.view.clone();
        let numel = dst.numel();
        work.push(Item(numel, match b {
            Value::View(b) => Box::new(move || npu_kernels::binary(op, &dst, &a, &b, alpha, compute).map_err(|e| e.0)),
            Value::Scalar(v) => Box::new(move || npu_kernels::binary_scalar(op, &dst, &a, v, alpha, compute).map_err(|e| e.0)),
        }));
    }
    finish(ctx, inplace, device, work)
}

fn unary(ctx: &Ctx, op: UnaryOp, kind: Kind, inplace: bool) -> Result<()> {
    let (list, device) = selves(ctx)?;
    let default = ctx.default_float();
    let mut work: Vec<Item> = Vec::new();
    for s in &list {
        let compute = if kind == Kind::Float { to_float(s.dtype(), default) } else { s.dtype() };
        if !op.accepts(compute) {
            return Err(Error::runtime(format!("{}: \"{}_cpu\" not implemented for '{}'", ctx.op, op.name(), compute.name())));
        }
        let dst = destination(ctx, inplace, s, compute, device.unwrap_or(0))?;
        let a = s.view.clone();
        work.push(Item(dst.numel(), Box::new(move || npu_kernels::unary(op, &dst, &a, compute).map_err(|e| e.0))));
    }
    finish(ctx, inplace, device, work)
}

/// addcmul / addcdiv (self, tensor1[], tensor2[], value | values[]) and lerp (self, end[],
/// weight | weights[]).
fn ternary(ctx: &Ctx, op: TernaryOp, last: Other, inplace: bool) -> Result<()> {
    let (list, device) = selves(ctx)?;
    let n = list.len();
    let b = values(ctx, Other::List(1), n, &list)?;
    let (c, scalars) = if op == TernaryOp::Lerp {
        (None, values(ctx, last, n, &list)?)
    } else {
        (Some(values(ctx, Other::List(2), n, &list)?), values(ctx, last, n, &list)?)
    };
    let default = ctx.default_float();
    let mut work: Vec<Item> = Vec::new();
    let mut cs = c.map(|v| v.into_iter());
    for ((s, (bv, bo)), (sv, _)) in list.iter().zip(b).zip(scalars) {
        let third = cs.as_mut().and_then(|it| it.next());
        let mut operands = vec![Operand::of(s), bo];
        if let Some((_, co)) = &third {
            operands.push(*co);
        }
        let compute = result_type(&operands, default);
        if !compute.is_floating() && op != TernaryOp::Addcmul {
            return Err(Error::runtime(format!("{}: {} needs floating tensors, got {}", ctx.op, op.name(), compute.name())));
        }
        let dst = destination(ctx, inplace, s, compute, device.unwrap_or(0))?;
        let a = s.view.clone();
        let Value::View(bv) = bv else { return Err(Error::runtime(format!("{}: expected a tensor list", ctx.op))) };
        let (third_view, value) = match (third, sv) {
            (Some((Value::View(v), _)), Value::Scalar(s)) => (Some(v), s),
            (None, Value::Scalar(w)) => (None, w),
            (None, Value::View(w)) => (Some(w), Scalar::Int(1)),
            _ => return Err(Error::runtime(format!("{}: unsupported arguments", ctx.op))),
        };
        work.push(Item(dst.numel(), Box::new(move || {
            let t = match (&third_view, op) {
                (Some(v), _) => Third::View(v),
                (None, _) => Third::Scalar(value),
            };
            npu_kernels::ternary(op, &dst, &a, &bv, t, value, compute).map_err(|e| e.0)
        })));
    }
    finish(ctx, inplace, device, work)
}

fn zero_(ctx: &Ctx) -> Result<()> {
    let (list, device) = selves(ctx)?;
    let work = list
        .iter()
        .map(|t| {
            let v = t.view.clone();
            Item(v.numel(), Box::new(move || npu_kernels::fill(&v, Scalar::Int(0)).map_err(|e| e.0)))
        })
        .collect();
    finish(ctx, true, device, work)
}

/// What a `_foreach_` op computes.
#[derive(Clone, Copy)]
pub enum Spec {
    Binary(BinaryOp, Kind, Other, Option<usize>, bool),
    Unary(UnaryOp, Kind, bool),
    Ternary(TernaryOp, Other, bool),
    Zero,
}

pub fn run(ctx: &Ctx, spec: Spec) -> Result<()> {
    match spec {
        Spec::Binary(op, kind, other, alpha, inplace) => binary(ctx, op, kind, other, alpha, inplace),
        Spec::Unary(op, kind, inplace) => unary(ctx, op, kind, inplace),
        Spec::Ternary(op, last, inplace) => ternary(ctx, op, last, inplace),
        Spec::Zero => zero_(ctx),
    }
}

/// (ATen name, spec) of every `_foreach_` op served.
pub fn table() -> Vec<(String, Spec)> {
    let mut t = Vec::new();
    for (name, op, kind, alpha) in [
        ("add", BinaryOp::Add, Kind::Promoted, Some(2)),
        ("sub", BinaryOp::Sub, Kind::Promoted, Some(2)),
        ("mul", BinaryOp::Mul, Kind::Promoted, None),
        ("div", BinaryOp::Div, Kind::Float, None),
        ("maximum", BinaryOp::Maximum, Kind::Promoted, None),
        ("minimum", BinaryOp::Minimum, Kind::Promoted, None),
        ("clamp_min", BinaryOp::Maximum, Kind::Promoted, None),
        ("clamp_max", BinaryOp::Minimum, Kind::Promoted, None),
        ("pow", BinaryOp::Pow, Kind::Promoted, None),
    ] {
        for (suffix, other, a) in [("Scalar", Other::Scalar(1), None), ("List", Other::List(1), alpha), ("ScalarList", Other::ScalarList(1), None)] {
            t.push((format!("_foreach_{name}_.{suffix}"), Spec::Binary(op, kind, other, a, true)));
            t.push((format!("_foreach_{name}.{suffix}"), Spec::Binary(op, kind, other, a, false)));
        }
    }
    for (name, op, kind) in [
        ("sqrt", UnaryOp::Sqrt, Kind::Float),
        ("neg", UnaryOp::Neg, Kind::Promoted),
        ("abs", UnaryOp::Abs, Kind::Promoted),
        ("reciprocal", UnaryOp::Reciprocal, Kind::Float),
        ("exp", UnaryOp::Exp, Kind::Float),
        ("log", UnaryOp::Log, Kind::Float),
        ("sign", UnaryOp::Sign, Kind::Promoted),
        ("sigmoid", UnaryOp::Sigmoid, Kind::Float),
        ("tanh", UnaryOp::Tanh, Kind::Float),
        ("rsqrt", UnaryOp::Rsqrt, Kind::Float),
    ] {
        t.push((format!("_foreach_{name}_"), Spec::Unary(op, kind, true)));
        t.push((format!("_foreach_{name}"), Spec::Unary(op, kind, false)));
    }
    for (name, op) in [("addcmul", TernaryOp::Addcmul), ("addcdiv", TernaryOp::Addcdiv)] {
        for (suffix, last) in [("Scalar", Other::Scalar(3)), ("ScalarList", Other::ScalarList(3))] {
            t.push((format!("_foreach_{name}_.{suffix}"), Spec::Ternary(op, last, true)));
            t.push((format!("_foreach_{name}.{suffix}"), Spec::Ternary(op, last, false)));
        }
    }
    for (suffix, last) in [("Scalar", Other::Scalar(2)), ("List", Other::List(2)), ("ScalarList", Other::ScalarList(2))] {
        t.push((format!("_foreach_lerp_.{suffix}"), Spec::Ternary(TernaryOp::Lerp, last, true)));
        t.push((format!("_foreach_lerp.{suffix}"), Spec::Ternary(TernaryOp::Lerp, last, false)));
    }
    t.push(("_foreach_zero_".to_string(), Spec::Zero));
    t
}
