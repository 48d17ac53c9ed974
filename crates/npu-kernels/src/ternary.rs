//! Three-operand elementwise arithmetic: `addcmul`, `addcdiv`, `lerp` (the optimizers' update
//! steps). f16/bf16 compute in f32 and round once.

use crate::cpu::with_avx2;
use crate::dtype::DType;
use crate::elementwise::{drive, loader, not_implemented, reject_complex, storer, Arg, Input};
use crate::math::{Float, Int};
use crate::scalar::Scalar;
use crate::view::View;
use crate::KernelError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TernaryOp {
    /// `a + value * b * c`
    Addcmul,
    /// `a + value * b / c` (in that order: `(value * b) / c`)
    Addcdiv,
    /// `a + c * (b - a)` (`c` the weight), computed as PyTorch does for accuracy near 1.
    Lerp,
}

impl TernaryOp {
    pub fn name(self) -> &'static str {
        match self {
            TernaryOp::Addcmul => "addcmul",
            TernaryOp::Addcdiv => "addcdiv",
            TernaryOp::Lerp => "lerp",
        }
    }
}

/// The third operand: a view, or a scalar (lerp's scalar weight).
#[derive(Clone, Copy)]
pub enum Third<'a> {
    View(&'a View),
    Scalar(Scalar),
}

/// `dst = op(a, b, c)` with `value` the multiplier of addcmul/addcdiv (ignored by lerp). All
/// views have `dst`'s sizes (stride 0 broadcasts).
pub fn ternary(op: TernaryOp, dst: &View, a: &View, b: &View, c: Third, value: Scalar, compute: DType) -> Result<(), KernelError> {
    let name = op.name();
    let mut dtypes = vec![dst.dtype, a.dtype, b.dtype, compute];
    if let Third::View(v) = c {
        dtypes.push(v.dtype);
    }
    reject_complex(name, &dtypes)?;
    match compute {
        DType::F16 | DType::BF16 => run_float::<f32>(op, dst, a, b, c, value, Some(compute)),
        DType::F32 => run_float::<f32>(op, dst, a, b, c, value, None),
        DType::F64 => run_float::<f64>(op, dst, a, b, c, value, None),
        DType::U8 if op == TernaryOp::Addcmul => run_int::<u8>(dst, a, b, c, value),
        DType::I8 if op == TernaryOp::Addcmul => run_int::<i8>(dst, a, b, c, value),
        DType::I16 if op == TernaryOp::Addcmul => run_int::<i16>(dst, a, b, c, value),
        DType::I32 if op == TernaryOp::Addcmul => run_int::<i32>(dst, a, b, c, value),
        DType::I64 if op == TernaryOp::Addcmul => run_int::<i64>(dst, a, b, c, value),
        DType::U8 | DType::I8 | DType::I16 | DType::I32 | DType::I64 if op == TernaryOp::Addcdiv => Err(KernelError(
            "Integer division with addcdiv is no longer supported, and in a future release addcdiv will perform a true division of tensor1 and tensor2. The historic addcdiv behavior can be implemented as (input + value * torch.trunc(tensor1 / tensor2)).to(input.dtype) for integer inputs and as (input + value * tensor1 / tensor2) for float inputs. The future addcdiv behavior is just the latter implementation: (input + value * tensor1 / tensor2), for all dtypes.".into(),
        )),
        d => Err(not_implemented(&format!("{name}_cpu"), d)),
    }
}

fn third<'a, M: crate::convert::Element>(c: Third<'a>, via: Option<DType>) -> Input<'a, M> {
    match c {
        Third::View(v) => Input::View(v, loader::<M>(v.dtype, via)),
        // lerp's scalar weight keeps full precision (opmath), as in ATen
        Third::Scalar(s) => Input::Const(s.to_element::<M>()),
    }
}

fn run_float<F: Float>(op: TernaryOp, dst: &View, a: &View, b: &View, c: Third, value: Scalar, via: Option<DType>) -> Result<(), KernelError> {
    let v = value.to_element::<F>();
    drive::<F, F, 3>(
        op.name(),
        dst,
        [Input::View(a, loader::<F>(a.dtype, via)), Input::View(b, loader::<F>(b.dtype, via)), third::<F>(c, via)],
        via.is_none(),
        storer::<F>(dst.dtype, via),
        via.is_none(),
        &|[x, y, z], out| {
            float_kernel::<F>(op, x, y, z, v, out);
            Ok(())
        },
    )
}

with_avx2!(fn float_kernel<F: Float>(op: TernaryOp, x: &Arg<F>, y: &Arg<F>, z: &Arg<F>, v: F, out: &mut [F]) => float_body);

#[inline(always)]
fn float_body<F: Float>(op: TernaryOp, x: &Arg<F>, y: &Arg<F>, z: &Arg<F>, v: F, out: &mut [F]) {
    let (half, one) = (F::c(0.5), F::ONE);
    macro_rules! each {
        (|$a:ident, $b:ident, $c:ident| $body:expr) => {
            match (x, y, z) {
                (Arg::Slice(xs), Arg::Slice(ys), Arg::Slice(zs)) => {
                    let n = out.len();
                    let (xs, ys, zs) = (&xs[..n], &ys[..n], &zs[..n]);
                    for i in 0..n {
                        let ($a, $b, $c) = (xs[i], ys[i], zs[i]);
                        out[i] = $body;
                    }
                }
                (Arg::Slice(xs), Arg::Slice(ys), Arg::Splat(c)) => {
                    let n = out.len();
                    let (xs, ys, $c) = (&xs[..n], &ys[..n], *c);
                    for i in 0..n {
                        let ($a, $b) = (xs[i], ys[i]);
                        out[i] = $body;
                    }
                }
                _ => {
                    for (i, o) in out.iter_mut().enumerate() {
                        let ($a, $b, $c) = (x.get(i), y.get(i), z.get(i));
                        *o = $body;
                    }
                }
            }
        };
    }
    match op {
        TernaryOp::Addcmul => each!(|a, b, c| a + v * b * c),
        TernaryOp::Addcdiv => each!(|a, b, c| a + v * b / c),
        TernaryOp::Lerp => each!(|a, b, w| {
            let d = b - a;
            if w.abs() < half {
                a + w * d
            } else {
                b - d * (one - w)
            }
        }),
    }
}

fn run_int<I: Int>(dst: &View, a: &View, b: &View, c: Third, value: Scalar) -> Result<(), KernelError> {
    let v = value.to_element::<I>();
    drive::<I, I, 3>(
        "addcmul",
        dst,
        [Input::View(a, loader::<I>(a.dtype, None)), Input::View(b, loader::<I>(b.dtype, None)), third::<I>(c, None)],
        true,
        storer::<I>(dst.dtype, None),
        true,
        &|[x, y, z], out| {
            for (i, o) in out.iter_mut().enumerate() {
                *o = x.get(i).wadd(v.wmul(y.get(i).wmul(z.get(i))));
            }
            Ok(())
        },
    )
}
