//! bf16 add, sub, mul and div on contiguous tensors of one shape: each element is widened to
//! f32, combined and rounded back in registers. The general driver stages bf16 rows through f32
//! buffers (two loads and a store per chunk), which costs more than the arithmetic. Results are
//! the driver's bit for bit: the same f32 expression, rounded as `c10::BFloat16`.

use crate::binary::BinaryOp;
use crate::convert::f32_to_bf16;
use crate::cpu::with_avx2;
use crate::dtype::DType;
use crate::elementwise::{plain_operands, GRAIN};
use crate::view::{par_ranges, Ptr, View};

/// Runs `dst = a op b` (alpha scaling `b` for add and sub) if this path applies: all three
/// bf16 and contiguous with the same sizes, `b` apart from `dst`, and `a` either apart from it
/// or `dst` itself (in place), all valid and `dst` writable. Returns false, having done
/// nothing, otherwise: the general driver then runs the op, or reports what is wrong.
pub(crate) fn try_run(op: BinaryOp, dst: &View, a: &View, b: &View, alpha: f32) -> bool {
    use BinaryOp::*;
    if !matches!(op, Add | Sub | Mul | Div) || b.ptr == dst.ptr {
        return false;
    }
    let Some(n) = plain_operands(op.name(), DType::BF16, dst, &[a, b]) else {
        return false;
    };
    if n == 0 {
        return true;
    }
    let in_place = a.ptr == dst.ptr;
    let (d, x, y) = (Ptr::new(dst.ptr), Ptr::new(a.ptr), Ptr::new(b.ptr));
    par_ranges(n, GRAIN, |r| {
        // SAFETY: the views are contiguous with n elements; ranges are disjoint; `b` does not
        // overlap `dst`, and `a` either does not or is `dst` (then only `d` is formed).
        unsafe {
            let d = std::slice::from_raw_parts_mut(d.at::<u16>(r.start as isize), r.len());
            let y = std::slice::from_raw_parts(y.at::<u16>(r.start as isize), r.len());
            let x = (!in_place).then(|| std::slice::from_raw_parts(x.at::<u16>(r.start as isize), r.len()));
            rows(op, d, x, y, alpha);
        }
    });
    true
}

with_avx2!(fn rows<>(op: BinaryOp, d: &mut [u16], x: Option<&[u16]>, y: &[u16], alpha: f32) => rows_body);

#[inline(always)]
fn rows_body(op: BinaryOp, d: &mut [u16], x: Option<&[u16]>, y: &[u16], alpha: f32) {
    use BinaryOp::*;
    match op {
        Add if alpha == 1.0 => each(d, x, y, |p, q| p + q),
        Add => each(d, x, y, |p, q| p + alpha * q),
        Sub if alpha == 1.0 => each(d, x, y, |p, q| p - q),
        Sub => each(d, x, y, |p, q| p - alpha * q),
        Mul => each(d, x, y, |p, q| p * q),
        Div => each(d, x, y, |p, q| p / q),
        _ => unreachable!("try_run admits only add, sub, mul and div"),
    }
}

/// `d[i] = f(x[i], y[i])` through f32, `x` being `d` itself when `None`.
#[inline(always)]
fn each(d: &mut [u16], x: Option<&[u16]>, y: &[u16], f: impl Fn(f32, f32) -> f32) {
    let widen = |h: u16| f32::from_bits((h as u32) << 16);
    let y = &y[..d.len()];
    match x {
        Some(x) => {
            let x = &x[..d.len()];
            for i in 0..d.len() {
                d[i] = f32_to_bf16(f(widen(x[i]), widen(y[i]))).to_bits();
            }
        }
        None => {
            for i in 0..d.len() {
                d[i] = f32_to_bf16(f(widen(d[i]), widen(y[i]))).to_bits();
            }
        }
    }
}
