//! Unary elementwise kernels: `dst[i] = op(src[i])` with PyTorch's CPU semantics.

use crate::convert::{Bool8, Element};
use crate::cpu::with_avx2;
use crate::dtype::DType;
use crate::simd;
use crate::elementwise::{
    drive, loader, map1, not_implemented, plain_operands, reject_complex, storer, Arg, Input,
    ToMath, CHUNK, GRAIN,
};
use crate::math::{b8, truth, Float, Int};
use crate::view::{par_ranges, Ptr, View};
use half::bf16;
use crate::KernelError;

/// Unary elementwise operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Abs,
    Neg,
    Ceil,
    Floor,
    Round,
    Trunc,
    Frac,
    Sign,
    Sqrt,
    Rsqrt,
    Reciprocal,
    Exp,
    Exp2,
    Expm1,
    Log,
    Log2,
    Log10,
    Log1p,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Asinh,
    Acosh,
    Atanh,
    Erf,
    Erfc,
    Sigmoid,
    Relu,
    Silu,
    GeluErf,
    GeluTanh,
    IsNan,
    IsInf,
    IsPosInf,
    IsNegInf,
    IsFinite,
    LogicalNot,
    BitwiseNot,
    Signbit,
}

impl UnaryOp {
    /// Every op, for tests and tables.
    pub const ALL: [UnaryOp; 45] = {
        use UnaryOp::*;
        [
            Abs, Neg, Ceil, Floor, Round, Trunc, Frac, Sign, Sqrt, Rsqrt, Reciprocal, Exp, Exp2,
            Expm1, Log, Log2, Log10, Log1p, Sin, Cos, Tan, Asin, Acos, Atan, Sinh, Cosh, Tanh,
            Asinh, Acosh, Atanh, Erf, Erfc, Sigmoid, Relu, Silu, GeluErf, GeluTanh, IsNan, IsInf,
            IsPosInf, IsNegInf, IsFinite, LogicalNot, BitwiseNot, Signbit,
        ]
    };

    /// The ATen name (used in error messages).
    pub fn name(self) -> &'static str {
        use UnaryOp::*;
        match self {
            Abs => "abs",
            Neg => "neg",
            Ceil => "ceil",
            Floor => "floor",
            Round => "round",
            Trunc => "trunc",
            Frac => "frac",
            Sign => "sign",
            Sqrt => "sqrt",
            Rsqrt => "rsqrt",
            Reciprocal => "reciprocal",
            Exp => "exp",
            Exp2 => "exp2",
            Expm1 => "expm1",
            Log => "log",
            Log2 => "log2",
            Log10 => "log10",
            Log1p => "log1p",
            Sin => "sin",
            Cos => "cos",
            Tan => "tan",
            Asin => "asin",
            Acos => "acos",
            Atan => "atan",
            Sinh => "sinh",
            Cosh => "cosh",
            Tanh => "tanh",
            Asinh => "asinh",
            Acosh => "acosh",
            Atanh => "atanh",
            Erf => "erf",
            Erfc => "erfc",
            Sigmoid => "sigmoid",
            Relu => "relu",
            Silu => "silu",
            GeluErf => "gelu",
            GeluTanh => "gelu",
            IsNan => "isnan",
            IsInf => "isinf",
            IsPosInf => "isposinf",
            IsNegInf => "isneginf",
            IsFinite => "isfinite",
            LogicalNot => "logical_not",
            BitwiseNot => "bitwise_not",
            Signbit => "signbit",
        }
    }

    /// Whether the op computes in `compute` (the kernel returns PyTorch's "not implemented"
    /// error otherwise), so callers can refuse on the host before launching.
    pub fn accepts(self, compute: DType) -> bool {
        use UnaryOp::*;
        if self.is_predicate() || compute.is_floating() {
            return self != BitwiseNot;
        }
        match compute {
            DType::Bool => matches!(self, LogicalNot | BitwiseNot | Sign),
            DType::C64 | DType::C128 => false,
            _ => matches!(self, Abs | Neg | Ceil | Floor | Round | Trunc | Sign | Relu | BitwiseNot),
        }
    }

    /// Ops whose result is a bool (written as 1/0 in the destination dtype).
    pub fn is_predicate(self) -> bool {
        use UnaryOp::*;
        matches!(
            self,
            IsNan | IsInf | IsPosInf | IsNegInf | IsFinite | LogicalNot | Signbit
        )
    }
}

/// `dst[i] = op(src[i])`. `compute` is the dtype the math runs in (f16/bf16 compute in f32 and
/// round once); `src` is converted to `compute` element-wise and the result converted to
/// `dst.dtype`. Predicates (`IsNan`.., `LogicalNot`, `Signbit`) produce bool (1/0) and are valid
/// for any compute dtype. Op/dtype combinations PyTorch rejects (e.g. `BitwiseNot` on floats,
/// `Sqrt` on bool compute) return an error.
pub fn unary(op: UnaryOp, dst: &View, src: &View, compute: DType) -> Result<(), KernelError> {
    let name = op.name();
    reject_complex(name, &[dst.dtype, src.dtype, compute])?;
    if compute == DType::BF16 && try_bf16(op, dst, src) {
        return Ok(());
    }
    match compute {
        DType::F16 | DType::BF16 => run_float::<f32>(op, dst, src, Some(compute)),
        DType::F32 => run_float::<f32>(op, dst, src, None),
        DType::F64 => run_float::<f64>(op, dst, src, None),
        DType::U8 => run_int::<u8>(op, dst, src),
        DType::I8 => run_int::<i8>(op, dst, src),
        DType::I16 => run_int::<i16>(op, dst, src),
        DType::I32 => run_int::<i32>(op, dst, src),
        DType::I64 => run_int::<i64>(op, dst, src),
        DType::Bool => run_bool(op, dst, src),
        DType::C64 | DType::C128 => unreachable!(),
    }
}

/// Runs `f` (a kernel on math type `M` producing `R`) over the views.
fn run<M: Element, R: Element>(
    op: UnaryOp,
    dst: &View,
    src: &View,
    via: Option<DType>,
    round_result: bool,
    f: impl Fn(&Arg<M>, &mut [R]) + Sync,
) -> Result<(), KernelError> {
    let rvia = if round_result { via } else { None };
    drive::<M, R, 1>(
        op.name(),
        dst,
        [Input::View(src, loader::<M>(src.dtype, via))],
        via.is_none(),
        storer::<R>(dst.dtype, rvia),
        rvia.is_none(),
        &|[a], out| {
            f(a, out);
            Ok(())
        },
    )
}

fn run_float<F: Float>(
    op: UnaryOp,
    dst: &View,
    src: &View,
    via: Option<DType>,
) -> Result<(), KernelError> {
    use UnaryOp::*;
    if op.is_predicate() {
        return run::<F, Bool8>(op, dst, src, via, false, move |a, out| match op {
            IsNan => map1!(a, out, |x: F| b8(x.is_nan())),
            IsInf => map1!(a, out, |x: F| b8(x.is_infinite())),
            IsPosInf => map1!(a, out, |x: F| b8(x == F::INFINITY)),
            IsNegInf => map1!(a, out, |x: F| b8(x == -F::INFINITY)),
            IsFinite => map1!(a, out, |x: F| b8(x.is_finite())),
            LogicalNot => map1!(a, out, |x: F| b8(x == F::ZERO)),
            Signbit => map1!(a, out, |x: F| b8(x.is_sign_negative())),
            _ => unreachable!(),
        });
    }
    if op == BitwiseNot {
        return Err(not_implemented("bitwise_not_cpu", via.unwrap_or(F::DTYPE)));
    }
    run::<F, F>(op, dst, src, via, true, move |a, out| {
        float_kernel(op, a, out)
    })
}

/// sqrt(2 / pi) and the cubic coefficient of the tanh approximation of GELU.
const GELU_BETA: f64 = 0.797_884_560_802_865_4;
const GELU_KAPPA: f64 = 0.044715;

with_avx2!(fn float_kernel<F: Float, S: ToMath<F>>(op: UnaryOp, a: &Arg<S>, out: &mut [F]) => float_kernel_body);

/// Runs a float op on bf16 `src` and `dst` if both are contiguous, of one shape, and apart or
/// the same memory (in place): the kernel widens its input in registers and its f32 results
/// are rounded a block at a time, where the driver would also stage the input through an f32
/// buffer. Results are the driver's bit for bit. Returns false, having done nothing, otherwise.
fn try_bf16(op: UnaryOp, dst: &View, src: &View) -> bool {
    if op.is_predicate() || op == UnaryOp::BitwiseNot {
        return false;
    }
    let Some(n) = plain_operands(op.name(), DType::BF16, dst, &[src]) else {
        return false;
    };
    let (d, s) = (Ptr::new(dst.ptr), Ptr::new(src.ptr));
    par_ranges(n, GRAIN, |r| {
        let mut block = [0f32; CHUNK];
        for start in r.clone().step_by(CHUNK) {
            let m = CHUNK.min(r.end - start);
            // SAFETY: both views are contiguous with n elements and the ranges are disjoint;
            // the input block is read whole before the output block (possibly the same
            // memory) is written.
            unsafe {
                let a = std::slice::from_raw_parts(s.at::<bf16>(start as isize), m);
                float_kernel::<f32, bf16>(op, &Arg::Slice(a), &mut block[..m]);
                simd::f32_to_bf16(block.as_ptr(), d.at::<bf16>(start as isize), m);
            }
        }
    });
    true
}

#[inline(always)]
fn float_kernel_body<F: Float, S: ToMath<F>>(op: UnaryOp, a: &Arg<S>, out: &mut [F]) {
    use UnaryOp::*;
    let (zero, one, half) = (F::ZERO, F::ONE, F::c(0.5));
    match op {
        Abs => map1!(a, out, |x: F| x.abs()),
        Neg => map1!(a, out, |x: F| -x),
        Ceil => map1!(a, out, |x: F| x.ceil()),
        Floor => map1!(a, out, |x: F| x.floor()),
        Round => map1!(a, out, |x: F| x.round_even()),
        Trunc => map1!(a, out, |x: F| x.trunc()),
        Frac => map1!(a, out, |x: F| x - x.trunc()),
        // (0 < x) - (x < 0): NaN and -0.0 give +0.0
        Sign => map1!(a, out, |x: F| {
            if x > zero {
                one
            } else if x < zero {
                -one
            } else {
                zero
            }
        }),
        Sqrt => map1!(a, out, |x: F| x.sqrt()),
        Rsqrt => map1!(a, out, |x: F| one / x.sqrt()),
        Reciprocal => map1!(a, out, |x: F| one / x),
        Exp => map1!(a, out, |x: F| x.vexp()),
        Exp2 => map1!(a, out, |x: F| x.exp2()),
        Expm1 => map1!(a, out, |x: F| x.exp_m1()),
        Log => map1!(a, out, |x: F| x.vln()),
        Log2 => map1!(a, out, |x: F| x.log2()),
        Log10 => map1!(a, out, |x: F| x.log10()),
        Log1p => map1!(a, out, |x: F| x.ln_1p()),
        Sin => map1!(a, out, |x: F| x.sin()),
        Cos => map1!(a, out, |x: F| x.cos()),
        Tan => map1!(a, out, |x: F| x.tan()),
        Asin => map1!(a, out, |x: F| x.asin()),
        Acos => map1!(a, out, |x: F| x.acos()),
        Atan => map1!(a, out, |x: F| x.atan()),
        Sinh => map1!(a, out, |x: F| x.sinh()),
        Cosh => map1!(a, out, |x: F| x.cosh()),
        Tanh => map1!(a, out, |x: F| x.vtanh()),
        Asinh => map1!(a, out, |x: F| x.asinh()),
        Acosh => map1!(a, out, |x: F| x.acosh()),
        Atanh => map1!(a, out, |x: F| x.atanh()),
        Erf => map1!(a, out, |x: F| x.verf()),
        Erfc => map1!(a, out, |x: F| x.verfc()),
        Sigmoid => map1!(a, out, |x: F| one / (one + (-x).vexp())),
        // x < 0 ? 0 : x keeps NaN and -0.0
        Relu => map1!(a, out, |x: F| if x < zero { zero } else { x }),
        Silu => map1!(a, out, |x: F| x / (one + (-x).vexp())),
        GeluErf => map1!(a, out, |x: F| x * half * (one + x.gelu_erf())),
        GeluTanh => map1!(a, out, |x: F| {
            let inner = F::c(GELU_BETA) * (x + F::c(GELU_KAPPA) * x * x * x);
            half * x * (one + inner.vtanh())
        }),
        IsNan | IsInf | IsPosInf | IsNegInf | IsFinite | LogicalNot | Signbit | BitwiseNot => {
            unreachable!()
        }
    }
}

fn run_int<I: Int>(op: UnaryOp, dst: &View, src: &View) -> Result<(), KernelError> {
    use UnaryOp::*;
    if op.is_predicate() {
        return run::<I, Bool8>(op, dst, src, None, false, move |a, out| match op {
            IsNan | IsInf | IsPosInf | IsNegInf => map1!(a, out, |_x: I| b8(false)),
            IsFinite => map1!(a, out, |_x: I| b8(true)),
            LogicalNot => map1!(a, out, |x: I| b8(x == I::ZERO)),
            Signbit => map1!(a, out, |x: I| b8(x.is_neg())),
            _ => unreachable!(),
        });
    }
    match op {
        Abs | Neg | Ceil | Floor | Round | Trunc | Sign | Relu | BitwiseNot => {}
        _ => return Err(not_implemented(&format!("{}_cpu", op.name()), I::DTYPE)),
    }
    run::<I, I>(op, dst, src, None, false, move |a, out| match op {
        Abs => map1!(a, out, |x: I| x.wabs()),
        Neg => map1!(a, out, |x: I| x.wneg()),
        Ceil | Floor | Round | Trunc => map1!(a, out, |x: I| x),
        Sign => map1!(a, out, |x: I| {
            if x > I::ZERO {
                I::ONE
            } else if x.is_neg() {
                I::ONE.wneg()
            } else {
                I::ZERO
            }
        }),
        Relu => map1!(a, out, |x: I| if x.is_neg() { I::ZERO } else { x }),
        BitwiseNot => map1!(a, out, |x: I| x.not()),
        _ => unreachable!(),
    })
}

fn run_bool(op: UnaryOp, dst: &View, src: &View) -> Result<(), KernelError> {
    use UnaryOp::*;
    match op {
        IsNan | IsInf | IsPosInf | IsNegInf | Signbit => {
            run::<Bool8, Bool8>(op, dst, src, None, false, |a, out| {
                map1!(a, out, |_x| b8(false))
            })
        }
        IsFinite => run::<Bool8, Bool8>(op, dst, src, None, false, |a, out| {
            map1!(a, out, |_x| b8(true))
        }),
        LogicalNot | BitwiseNot => run::<Bool8, Bool8>(op, dst, src, None, false, |a, out| {
            map1!(a, out, |x| b8(!truth(x)))
        }),
        Sign => run::<Bool8, Bool8>(op, dst, src, None, false, |a, out| {
            map1!(a, out, |x| b8(truth(x)))
        }),
        Neg => Err(KernelError(
            "Negation, the `-` operator, on a bool tensor is not supported. If you are trying \
             to invert a mask, use the `~` or `logical_not()` operator instead."
                .into(),
        )),
        Relu => Err(KernelError("Boolean inputs not supported for relu".into())),
        _ => Err(not_implemented(&format!("{}_cpu", op.name()), DType::Bool)),
    }
}

/// `nan_to_num`: NaN becomes `nan`, +inf `posinf`, -inf `neginf` (by default the largest and
/// lowest finite values of `dst`'s dtype); integer and bool data are copied unchanged.
pub fn nan_to_num(dst: &View, src: &View, nan: f64, posinf: Option<f64>, neginf: Option<f64>) -> Result<(), KernelError> {
    let name = "nan_to_num";
    reject_complex(name, &[dst.dtype, src.dtype])?;
    let largest = match dst.dtype {
        DType::F16 => 65504.0,
        DType::BF16 => 3.389_531_389_251_535_5e38,
        DType::F32 => f32::MAX as f64,
        DType::F64 => f64::MAX,
        _ => return crate::copy::copy(dst, src),
    };
    let (pos, neg) = (posinf.unwrap_or(largest), neginf.unwrap_or(-largest));
    fn go<F: Float>(name: &str, dst: &View, src: &View, via: Option<DType>, vals: [f64; 3]) -> Result<(), KernelError> {
        let [n, p, m] = vals.map(F::c);
        drive::<F, F, 1>(name, dst, [Input::View(src, loader::<F>(src.dtype, via))], via.is_none(), storer::<F>(dst.dtype, via), via.is_none(), &|[a], out| {
            map1!(a, out, |x: F| if x.is_nan() { n } else if x == F::INFINITY { p } else if x == -F::INFINITY { m } else { x });
            Ok(())
        })
    }
    let vals = [nan, pos, neg];
    match dst.dtype {
        DType::F64 => go::<f64>(name, dst, src, None, vals),
        DType::F32 => go::<f32>(name, dst, src, None, vals),
        d => go::<f32>(name, dst, src, Some(d), vals),
    }
}
