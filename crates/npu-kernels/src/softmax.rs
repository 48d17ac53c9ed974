//! softmax and log_softmax along one dim, and their backward, on strided views of any rank.
//! Each row (the elements along `dim` for one position of the other dims) is read into an f32
//! (f64 for f64 data) buffer, reduced with the maximum subtracted first, and written back with
//! one rounding to the output dtype, as PyTorch's CPU kernels compute.

use crate::elementwise::{loader, storer, LoadFn, StoreFn};
use crate::math::Float;
use crate::cpu::with_avx2;
use crate::view::{err, par_ranges, Ptr, View};
use crate::{DType, KernelError};

/// Rows and their element offsets, with `dim` taken out of the iteration.
struct Rows {
    /// Sizes of the other dims (row index -> multi-index).
    outer: Vec<i64>,
    len: usize,
}

impl Rows {
    fn new(sizes: &[i64], dim: usize) -> Rows {
        let outer = sizes.iter().enumerate().filter(|&(d, _)| d != dim).map(|(_, &s)| s).collect();
        Rows { outer, len: sizes.get(dim).map_or(1, |&s| s as usize) }
    }
    fn count(&self) -> usize {
        self.outer.iter().map(|&s| s as usize).product()
    }
    /// Element offset of row `r` in a view whose strides (with `dim` removed) are `strides`.
    fn offset(&self, mut r: usize, strides: &[i64]) -> isize {
        let mut off = 0isize;
        for d in (0..self.outer.len()).rev() {
            let n = self.outer[d] as usize;
            off += ((r % n) as isize) * strides[d] as isize;
            r /= n;
        }
        off
    }
}

/// Strides of `v` without `dim`, and the stride along it (a 0-dim view is one row of one).
fn split_strides(v: &View, dim: usize) -> (Vec<i64>, isize) {
    if v.sizes.is_empty() {
        return (vec![], 1);
    }
    let outer = v.strides.iter().enumerate().filter(|&(d, _)| d != dim).map(|(_, &s)| s).collect();
    (outer, v.strides[dim] as isize)
}

fn check(op: &str, dim: usize, views: &[&View]) -> Result<usize, KernelError> {
    let n = views[0].validate(op)?;
    for v in views {
        v.validate(op)?;
        if v.sizes != views[0].sizes {
            return Err(err(op, format!("size mismatch: {:?} and {:?}", views[0].sizes, v.sizes)));
        }
        if v.dtype.is_complex() || !v.dtype.is_floating() {
            return Err(err(op, format!("expected a floating point dtype, got {}", v.dtype.name())));
        }
    }
    if dim >= views[0].sizes.len().max(1) {
        return Err(err(op, format!("dim {dim} out of range for a tensor of rank {}", views[0].sizes.len())));
    }
    views[0].check_writable(op)?;
    Ok(n)
}

/// A strided operand of a row kernel.
struct Operand {
    ptr: Ptr,
    size: usize,
    outer: Vec<i64>,
    step: isize,
}

impl Operand {
    fn new(v: &View, dim: usize) -> Operand {
        let (outer, step) = split_strides(v, dim);
        Operand { ptr: Ptr::new(v.ptr), size: v.dtype.size(), outer, step }
    }
    unsafe fn row(&self, rows: &Rows, r: usize) -> *mut u8 {
        self.ptr.byte_at(rows.offset(r, &self.outer), self.size)
    }
}

/// `dst = softmax(src)` (or log_softmax) along `dim`. `dst` may have another float dtype
/// (`half_to_float`).
pub fn softmax(dst: &View, src: &View, dim: usize, log: bool) -> Result<(), KernelError> {
    let op = if log { "log_softmax" } else { "softmax" };
    if check(op, dim, &[dst, src])? == 0 {
        return Ok(());
    }
    if dst.dtype == DType::F64 || src.dtype == DType::F64 {
        forward::<f64>(dst, src, dim, log)
    } else {
        forward::<f32>(dst, src, dim, log)
    }
    Ok(())
}

fn forward<F: Float>(dst: &View, src: &View, dim: usize, log: bool) {
    let rows = Rows::new(&src.sizes, dim);
    let (d, s) = (Operand::new(dst, dim), Operand::new(src, dim));
    let (load, store): (LoadFn<F>, StoreFn<F>) = (loader::<F>(src.dtype, None), storer::<F>(dst.dtype, None));
    let len = rows.len;
    par_ranges(rows.count(), (1 << 14) / len.max(1) + 1, |range| {
        let mut buf = vec![F::ZERO; len];
        for r in range {
            unsafe {
                load(s.row(&rows, r), s.step, &mut buf);
                softmax_row(&mut buf, log);
                store(&buf, d.row(&rows, r), d.step);
            }
        }
    });
}

/// The maximum; NaN propagates, as in PyTorch (branch-free, so it vectorizes).
#[inline(always)]
fn max_of<F: Float>(xs: &[F]) -> F {
    let nan = xs.iter().fold(false, |a, x| a | x.is_nan());
    if nan {
        F::NAN
    } else {
        lane_max(xs)
    }
}

/// `sum(f(x[i]))` in 8 independent lanes (vectorizable, and more accurate than one running
/// sum).
#[inline(always)]
pub(crate) fn lane_sum<F: Float>(n: usize, f: impl Fn(usize) -> F) -> F {
    let mut acc = [F::ZERO; 8];
    // `i + 8 <= n` (not a stepped range) lets the compiler drop the callers' bounds checks on
    // `i + k`, so the 8 lanes become one vector.
    let mut i = 0;
    while i + 8 <= n {
        for (k, a) in acc.iter_mut().enumerate() {
            *a = *a + f(i + k);
        }
        i += 8;
    }
    let mut s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    while i < n {
        s = s + f(i);
        i += 1;
    }
    s
}

/// `sum(f(x))` over a slice in 8 lanes, in the same order as [`lane_sum`]; fixed-size chunks
/// let the compiler turn the lanes into one vector.
#[inline(always)]
pub(crate) fn lane_sum_map<T: Copy, F: Float>(xs: &[T], f: impl Fn(T) -> F) -> F {
    let mut acc = [F::ZERO; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        let c: &[T; 8] = c.try_into().expect("chunks of 8");
        let v: [F; 8] = c.map(&f);
        for k in 0..8 {
            acc[k] = acc[k] + v[k];
        }
    }
    let mut s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for &x in rest {
        s = s + f(x);
    }
    s
}

#[inline(always)]
pub(crate) fn sum_of<F: Float>(xs: &[F]) -> F {
    lane_sum(xs.len(), |i| xs[i])
}

/// The maximum in 16 independent lanes (one AVX-512 vector); NaNs are skipped, so callers
/// that must propagate them let the NaN flow through their arithmetic instead.
#[inline(always)]
pub(crate) fn lane_max<F: Float>(xs: &[F]) -> F {
    let mut acc = [-F::INFINITY; 16];
    let chunks = xs.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = if x > *a { x } else { *a };
        }
    }
    // halve the lanes (a short dependency chain, where 16 scalar steps wait on each other)
    let mut w = 8;
    while w > 0 {
        for i in 0..w {
            acc[i] = if acc[i + w] > acc[i] { acc[i + w] } else { acc[i] };
        }
        w /= 2;
    }
    let mut m = acc[0];
    for &x in rest {
        m = if x > m { x } else { m };
    }
    m
}

with_avx2!(fn softmax_row<F: Float>(x: &mut [F], log: bool) => softmax_row_body);

#[inline(always)]
fn softmax_row_body<F: Float>(x: &mut [F], log: bool) {
    let m = max_of(x);
    // an all -inf row: PyTorch gives NaN for softmax and -inf - (-inf) = NaN for log_softmax
    if log {
        let lse = lane_sum(x.len(), |i| (x[i] - m).vexp()).ln();
        for v in x.iter_mut() {
            *v = *v - m - lse;
        }
    } else {
        for v in x.iter_mut() {
            *v = (*v - m).vexp();
        }
        let inv = F::ONE / sum_of(x);
        for v in x.iter_mut() {
            *v = *v * inv;
        }
    }
}

/// The gradient of softmax (or log_softmax) along `dim`, from the forward `output`:
/// softmax: `dst = y * (g - sum(g * y))`; log_softmax: `dst = g - exp(y) * sum(g)`.
pub fn softmax_backward(dst: &View, grad: &View, output: &View, dim: usize, log: bool) -> Result<(), KernelError> {
    let op = if log { "log_softmax_backward" } else { "softmax_backward" };
    if check(op, dim, &[dst, grad, output])? == 0 {
        return Ok(());
    }
    if [dst, grad, output].iter().any(|v| v.dtype == DType::F64) {
        backward::<f64>(dst, grad, output, dim, log)
    } else {
        backward::<f32>(dst, grad, output, dim, log)
    }
    Ok(())
}

with_avx2!(fn backward_row<F: Float>(g: &mut [F], y: &[F], log: bool) => backward_row_body);

/// One row of the gradient, in place in `g`: log_softmax `g - exp(y) sum(g)`, softmax
/// `y (g - sum(g y))`.
#[inline(always)]
fn backward_row_body<F: Float>(g: &mut [F], y: &[F], log: bool) {
    if log {
        let s = sum_of(g);
        for (gv, &yv) in g.iter_mut().zip(y) {
            *gv = *gv - yv.vexp() * s;
        }
    } else {
        let s = lane_sum(g.len(), |i| g[i] * y[i]);
        for (gv, &yv) in g.iter_mut().zip(y) {
            *gv = yv * (*gv - s);
        }
    }
}

fn backward<F: Float>(dst: &View, grad: &View, output: &View, dim: usize, log: bool) {
    let rows = Rows::new(&dst.sizes, dim);
    let (d, g, y) = (Operand::new(dst, dim), Operand::new(grad, dim), Operand::new(output, dim));
    let (lg, ly, st) = (loader::<F>(grad.dtype, None), loader::<F>(output.dtype, None), storer::<F>(dst.dtype, None));
    let len = rows.len;
    par_ranges(rows.count(), (1 << 14) / len.max(1) + 1, |range| {
        let (mut gb, mut yb) = (vec![F::ZERO; len], vec![F::ZERO; len]);
        for r in range {
            unsafe {
                lg(g.row(&rows, r), g.step, &mut gb);
                ly(y.row(&rows, r), y.step, &mut yb);
                backward_row(&mut gb, &yb, log);
                st(&gb, d.row(&rows, r), d.step);
            }
        }
    });
}
