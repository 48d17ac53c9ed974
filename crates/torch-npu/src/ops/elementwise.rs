//! Elementwise ops: one adapter per op family serves the functional, in-place and out=
//! overloads (`add.Tensor`, `add_.Tensor`, `add.out`). The adapter promotes dtypes and
//! broadcasts shapes as PyTorch does, then launches an npu-kernels kernel on views expanded
//! to the output's shape.
use npu_kernels::{BinaryOp, DType, Scalar, UnaryOp, View};

use super::promote::{can_cast, result_type, to_float, Operand};
use super::shape::{broadcast_shapes, expand_to};
use super::{common_device, launch, launch_sized, Ctx, DeviceKind, Tensor};
use crate::status::{Error, Result};

/// Which overload of an op family is being called.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Variant {
    Functional,
    InPlace,
    Out,
}

/// How the result dtype follows from the promoted input dtype.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// The promoted dtype (add, mul, abs, ...).
    Promoted,
    /// Integral inputs compute in the default float dtype (div, sqrt, exp, ...).
    Float,
    /// Comparisons and predicates: bool.
    Bool,
}

/// An input: an npu tensor, or a value held on the host (a Scalar argument or a CPU 0-dim
/// tensor), which is copied into the launch so the caller may free it at once.
pub enum Input {
    Device(Tensor),
    Host(Scalar, Operand),
}

impl Input {
    pub fn operand(&self) -> Operand {
        match self {
            Input::Device(t) => Operand::of(t),
            Input::Host(_, o) => *o,
        }
    }

    /// [`input_view`], taking the tensor's own view when it already has the output's sizes
    /// (no copy of its shape on the per-op path).
    pub fn into_view(self, sizes: &[i64], op: &str) -> Result<(View, Option<Box<[u8; 16]>>)> {
        match self {
            Input::Device(t) if t.sizes() == sizes => Ok((t.view, None)),
            other => input_view(&other, sizes, op),
        }
    }
}

/// Argument `i` as an input: npu tensors stay on the device, CPU 0-dim tensors and Scalar
/// arguments become host values.
pub fn input(ctx: &Ctx, i: usize) -> Result<Input> {
    match ctx.opt_tensor(i)? {
        Some(t) if t.device == DeviceKind::Cpu && t.sizes().is_empty() => {
            Ok(Input::Host(ctx.scalar(i)?, Operand::of(&t)))
        }
        Some(t) => Ok(Input::Device(t)),
        None => {
            let s = ctx.scalar(i)?;
            Ok(Input::Host(s, Operand::scalar(&s)))
        }
    }
}

/// The output to write: a new tensor, `self` (argument 0), or the out= argument (the last).
pub fn output(
    ctx: &Ctx,
    variant: Variant,
    sizes: &[i64],
    dtype: DType,
    device: i32,
) -> Result<Tensor> {
    let op = ctx.op;
    match variant {
        Variant::Functional => ctx.new_output(sizes, None, dtype, device),
        Variant::InPlace => {
            let out = ctx.tensor(0)?;
            if out.sizes() != sizes {
                return Err(Error::runtime(format!(
                    "{op}: output with shape {:?} doesn't match the broadcast shape {:?}",
                    out.sizes(),
                    sizes
                )));
            }
            if !can_cast(dtype, out.dtype()) {
                return Err(Error::runtime(format!(
                    "{op}: result type {} can't be cast to the desired output type {}",
                    dtype.name(),
                    out.dtype().name()
                )));
            }
            ctx.return_arg(0);
            Ok(out)
        }
        Variant::Out => {
            let i = ctx.nargs() - 1;
            let out = ctx.tensor(i)?;
            common_device(op, &[&out]).and_then(|d| {
                if d == device {
                    Ok(())
                } else {
                    Err(Error::runtime(format!(
                        "Expected all tensors to be on the same device, but found at least two \
                         devices, npu:{device} and npu:{d}! (when checking argument for out in {op})"
                    )))
                }
            })?;
            if !can_cast(dtype, out.dtype()) {
                return Err(Error::runtime(format!(
                    "{op}: result type {} can't be cast to the desired output type {}",
                    dtype.name(),
                    out.dtype().name()
                )));
            }
            let out = ctx.resize_arg(i, sizes)?;
            ctx.return_arg(i);
            Ok(out)
        }
    }
}

/// A value held on the host, as a 0-stride view of `sizes` (the box must outlive the kernel).
fn host_view(value: &Box<[u8; 16]>, dtype: DType, sizes: &[i64]) -> View {
    View { ptr: value.as_ptr() as *mut u8, dtype, sizes: sizes.to_vec(), strides: vec![0; sizes.len()] }
}

/// Stores `s` as one element of `dtype` in a 16-byte box.
fn boxed_scalar(s: Scalar, dtype: DType) -> Result<Box<[u8; 16]>> {
    let bytes = Box::new([0u8; 16]);
    let view = View { ptr: bytes.as_ptr() as *mut u8, dtype, sizes: vec![], strides: vec![] };
    npu_kernels::fill(&view, s).map_err(|e| Error::runtime(e.0))?;
    Ok(bytes)
}

fn dtype_of_host(o: Operand) -> DType {
    match o {
        Operand::Dim(d) | Operand::ZeroDim(d) | Operand::Wrapped(d) => d,
    }
}

fn devices<'a>(inputs: &[&'a Input]) -> Vec<&'a Tensor> {
    inputs
        .iter()
        .filter_map(|i| match i {
            Input::Device(t) => Some(t),
            Input::Host(..) => None,
        })
        .collect()
}

/// Shapes, dtypes and device of an elementwise call.
pub struct Plan {
    pub device: i32,
    pub sizes: Vec<i64>,
    pub compute: DType,
    pub result: DType,
}

pub fn plan(ctx: &Ctx, inputs: &[&Input], kind: Kind, variant: Variant) -> Result<Plan> {
    let op = ctx.op;
    let tensors = devices(inputs);
    let device = common_device(op, &tensors)?;
    if inputs.iter().any(|i| input_dtype(i).is_complex()) {
        // The elementwise kernels are real-only for now: complex runs on the CPU fallback.
        return Err(Error::use_fallback("complex inputs"));
    }
    let mut sizes: Vec<i64> = tensors[0].sizes().to_vec();
    for t in &tensors[1..] {
        if t.sizes() != sizes.as_slice() {
            sizes = broadcast_shapes(&sizes, t.sizes(), op)?;
        }
    }
    let default_float = ctx.default_float();
    let operands: Vec<Operand> = inputs.iter().map(|i| i.operand()).collect();
    let promoted = result_type(&operands, default_float);
    let compute = match kind {
        Kind::Float => to_float(promoted, default_float),
        _ => promoted,
    };
    let result = if kind == Kind::Bool { DType::Bool } else { compute };
    if variant == Variant::InPlace {
        // In-place ops keep self's shape: self must not be the broadcast one.
        if let Input::Device(s) = inputs[0] {
            if s.sizes() != sizes.as_slice() {
                return Err(Error::runtime(format!(
                    "{op}: output with shape {:?} doesn't match the broadcast shape {:?}",
                    s.sizes(),
                    sizes
                )));
            }
        }
    }
    Ok(Plan { device, sizes, compute, result })
}

/// Byte range [start, end) a view can touch (empty views touch nothing).
fn byte_range(v: &View) -> (usize, usize) {
    if v.sizes.iter().any(|&n| n == 0) {
        return (v.ptr as usize, v.ptr as usize);
    }
    let span: i64 = v.sizes.iter().zip(&v.strides).map(|(&n, &s)| (n - 1) * s).sum();
    let start = v.ptr as usize;
    (start, start + (span as usize + 1) * v.dtype.size())
}

/// PyTorch refuses writes through an output whose elements alias each other, and inputs that
/// partly overlap the output (exactly the same view, as in `x.add_(y)` with x itself, is fine).
pub fn check_overlap(name: &str, out: &Tensor, inputs: &[&Input]) -> Result<()> {
    let internal = out.view.sizes.iter().zip(&out.view.strides).any(|(&n, &s)| n > 1 && s == 0);
    if internal {
        return Err(Error::runtime(format!(
            "{name}: unsupported operation: more than one element of the written-to tensor refers to a single memory location. Please clone() the tensor before performing the operation."
        )));
    }
    let (o0, o1) = byte_range(&out.view);
    for input in inputs {
        let Input::Device(t) = input else { continue };
        if t.storage != out.storage {
            continue;
        }
        let same = t.view.ptr == out.view.ptr && t.view.strides == out.view.strides && t.view.sizes == out.view.sizes;
        let (i0, i1) = byte_range(&t.view);
        if !same && i0 < o1 && o0 < i1 {
            return Err(Error::runtime(format!(
                "{name}: unsupported operation: some elements of the input tensor and the written-to tensor refer to a single memory location. Please clone() the tensor before performing the operation."
            )));
        }
    }
    Ok(())
}

/// The kernel view of an input over the output's sizes, plus what must live as long as it.
pub fn input_view(input: &Input, sizes: &[i64], op: &str) -> Result<(View, Option<Box<[u8; 16]>>)> {
    match input {
        Input::Device(t) => Ok((expand_to(&t.view, sizes, op)?, None)),
        Input::Host(s, o) => {
            let dtype = dtype_of_host(*o);
            let b = boxed_scalar(*s, dtype)?;
            Ok((host_view(&b, dtype, sizes), Some(b)))
        }
    }
}

fn input_dtype(i: &Input) -> DType {
    match i {
        Input::Device(t) => t.dtype(),
        Input::Host(_, o) => dtype_of_host(*o),
    }
}

/// Checks PyTorch makes on dtypes before computing anything.
fn check_operands(name: &str, op: BinaryOp, a: &Input, b: &Input) -> Result<()> {
    let (da, db) = (input_dtype(a), input_dtype(b));
    if op == BinaryOp::Sub && (da == DType::Bool || db == DType::Bool) {
        let msg = if da == DType::Bool && db == DType::Bool {
            "Subtraction, the `-` operator, with two bool tensors is not supported. Use the `^` or `logical_xor()` operator instead."
        } else {
            "Subtraction, the `-` operator, with a bool tensor is not supported. If you are trying to invert a mask, use the `~` or `logical_not()` operator instead."
        };
        return Err(Error::not_implemented(format!("{name}: {msg}")));
    }
    // A negative integer exponent is known before launch only when it is a host value.
    if let (BinaryOp::Pow, Input::Host(Scalar::Int(e), _)) = (op, b) {
        if *e < 0 && !da.is_floating() && !da.is_complex() {
            return Err(Error::runtime(format!("{name}: Integers to negative integer powers are not allowed.")));
        }
    }
    Ok(())
}

/// self op other (op.Tensor / op.Scalar / op_ / op.out), with `alpha` at argument 2 if given.
pub fn binary(ctx: &Ctx, op: BinaryOp, kind: Kind, variant: Variant, alpha_arg: Option<usize>) -> Result<()> {
    binary_args(ctx, op, kind, variant, alpha_arg, [0, 1])
}

/// rsub(self, other, alpha) = other - alpha * self: sub with the operands swapped.
pub fn rsub(ctx: &Ctx, variant: Variant) -> Result<()> {
    binary_args(ctx, BinaryOp::Sub, Kind::Promoted, variant, Some(2), [1, 0])
}

/// [`binary`] with its two operands read from arguments `args`.
fn binary_args(ctx: &Ctx, op: BinaryOp, kind: Kind, variant: Variant, alpha_arg: Option<usize>, args: [usize; 2]) -> Result<()> {
    let name = ctx.op;
    let a = input(ctx, args[0])?;
    let b = input(ctx, args[1])?;
    if matches!(a, Input::Host(..)) && matches!(b, Input::Host(..)) {
        return Err(Error::runtime(format!("{name}: expected at least one npu tensor")));
    }
    let p = plan(ctx, &[&a, &b], kind, variant)?;
    check_operands(&name, op, &a, &b)?;
    if !op.accepts(p.compute) {
        return Err(Error::runtime(format!(
            "{name}: \"{}_cpu\" not implemented for '{}'",
            op.name(),
            p.compute.name()
        )));
    }
    let alpha = match alpha_arg {
        Some(i) => ctx.scalar(i)?,
        None => Scalar::Int(1),
    };
    if let (Some(_), Scalar::Float(_)) = (alpha_arg, alpha) {
        if !matches!(p.compute, DType::F16 | DType::BF16 | DType::F32 | DType::F64 | DType::C64 | DType::C128) {
            return Err(Error::runtime(format!(
                "{name}: For integral input tensors, argument alpha must not be a floating point number."
            )));
        }
    }
    let out = output(ctx, variant, &p.sizes, p.result, p.device)?;
    if out.numel() == 0 {
        return Ok(());
    }
    if variant != Variant::Functional {
        check_overlap(&name, &out, &[&a, &b])?;
    }
    let (va, ka) = a.into_view(&p.sizes, &name)?;
    let numel = out.numel();
    let dst = out.view;
    let compute = p.compute;
    // A host scalar on the right goes to the kernel as a value, not a view in its dtype: it
    // keeps its full precision, as PyTorch's CPU kernels keep it.
    if let Input::Host(s, _) = b {
        return launch_sized(&name, p.device, numel, move || {
            let _keep = ka;
            npu_kernels::binary_scalar(op, &dst, &va, s, alpha, compute).map_err(|e| e.0)
        });
    }
    let (vb, kb) = b.into_view(&p.sizes, &name)?;
    launch_sized(&name, p.device, numel, move || {
        let _keep = (ka, kb);
        npu_kernels::binary(op, &dst, &va, &vb, alpha, compute).map_err(|e| e.0)
    })
}

/// div(self, other, *, rounding_mode): true division for None, else truncating or flooring
/// division that keeps integer dtypes.
pub fn div_mode(ctx: &Ctx, variant: Variant) -> Result<()> {
    let mode = if ctx.is_none(2) { None } else { Some(ctx.string(2)?) };
    match mode.as_deref() {
        None => binary(ctx, BinaryOp::Div, Kind::Float, variant, None),
        Some("trunc") => binary(ctx, BinaryOp::DivTrunc, Kind::Promoted, variant, None),
        Some("floor") => binary(ctx, BinaryOp::DivFloor, Kind::Promoted, variant, None),
        Some(other) => Err(Error::value(format!(
            "{}: div expected rounding_mode to be one of None, 'trunc', or 'floor' but found '{other}'",
            ctx.op
        ))),
    }
}

/// op(self) (op / op_ / op.out).
pub fn unary(ctx: &Ctx, op: UnaryOp, kind: Kind, variant: Variant) -> Result<()> {
    let name = ctx.op;
    let a = input(ctx, 0)?;
    let p = plan(ctx, &[&a], kind, variant)?;
    if !op.accepts(p.compute) {
        return Err(Error::runtime(format!(
            "{name}: \"{}_cpu\" not implemented for '{}'",
            op.name(),
            p.compute.name()
        )));
    }
    let out = output(ctx, variant, &p.sizes, p.result, p.device)?;
    if out.numel() == 0 {
        return Ok(());
    }
    if variant != Variant::Functional {
        check_overlap(&name, &out, &[&a])?;
    }
    let (va, ka) = a.into_view(&p.sizes, &name)?;
    let numel = out.numel();
    let dst = out.view;
    let compute = p.compute;
    launch_sized(&name, p.device, numel, move || {
        let _keep = ka;
        npu_kernels::unary(op, &dst, &va, compute).map_err(|e| e.0)
    })
}

/// clamp / clamp.Tensor (functional, in-place, out=): `min(max(x, lo), hi)` with either bound
/// optional, scalar or tensor (broadcast), in the promoted dtype; `lo > hi` gives `hi`.
pub fn clamp(ctx: &Ctx, variant: Variant) -> Result<()> {
    let name = ctx.op;
    let x = input(ctx, 0)?;
    let bound = |i: usize| -> Result<Option<Input>> { if ctx.is_none(i) { Ok(None) } else { input(ctx, i).map(Some) } };
    let (lo, hi) = (bound(1)?, bound(2)?);
    if lo.is_none() && hi.is_none() {
        return Err(Error::runtime(format!("{name}: torch.clamp: At least one of 'min' or 'max' must not be None")));
    }
    let mut all = vec![&x];
    all.extend(lo.iter());
    all.extend(hi.iter());
    let p = plan(ctx, &all, Kind::Promoted, variant)?;
    if p.compute == DType::Bool {
        return Err(Error::runtime(format!("{name}: \"clamp_cpu\" not implemented for 'Bool'")));
    }
    let out = output(ctx, variant, &p.sizes, p.result, p.device)?;
    if out.numel() == 0 {
        return Ok(());
    }
    let (vx, kx) = input_view(&x, &p.sizes, &name)?;
    let dst = out.view.clone();
    let compute = p.compute;
    let host = |b: &Option<Input>| match b {
        Some(Input::Host(s, _)) => Some(*s),
        _ => None,
    };
    if lo.as_ref().is_none_or(|b| matches!(b, Input::Host(..))) && hi.as_ref().is_none_or(|b| matches!(b, Input::Host(..))) {
        let (l, h) = (host(&lo), host(&hi));
        return launch(&name, p.device, move || {
            let _keep = kx;
            npu_kernels::clamp_scalar(&dst, &vx, l, h, compute).map_err(|e| e.0)
        });
    }
    let view = |b: &Option<Input>| b.as_ref().map(|b| input_view(b, &p.sizes, &name)).transpose();
    let (vl, vh) = (view(&lo)?, view(&hi)?);
    launch(&name, p.device, move || {
        let one = Scalar::Int(1);
        let mut src = vx.clone();
        for (op, bound) in [(BinaryOp::Maximum, &vl), (BinaryOp::Minimum, &vh)] {
            if let Some((v, _keep)) = bound {
                npu_kernels::binary(op, &dst, &src, v, one, compute).map_err(|e| e.0)?;
                src = dst.clone();
            }
        }
        let _keep = kx;
        Ok(())
    })
}

/// nan_to_num(self, nan=None, posinf=None, neginf=None), nan_to_num_ and .out.
pub fn nan_to_num(ctx: &Ctx, variant: Variant) -> Result<()> {
    let name = ctx.op;
    let x = ctx.tensor(0)?;
    let device = common_device(&name, &[&x])?;
    if x.dtype().is_complex() {
        return Err(Error::use_fallback("complex input"));
    }
    let opt = |i: usize| (!ctx.is_none(i)).then(|| ctx.double(i));
    let (nan, posinf, neginf) = (opt(1).unwrap_or(0.0), opt(2), opt(3));
    let out = match variant {
        Variant::InPlace => {
            ctx.return_arg(0);
            x.clone()
        }
        _ => output(ctx, variant, x.sizes(), x.dtype(), device)?,
    };
    if out.dtype() != x.dtype() {
        return Err(Error::runtime(format!("{name}: Expected out tensor to have dtype {}, but got {} instead", x.dtype().name(), out.dtype().name())));
    }
    let (dst, src) = (out.view.clone(), x.view);
    launch(&name, device, move || npu_kernels::nan_to_num(&dst, &src, nan, posinf, neginf).map_err(|e| e.0))
}
