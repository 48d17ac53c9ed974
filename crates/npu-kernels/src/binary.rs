//! Binary elementwise kernels (`dst[i] = op(a[i], b[i])`), `where` and `clamp` with scalar
//! bounds, with PyTorch's CPU semantics.

use crate::convert::dispatch_real;
use crate::convert::{Bool8, Element};
use crate::cpu::with_avx2;
use crate::dtype::DType;
use crate::elementwise::{
    any_zero, drive, loader, map1, map2, not_implemented, reject_complex, storer, truth_loader,
    Arg, Input,
};
use crate::math::{b8, truth, Float, Int};
use crate::scalar::Scalar;
use crate::view::{err, View};
use crate::KernelError;
use half::{bf16, f16};

/// Binary elementwise operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    /// True division (`a / b`). With an integer compute dtype it truncates like `DivTrunc`.
    Div,
    DivTrunc,
    DivFloor,
    Remainder,
    Fmod,
    Pow,
    Atan2,
    Maximum,
    Minimum,
    Fmax,
    Fmin,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    LogicalAnd,
    LogicalOr,
    LogicalXor,
    BitAnd,
    BitOr,
    BitXor,
    Shl,
    Shr,
    Hypot,
    Copysign,
    Xlogy,
}

impl BinaryOp {
    /// Every op, for tests and tables.
    pub const ALL: [BinaryOp; 31] = {
        use BinaryOp::*;
        [
            Add, Sub, Mul, Div, DivTrunc, DivFloor, Remainder, Fmod, Pow, Atan2, Maximum, Minimum,
            Fmax, Fmin, Eq, Ne, Lt, Le, Gt, Ge, LogicalAnd, LogicalOr, LogicalXor, BitAnd, BitOr,
            BitXor, Shl, Shr, Hypot, Copysign, Xlogy,
        ]
    };

    /// The ATen name (used in error messages).
    pub fn name(self) -> &'static str {
        use BinaryOp::*;
        match self {
            Add => "add",
            Sub => "sub",
            Mul => "mul",
            Div => "div",
            DivTrunc => "div_trunc",
            DivFloor => "div_floor",
            Remainder => "remainder",
            Fmod => "fmod",
            Pow => "pow",
            Atan2 => "atan2",
            Maximum => "maximum",
            Minimum => "minimum",
            Fmax => "fmax",
            Fmin => "fmin",
            Eq => "eq",
            Ne => "ne",
            Lt => "lt",
            Le => "le",
            Gt => "gt",
            Ge => "ge",
            LogicalAnd => "logical_and",
            LogicalOr => "logical_or",
            LogicalXor => "logical_xor",
            BitAnd => "bitwise_and",
            BitOr => "bitwise_or",
            BitXor => "bitwise_xor",
            Shl => "lshift",
            Shr => "rshift",
            Hypot => "hypot",
            Copysign => "copysign",
            Xlogy => "xlogy",
        }
    }

    /// Whether the op computes in `compute` (the kernel returns PyTorch's "not implemented"
    /// error otherwise; bool subtraction has its own message), so callers can refuse on the
    /// host before launching.
    pub fn accepts(self, compute: DType) -> bool {
        use BinaryOp::*;
        if self.is_predicate() {
            return true;
        }
        match compute {
            DType::F16 | DType::BF16 | DType::F32 | DType::F64 => !matches!(self, BitAnd | BitOr | BitXor | Shl | Shr),
            DType::Bool => matches!(self, Add | Mul | Maximum | Minimum | Fmax | Fmin | BitAnd | BitOr | BitXor),
            DType::C64 | DType::C128 => false,
            _ => !matches!(self, Atan2 | Hypot | Copysign | Xlogy),
        }
    }

    /// Comparisons and logical ops: their result is a bool (1/0 in the destination dtype).
    pub fn is_predicate(self) -> bool {
        use BinaryOp::*;
        matches!(
            self,
            Eq | Ne | Lt | Le | Gt | Ge | LogicalAnd | LogicalOr | LogicalXor
        )
    }
}

/// The second operand.
#[derive(Clone, Copy)]
enum Operand<'a> {
    View(&'a View),
    Scalar(Scalar),
}

/// `dst[i] = op(a[i], b[i])` with both operands converted to `compute` (f16/bf16 compute in
/// f32 and round once); comparisons and logical ops write bool results converted to
/// `dst.dtype`. `Add` and `Sub` compute `a ± alpha * b`; pass `Scalar::Int(1)` otherwise.
/// `a` and `b` must have `dst`'s sizes (broadcast dims have stride 0). Integer division or
/// remainder by zero returns `Err(KernelError("ZeroDivisionError"))`, like PyTorch.
pub fn binary(
    op: BinaryOp,
    dst: &View,
    a: &View,
    b: &View,
    alpha: Scalar,
    compute: DType,
) -> Result<(), KernelError> {
    reject_complex(op.name(), &[b.dtype])?;
    run_binary(op, dst, a, Operand::View(b), alpha, compute)
}

/// [`binary`] with `b` a scalar, converted to `compute` once. As in PyTorch, with f16/bf16
/// compute the scalar of `Mul` and the divisions stays in f32, and float `Pow` with exponent
/// 2, 3, 0.5, -0.5, -1 or -2 uses multiplications, `sqrt` and reciprocals; integer `Pow`
/// with a negative exponent is an error.
pub fn binary_scalar(
    op: BinaryOp,
    dst: &View,
    a: &View,
    b: Scalar,
    alpha: Scalar,
    compute: DType,
) -> Result<(), KernelError> {
    run_binary(op, dst, a, Operand::Scalar(b), alpha, compute)
}

fn run_binary(
    op: BinaryOp,
    dst: &View,
    a: &View,
    b: Operand,
    alpha: Scalar,
    compute: DType,
) -> Result<(), KernelError> {
    let name = op.name();
    reject_complex(name, &[dst.dtype, a.dtype, compute])?;
    for s in [
        Some(alpha),
        if let Operand::Scalar(s) = b {
            Some(s)
        } else {
            None
        },
    ]
    .into_iter()
    .flatten()
    {
        if let Scalar::Complex(..) = s {
            return Err(err(name, "unsupported dtype complex scalar".into()));
        }
    }
    match compute {
        DType::F16 | DType::BF16 => float_binary::<f32>(op, dst, a, b, alpha, Some(compute)),
        DType::F32 => float_binary::<f32>(op, dst, a, b, alpha, None),
        DType::F64 => float_binary::<f64>(op, dst, a, b, alpha, None),
        DType::U8 => int_binary::<u8>(op, dst, a, b, alpha),
        DType::I8 => int_binary::<i8>(op, dst, a, b, alpha),
        DType::I16 => int_binary::<i16>(op, dst, a, b, alpha),
        DType::I32 => int_binary::<i32>(op, dst, a, b, alpha),
        DType::I64 => int_binary::<i64>(op, dst, a, b, alpha),
        DType::Bool => bool_binary(op, dst, a, b, alpha),
        DType::C64 | DType::C128 => unreachable!(),
    }
}

/// A scalar converted to the compute dtype (rounded to f16/bf16 first if that is the compute
/// dtype) and held as `M`.
pub(crate) fn scalar_to<M: Element>(s: Scalar, via: Option<DType>) -> M {
    match via {
        Some(DType::F16) => s.to_element::<f16>().cast::<M>(),
        Some(DType::BF16) => s.to_element::<bf16>().cast::<M>(),
        _ => s.to_element::<M>(),
    }
}

/// The two inputs; `opmath_scalar`: a scalar `b` skips the f16/bf16 rounding.
fn inputs<'a, M: Element>(
    a: &'a View,
    b: Operand<'a>,
    via: Option<DType>,
    opmath_scalar: bool,
) -> [Input<'a, M>; 2] {
    [
        Input::View(a, loader::<M>(a.dtype, via)),
        match b {
            Operand::View(v) => Input::View(v, loader::<M>(v.dtype, via)),
            Operand::Scalar(s) => {
                Input::Const(scalar_to::<M>(s, if opmath_scalar { None } else { via }))
            }
        },
    ]
}

/// Runs a predicate kernel (bool results, never rounded).
fn run_pred<M: Element>(
    op: BinaryOp,
    dst: &View,
    ins: [Input<M>; 2],
    via: Option<DType>,
    f: impl Fn(&Arg<M>, &Arg<M>, &mut [Bool8]) + Sync,
) -> Result<(), KernelError> {
    drive::<M, Bool8, 2>(
        op.name(),
        dst,
        ins,
        via.is_none(),
        storer::<Bool8>(dst.dtype, None),
        true,
        &|[x, y], out| {
            f(x, y, out);
            Ok(())
        },
    )
}

fn float_binary<F: Float>(
    op: BinaryOp,
    dst: &View,
    a: &View,
    b: Operand,
    alpha: Scalar,
    via: Option<DType>,
) -> Result<(), KernelError> {
    use BinaryOp::*;
    let opmath = matches!(op, Mul | Div | DivTrunc | DivFloor);
    let ins = inputs::<F>(a, b, via, opmath);
    if op.is_predicate() {
        return run_pred(op, dst, ins, via, move |x, y, out| {
            float_pred::<F>(op, x, y, out)
        });
    }
    if matches!(op, BitAnd | BitOr | BitXor | Shl | Shr) {
        return Err(not_implemented(
            &format!("{}_cpu", op.name()),
            via.unwrap_or(F::DTYPE),
        ));
    }
    let alpha = scalar_to::<F>(alpha, via);
    if let (Some(DType::BF16), Operand::View(bv)) = (via, b) {
        if crate::binary_bf16::try_run(op, dst, a, bv, alpha.cast::<f32>()) {
            return Ok(());
        }
    }
    let pow_exp = match (op, b) {
        (Pow, Operand::Scalar(s)) => Some(scalar_to::<F>(s, via)),
        _ => None,
    };
    drive::<F, F, 2>(
        op.name(),
        dst,
        ins,
        via.is_none(),
        storer::<F>(dst.dtype, via),
        via.is_none(),
        &|[x, y], out| {
            float_arith::<F>(op, x, y, alpha, pow_exp, out);
            Ok(())
        },
    )
}

with_avx2!(fn float_pred<F: Float>(op: BinaryOp, a: &Arg<F>, b: &Arg<F>, out: &mut [Bool8]) => float_pred_body);

#[inline(always)]
fn float_pred_body<F: Float>(op: BinaryOp, a: &Arg<F>, b: &Arg<F>, out: &mut [Bool8]) {
    use BinaryOp::*;
    let z = F::ZERO;
    match op {
        Eq => map2!(a, b, out, |x: F, y: F| b8(x == y)),
        Ne => map2!(a, b, out, |x: F, y: F| b8(x != y)),
        Lt => map2!(a, b, out, |x: F, y: F| b8(x < y)),
        Le => map2!(a, b, out, |x: F, y: F| b8(x <= y)),
        Gt => map2!(a, b, out, |x: F, y: F| b8(x > y)),
        Ge => map2!(a, b, out, |x: F, y: F| b8(x >= y)),
        LogicalAnd => map2!(a, b, out, |x: F, y: F| b8(x != z && y != z)),
        LogicalOr => map2!(a, b, out, |x: F, y: F| b8(x != z || y != z)),
        LogicalXor => map2!(a, b, out, |x: F, y: F| b8((x != z) != (y != z))),
        _ => unreachable!(),
    }
}

/// Python's floor division on floats (ATen's `div_floor_floating`).
#[inline(always)]
fn div_floor<F: Float>(a: F, b: F) -> F {
    if b == F::ZERO {
        return a / b;
    }
    let m = a % b;
    let mut d = (a - m) / b;
    if m != F::ZERO && ((b < F::ZERO) != (m < F::ZERO)) {
        d = d - F::ONE;
    }
    if d != F::ZERO {
        let f = d.floor();
        if d - f > F::c(0.5) {
            f + F::ONE
        } else {
            f
        }
    } else {
        F::ZERO.copysign(a / b)
    }
}

with_avx2!(fn float_arith<F: Float>(
    op: BinaryOp,
    a: &Arg<F>,
    b: &Arg<F>,
    alpha: F,
    pow_exp: Option<F>,
    out: &mut [F],
) => float_arith_body);

#[inline(always)]
fn float_arith_body<F: Float>(
    op: BinaryOp,
    a: &Arg<F>,
    b: &Arg<F>,
    alpha: F,
    pow_exp: Option<F>,
    out: &mut [F],
) {
    use BinaryOp::*;
    let (zero, one) = (F::ZERO, F::ONE);
    match op {
        Add if alpha == one => map2!(a, b, out, |x: F, y: F| x + y),
        Add => map2!(a, b, out, |x: F, y: F| x + alpha * y),
        Sub if alpha == one => map2!(a, b, out, |x: F, y: F| x - y),
        Sub => map2!(a, b, out, |x: F, y: F| x - alpha * y),
        Mul => map2!(a, b, out, |x: F, y: F| x * y),
        Div => map2!(a, b, out, |x: F, y: F| x / y),
        DivTrunc => map2!(a, b, out, |x: F, y: F| (x / y).trunc()),
        DivFloor => map2!(a, b, out, |x: F, y: F| div_floor::<F>(x, y)),
        Remainder => map2!(a, b, out, |x: F, y: F| {
            let m = x % y;
            if m != zero && ((y < zero) != (m < zero)) {
                m + y
            } else {
                m
            }
        }),
        Fmod => map2!(a, b, out, |x: F, y: F| x % y),
        Pow => match pow_exp {
            // ATen's pow(Tensor, Scalar) shortcuts
            Some(e) if e == F::c(2.0) => map1!(a, out, |x: F| x * x),
            Some(e) if e == F::c(3.0) => map1!(a, out, |x: F| x * x * x),
            Some(e) if e == F::c(0.5) => map1!(a, out, |x: F| x.sqrt()),
            Some(e) if e == F::c(-0.5) => map1!(a, out, |x: F| one / x.sqrt()),
            Some(e) if e == F::c(-1.0) => map1!(a, out, |x: F| one / x),
            Some(e) if e == F::c(-2.0) => map1!(a, out, |x: F| one / (x * x)),
            _ => map2!(a, b, out, |x: F, y: F| x.powf(y)),
        },
        Atan2 => map2!(a, b, out, |x: F, y: F| x.atan2(y)),
        Hypot => map2!(a, b, out, |x: F, y: F| x.hypot(y)),
        Copysign => map2!(a, b, out, |x: F, y: F| x.copysign(y)),
        Xlogy => map2!(a, b, out, |x: F, y: F| {
            if y.is_nan() {
                F::NAN
            } else if x == zero {
                zero
            } else {
                x * y.ln()
            }
        }),
        // NaN-propagating; on ties the second operand wins (as ATen's vectorized max/min)
        Maximum => map2!(a, b, out, |x: F, y: F| {
            if x.is_nan() || y.is_nan() {
                x + y
            } else if x > y {
                x
            } else {
                y
            }
        }),
        Minimum => map2!(a, b, out, |x: F, y: F| {
            if x.is_nan() || y.is_nan() {
                x + y
            } else if x < y {
                x
            } else {
                y
            }
        }),
        // NaN-ignoring; on ties the first operand wins (as glibc's fmax/fmin)
        Fmax => map2!(a, b, out, |x: F, y: F| {
            if x.is_nan() || (!y.is_nan() && y > x) {
                y
            } else {
                x
            }
        }),
        Fmin => map2!(a, b, out, |x: F, y: F| {
            if x.is_nan() || (!y.is_nan() && y < x) {
                y
            } else {
                x
            }
        }),
        _ => unreachable!(),
    }
}

const ZERO_DIVISION: &str = "ZeroDivisionError";

fn int_binary<I: Int>(
    op: BinaryOp,
    dst: &View,
    a: &View,
    b: Operand,
    alpha: Scalar,
) -> Result<(), KernelError> {
    use BinaryOp::*;
    let ins = inputs::<I>(a, b, None, false);
    if op.is_predicate() {
        return run_pred(op, dst, ins, None, move |x, y, out| {
            int_pred::<I>(op, x, y, out)
        });
    }
    if matches!(op, Atan2 | Hypot | Copysign | Xlogy) {
        return Err(not_implemented(&format!("{}_cpu", op.name()), I::DTYPE));
    }
    if matches!(op, Add | Sub) && matches!(alpha, Scalar::Float(_)) {
        return Err(KernelError(
            "For integral input tensors, argument alpha must not be a floating point number."
                .into(),
        ));
    }
    if let (Pow, Operand::Scalar(s)) = (op, b) {
        // ATen checks the exponent as an integer (a float exponent would have promoted the
        // compute dtype to float; converted to int here, it truncates toward zero).
        let negative = match s {
            Scalar::Int(e) => e < 0,
            Scalar::Float(e) => e <= -1.0,
            _ => false,
        };
        if negative {
            return Err(KernelError(
                "Integers to negative integer powers are not allowed.".into(),
            ));
        }
    }
    let alpha = alpha.to_element::<I>();
    drive::<I, I, 2>(
        op.name(),
        dst,
        ins,
        true,
        storer::<I>(dst.dtype, None),
        true,
        &|[x, y], out| int_arith::<I>(op, x, y, alpha, out),
    )
}

fn int_pred<I: Int>(op: BinaryOp, a: &Arg<I>, b: &Arg<I>, out: &mut [Bool8]) {
    use BinaryOp::*;
    let z = I::ZERO;
    match op {
        Eq => map2!(a, b, out, |x: I, y: I| b8(x == y)),
        Ne => map2!(a, b, out, |x: I, y: I| b8(x != y)),
        Lt => map2!(a, b, out, |x: I, y: I| b8(x < y)),
        Le => map2!(a, b, out, |x: I, y: I| b8(x <= y)),
        Gt => map2!(a, b, out, |x: I, y: I| b8(x > y)),
        Ge => map2!(a, b, out, |x: I, y: I| b8(x >= y)),
        LogicalAnd => map2!(a, b, out, |x: I, y: I| b8(x != z && y != z)),
        LogicalOr => map2!(a, b, out, |x: I, y: I| b8(x != z || y != z)),
        LogicalXor => map2!(a, b, out, |x: I, y: I| b8((x != z) != (y != z))),
        _ => unreachable!(),
    }
}

fn int_arith<I: Int>(
    op: BinaryOp,
    a: &Arg<I>,
    b: &Arg<I>,
    alpha: I,
    out: &mut [I],
) -> Result<(), KernelError> {
    use BinaryOp::*;
    let (zero, one) = (I::ZERO, I::ONE);
    if matches!(op, Div | DivTrunc | DivFloor | Remainder | Fmod) && any_zero(b, out.len(), zero) {
        return Err(KernelError(ZERO_DIVISION.into()));
    }
    match op {
        Add if alpha == one => map2!(a, b, out, |x: I, y: I| x.wadd(y)),
        Add => map2!(a, b, out, |x: I, y: I| x.wadd(alpha.wmul(y))),
        Sub if alpha == one => map2!(a, b, out, |x: I, y: I| x.wsub(y)),
        Sub => map2!(a, b, out, |x: I, y: I| x.wsub(alpha.wmul(y))),
        Mul => map2!(a, b, out, |x: I, y: I| x.wmul(y)),
        Div | DivTrunc => map2!(a, b, out, |x: I, y: I| x.wdiv(y)),
        DivFloor => map2!(a, b, out, |x: I, y: I| {
            let q = x.wdiv(y);
            if x.is_neg() != y.is_neg() && x.wrem(y) != zero {
                q.wsub(one)
            } else {
                q
            }
        }),
        Remainder => map2!(a, b, out, |x: I, y: I| {
            let r = x.wrem(y);
            if r != zero && r.is_neg() != y.is_neg() {
                r.wadd(y)
            } else {
                r
            }
        }),
        Fmod => map2!(a, b, out, |x: I, y: I| x.wrem(y)),
        Pow => map2!(a, b, out, |x: I, y: I| x.pow_aten(y)),
        Maximum | Fmax => map2!(a, b, out, |x: I, y: I| x.max(y)),
        Minimum | Fmin => map2!(a, b, out, |x: I, y: I| x.min(y)),
        BitAnd => map2!(a, b, out, |x: I, y: I| x.and(y)),
        BitOr => map2!(a, b, out, |x: I, y: I| x.or(y)),
        BitXor => map2!(a, b, out, |x: I, y: I| x.xor(y)),
        Shl => map2!(a, b, out, |x: I, y: I| x.shl_aten(y)),
        Shr => map2!(a, b, out, |x: I, y: I| x.shr_aten(y)),
        _ => unreachable!(),
    }
    Ok(())
}

fn bool_binary(
    op: BinaryOp,
    dst: &View,
    a: &View,
    b: Operand,
    alpha: Scalar,
) -> Result<(), KernelError> {
    use BinaryOp::*;
    let ins = inputs::<Bool8>(a, b, None, false);
    let t = truth;
    if op.is_predicate() {
        return run_pred(op, dst, ins, None, move |x, y, out| match op {
            Eq => map2!(x, y, out, |x, y| b8(t(x) == t(y))),
            Ne => map2!(x, y, out, |x, y| b8(t(x) != t(y))),
            Lt => map2!(x, y, out, |x, y| b8(!t(x) & t(y))),
            Le => map2!(x, y, out, |x, y| b8(!t(x) | t(y))),
            Gt => map2!(x, y, out, |x, y| b8(t(x) & !t(y))),
            Ge => map2!(x, y, out, |x, y| b8(t(x) | !t(y))),
            LogicalAnd => map2!(x, y, out, |x, y| b8(t(x) & t(y))),
            LogicalOr => map2!(x, y, out, |x, y| b8(t(x) | t(y))),
            LogicalXor => map2!(x, y, out, |x, y| b8(t(x) ^ t(y))),
            _ => unreachable!(),
        });
    }
    match op {
        Sub => {
            return Err(KernelError(
                "Subtraction, the `-` operator, with two bool tensors is not supported. Use the \
                 `^` or `logical_xor()` operator instead."
                    .into(),
            ))
        }
        Add | Mul | Maximum | Minimum | Fmax | Fmin | BitAnd | BitOr | BitXor => {}
        _ => return Err(not_implemented(&format!("{}_cpu", op.name()), DType::Bool)),
    }
    let alpha = alpha.to_element::<Bool8>().0 != 0;
    drive::<Bool8, Bool8, 2>(
        op.name(),
        dst,
        ins,
        true,
        storer::<Bool8>(dst.dtype, None),
        true,
        &|[x, y], out| {
            match op {
                Add => map2!(x, y, out, |x, y| b8(t(x) | (alpha & t(y)))),
                Mul | Minimum | Fmin | BitAnd => map2!(x, y, out, |x, y| b8(t(x) & t(y))),
                Maximum | Fmax | BitOr => map2!(x, y, out, |x, y| b8(t(x) | t(y))),
                BitXor => map2!(x, y, out, |x, y| b8(t(x) ^ t(y))),
                _ => unreachable!(),
            }
            Ok(())
        },
    )
}

/// `where(cond, a, b)`: `dst[i] = cond[i] != 0 ? a[i] : b[i]`. `cond` may have any dtype; `a`
/// and `b` are converted to `dst.dtype`. All three have `dst`'s sizes (stride 0 to broadcast).
pub fn where_(dst: &View, cond: &View, a: &View, b: &View) -> Result<(), KernelError> {
    reject_complex("where", &[dst.dtype, cond.dtype, a.dtype, b.dtype])?;
    dispatch_real!(dst.dtype, D => where_typed::<D>(dst, cond, a, b), complex => unreachable!())
}

#[inline(always)]
fn nonzero<T: Element>(v: T) -> bool {
    v.cast::<Bool8>().0 != 0
}

fn where_typed<D: Element>(dst: &View, cond: &View, a: &View, b: &View) -> Result<(), KernelError> {
    // A condition read in place (already of type D) is tested the same way as a converted one:
    // nonzero is true.
    drive::<D, D, 3>(
        "where",
        dst,
        [
            Input::View(cond, truth_loader::<D>(cond.dtype)),
            Input::View(a, loader::<D>(a.dtype, None)),
            Input::View(b, loader::<D>(b.dtype, None)),
        ],
        true,
        storer::<D>(dst.dtype, None),
        true,
        &|[c, x, y], out| {
            let n = out.len();
            match (c, x, y) {
                (Arg::Slice(c), Arg::Slice(x), Arg::Slice(y)) => {
                    let (c, x, y) = (&c[..n], &x[..n], &y[..n]);
                    for i in 0..n {
                        out[i] = if nonzero(c[i]) { x[i] } else { y[i] };
                    }
                }
                _ => {
                    for (i, o) in out.iter_mut().enumerate() {
                        *o = if nonzero(c.get(i)) {
                            x.get(i)
                        } else {
                            y.get(i)
                        };
                    }
                }
            }
            Ok(())
        },
    )
}

/// `clamp(src, min, max)` with optional scalar bounds, computed in `compute` (f16/bf16 in f32):
/// `min(max(x, min), max)`, so `min > max` gives `max` everywhere; NaN inputs stay NaN and a
/// NaN bound makes every result NaN, like PyTorch.
pub fn clamp_scalar(
    dst: &View,
    src: &View,
    min: Option<Scalar>,
    max: Option<Scalar>,
    compute: DType,
) -> Result<(), KernelError> {
    reject_complex("clamp", &[dst.dtype, src.dtype, compute])?;
    if min.is_none() && max.is_none() {
        return Err(KernelError(
            "torch.clamp: At least one of 'min' or 'max' must not be None".into(),
        ));
    }
    if [min, max]
        .iter()
        .flatten()
        .any(|s| matches!(s, Scalar::Complex(..)))
    {
        return Err(err("clamp", "unsupported dtype complex scalar".into()));
    }
    match compute {
        DType::F16 | DType::BF16 => clamp_float::<f32>(dst, src, min, max, Some(compute)),
        DType::F32 => clamp_float::<f32>(dst, src, min, max, None),
        DType::F64 => clamp_float::<f64>(dst, src, min, max, None),
        DType::U8 => clamp_ord::<u8>(dst, src, min, max),
        DType::I8 => clamp_ord::<i8>(dst, src, min, max),
        DType::I16 => clamp_ord::<i16>(dst, src, min, max),
        DType::I32 => clamp_ord::<i32>(dst, src, min, max),
        DType::I64 => clamp_ord::<i64>(dst, src, min, max),
        DType::Bool => clamp_bool(dst, src, min, max),
        DType::C64 | DType::C128 => unreachable!(),
    }
}

fn clamp_float<F: Float>(
    dst: &View,
    src: &View,
    min: Option<Scalar>,
    max: Option<Scalar>,
    via: Option<DType>,
) -> Result<(), KernelError> {
    let lo = min.map(|s| scalar_to::<F>(s, via));
    let hi = max.map(|s| scalar_to::<F>(s, via));
    let nan_bound = lo.is_some_and(|v| v.is_nan()) || hi.is_some_and(|v| v.is_nan());
    drive::<F, F, 1>(
        "clamp",
        dst,
        [Input::View(src, loader::<F>(src.dtype, via))],
        via.is_none(),
        storer::<F>(dst.dtype, via),
        via.is_none(),
        &|[a], out| {
            match (lo, hi) {
                _ if nan_bound => out.fill(F::NAN),
                (Some(l), Some(h)) => map1!(a, out, |x: F| {
                    let t = if l > x { l } else { x };
                    if h < t {
                        h
                    } else {
                        t
                    }
                }),
                (Some(l), None) => map1!(a, out, |x: F| if l > x { l } else { x }),
                (None, Some(h)) => map1!(a, out, |x: F| if h < x { h } else { x }),
                (None, None) => unreachable!(),
            }
            Ok(())
        },
    )
}

/// Integer clamp.
fn clamp_ord<T: Element + Ord>(
    dst: &View,
    src: &View,
    min: Option<Scalar>,
    max: Option<Scalar>,
) -> Result<(), KernelError> {
    // A bound outside the dtype's range saturates (clamp(uint8, -3, 5) leaves small values
    // alone, as on PyTorch's CPU) instead of wrapping around.
    let saturate = |s: Scalar| -> T {
        if T::DTYPE == DType::I64 {
            return s.to_element::<T>();
        }
        let (lo, hi) = match T::DTYPE {
            DType::U8 => (0.0, 255.0),
            DType::I8 => (-128.0, 127.0),
            DType::I16 => (-32768.0, 32767.0),
            _ => (i32::MIN as f64, i32::MAX as f64),
        };
        let v = s.to_element::<f64>();
        if v.is_nan() {
            return s.to_element::<T>();
        }
        T::from_f64(v.clamp(lo, hi).trunc())
    };
    let lo = min.map(saturate);
    let hi = max.map(saturate);
    drive::<T, T, 1>(
        "clamp",
        dst,
        [Input::View(src, loader::<T>(src.dtype, None))],
        true,
        storer::<T>(dst.dtype, None),
        true,
        &|[a], out| {
            match (lo, hi) {
                (Some(l), Some(h)) => map1!(a, out, |x: T| x.max(l).min(h)),
                (Some(l), None) => map1!(a, out, |x: T| x.max(l)),
                (None, Some(h)) => map1!(a, out, |x: T| x.min(h)),
                (None, None) => unreachable!(),
            }
            Ok(())
        },
    )
}

/// Bool clamp: false < true, so max is `or` and min is `and`.
fn clamp_bool(
    dst: &View,
    src: &View,
    min: Option<Scalar>,
    max: Option<Scalar>,
) -> Result<(), KernelError> {
    let lo = min.is_some_and(|s| truth(s.to_element::<Bool8>()));
    let hi = max.is_none_or(|s| truth(s.to_element::<Bool8>()));
    drive::<Bool8, Bool8, 1>(
        "clamp",
        dst,
        [Input::View(src, loader::<Bool8>(src.dtype, None))],
        true,
        storer::<Bool8>(dst.dtype, None),
        true,
        &|[a], out| {
            map1!(a, out, |x| b8((truth(x) | lo) & hi));
            Ok(())
        },
    )
}
