//! softmax and log_softmax along one dim, and their backward, on strided views of any rank.
//! Each row (the elements along `dim` for one position of the other dims) is computed in f32
//! (f64 for f64 data), with the maximum subtracted first, and written with one rounding to the
//! output dtype, as PyTorch's CPU kernels compute. Rows of the compute dtype with unit stride
//! are read and written in place; others go through a row buffer.

use crate::elementwise::{loader, storer, LoadFn, StoreFn};
use crate::math::Float;
use crate::cpu::with_avx2;
use crate::lanes::{lane_max, lane_sum_zip, sum_of};
use crate::dense::P;
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

/// Whether rows of `v` can be read as slices of `F` in place: unit stride along the row, the
/// compute dtype, and (for an input) no byte shared with the output `dst`, which is written
/// through a mutable slice.
fn in_place<F: Float>(v: &View, dim: usize, dst: Option<&View>) -> bool {
    let unit = v.sizes.is_empty() || v.sizes[dim] == 1 || v.strides[dim] == 1;
    let apart = dst.is_none_or(|d| v.disjoint(d));
    unit && v.dtype == F::DTYPE && apart
}

/// Row `len` elements at `row`: the row itself when `direct` (see [`in_place`]), else loaded
/// (converted to `F`) into `buf`.
///
/// # Safety
/// `row` must point at a row of `len` elements of a validated view, of `F` when `direct`;
/// `buf` must hold `len` elements when not.
unsafe fn read_row<F: Float>(direct: bool, row: *const u8, step: isize, len: usize, load: LoadFn<F>, buf: &mut [F]) -> &[F] {
    if direct {
        std::slice::from_raw_parts(row as *const F, len)
    } else {
        load(row, step, &mut buf[..len]);
        &buf[..len]
    }
}

/// A buffer for a row that cannot be used in place (none when it can).
fn row_buffer<F: Float>(direct: bool, len: usize) -> Vec<F> {
    vec![F::ZERO; if direct { 0 } else { len }]
}

/// Columns per block of [`forward_columns`]: one AVX-512 vector of f32.
const COLS: usize = 16;

/// For softmax along a dim that is not the last of contiguous tensors: (outer, len, inner) with
/// inner > 1, when `src` and `dst` are contiguous in `F` and apart. Else None.
fn column_layout<F: Float>(dst: &View, src: &View, dim: usize) -> Option<(usize, usize, usize)> {
    let inner: usize = src.sizes.get(dim + 1..)?.iter().map(|&v| v as usize).product();
    let ok = inner > 1
        && src.is_contiguous()
        && dst.is_contiguous()
        && src.dtype == F::DTYPE
        && dst.dtype == F::DTYPE
        && in_place::<F>(src, src.sizes.len() - 1, Some(dst));
    let len = src.sizes[dim] as usize;
    ok.then(|| (src.numel() / (len * inner), len, inner))
}

/// Softmax along the middle dim of contiguous (outer, len, inner) data, over blocks of
/// [`COLS`] adjacent columns: each pass reads `len` rows of a block, so a row's elements are
/// contiguous and the columns fill a vector (a column read alone touches one element per
/// cache line).
fn forward_columns<F: Float>(ys: &mut [F], xs: &[F], (outer, len, inner): (usize, usize, usize), log: bool) {
    let blocks = inner.div_ceil(COLS);
    let (yp, xp) = (P(ys.as_mut_ptr()), P(xs.as_ptr() as *mut F));
    par_ranges(outer * blocks, ((1 << 14) / (len * COLS)).max(1), |tasks| {
        for t in tasks {
            let (o, c0) = (t / blocks, t % blocks * COLS);
            let at = o * len * inner + c0;
            // SAFETY: the block's `len` rows of COLS.min(inner - c0) columns lie inside both
            // slices; each task writes its own block
            unsafe { softmax_block(xp.at(at), yp.at(at), len, inner, COLS.min(inner - c0), log) };
        }
    });
}

with_avx2!(unsafe fn softmax_block<F: Float>(xs: *const F, ys: *mut F, len: usize, stride: usize, w: usize, log: bool) => softmax_block_body);

/// One block of `w` <= COLS columns, rows `stride` apart: the maximum per column (NaN sticks),
/// the exps and their sums, then the outputs.
///
/// # Safety
/// `xs` and `ys` must point at `len` rows of `w` elements, `stride` apart, not overlapping.
#[inline(always)]
unsafe fn softmax_block_body<F: Float>(xs: *const F, ys: *mut F, len: usize, stride: usize, w: usize, log: bool) {
    let row = |r: usize| std::slice::from_raw_parts(xs.add(r * stride), w);
    let out = |r: usize| std::slice::from_raw_parts_mut(ys.add(r * stride), w);
    let (mut m, mut sum) = ([-F::INFINITY; COLS], [F::ZERO; COLS]);
    let (m, sum) = (&mut m[..w], &mut sum[..w]);
    for r in 0..len {
        for (mj, &x) in m.iter_mut().zip(row(r)) {
            *mj = if x.is_nan() || x > *mj { x } else { *mj };
        }
    }
    for r in 0..len {
        for ((s, &mj), (&xj, yj)) in sum.iter_mut().zip(m.iter()).zip(row(r).iter().zip(out(r))) {
            let e = (xj - mj).exp_softmax();
            *yj = e;
            *s = *s + e;
        }
    }
    // log_softmax: x - m - ln(sum); softmax: e * (1 / sum), as the row kernel
    let mut k = [F::ZERO; COLS];
    for (kj, &s) in k.iter_mut().zip(sum.iter()) {
        *kj = if log { s.ln() } else { F::ONE / s };
    }
    for r in 0..len {
        for ((&kj, &mj), (&xj, yj)) in k.iter().zip(m.iter()).zip(row(r).iter().zip(out(r))) {
            *yj = if log { xj - mj - kj } else { *yj * kj };
        }
    }
}

fn forward<F: Float>(dst: &View, src: &View, dim: usize, log: bool) {
    if let Some(shape) = column_layout::<F>(dst, src, dim) {
        // SAFETY: both are contiguous views of numel elements of F that share no byte
        let (ys, xs) = unsafe {
            (std::slice::from_raw_parts_mut(dst.ptr as *mut F, dst.numel()), std::slice::from_raw_parts(src.ptr as *const F, src.numel()))
        };
        return forward_columns(ys, xs, shape, log);
    }
    let rows = Rows::new(&src.sizes, dim);
    let (d, s) = (Operand::new(dst, dim), Operand::new(src, dim));
    let (load, store): (LoadFn<F>, StoreFn<F>) = (loader::<F>(src.dtype, None), storer::<F>(dst.dtype, None));
    let (src_direct, dst_direct) = (in_place::<F>(src, dim, Some(dst)), in_place::<F>(dst, dim, None));
    let len = rows.len;
    par_ranges(rows.count(), (1 << 14) / len.max(1) + 1, |range| {
        let (mut inb, mut outb) = (row_buffer(src_direct, len), row_buffer(dst_direct, len));
        for r in range {
            unsafe {
                let x = read_row(src_direct, s.row(&rows, r), s.step, len, load, &mut inb);
                if dst_direct {
                    softmax_row(x, std::slice::from_raw_parts_mut(d.row(&rows, r) as *mut F, len), log);
                } else {
                    softmax_row(x, &mut outb, log);
                    store(&outb, d.row(&rows, r), d.step);
                }
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

with_avx2!(fn softmax_row<F: Float>(x: &[F], y: &mut [F], log: bool) => softmax_row_body);

/// One row: `y = softmax(x)` (or log_softmax). Each pass is a plain loop over the row, so it
/// runs 16 lanes wide.
#[inline(always)]
fn softmax_row_body<F: Float>(x: &[F], y: &mut [F], log: bool) {
    let y = &mut y[..x.len()];
    let m = max_of(x);
    // an all -inf row: x - m is NaN, which the exp keeps, as PyTorch gives NaN for softmax
    // and -inf - (-inf) = NaN for log_softmax
    for (e, &v) in y.iter_mut().zip(x) {
        *e = (v - m).exp_softmax();
    }
    let total = sum_of(y);
    if log {
        let lse = total.ln();
        for (o, &v) in y.iter_mut().zip(x) {
            *o = v - m - lse;
        }
    } else {
        let inv = F::ONE / total;
        for o in y.iter_mut() {
            *o = *o * inv;
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

with_avx2!(fn backward_row<F: Float>(g: &[F], y: &[F], dx: &mut [F], log: bool) => backward_row_body);

/// One row of the gradient: log_softmax `dx = g - exp(y) sum(g)`, softmax
/// `dx = y (g - sum(g y))`.
#[inline(always)]
fn backward_row_body<F: Float>(g: &[F], y: &[F], dx: &mut [F], log: bool) {
    let (y, dx) = (&y[..g.len()], &mut dx[..g.len()]);
    if log {
        let s = sum_of(g);
        for ((o, &gv), &yv) in dx.iter_mut().zip(g).zip(y) {
            *o = gv - yv.vexp() * s;
        }
    } else {
        let s = lane_sum_zip(g, y, |a, b| a * b);
        for ((o, &gv), &yv) in dx.iter_mut().zip(g).zip(y) {
            *o = yv * (gv - s);
        }
    }
}

fn backward<F: Float>(dst: &View, grad: &View, output: &View, dim: usize, log: bool) {
    let rows = Rows::new(&dst.sizes, dim);
    let (d, g, y) = (Operand::new(dst, dim), Operand::new(grad, dim), Operand::new(output, dim));
    let (lg, ly, st) = (loader::<F>(grad.dtype, None), loader::<F>(output.dtype, None), storer::<F>(dst.dtype, None));
    let (g_direct, y_direct) = (in_place::<F>(grad, dim, Some(dst)), in_place::<F>(output, dim, Some(dst)));
    let d_direct = in_place::<F>(dst, dim, None);
    let len = rows.len;
    par_ranges(rows.count(), (1 << 14) / len.max(1) + 1, |range| {
        let (mut gb, mut yb, mut db) = (row_buffer(g_direct, len), row_buffer(y_direct, len), row_buffer(d_direct, len));
        for r in range {
            unsafe {
                let gr = read_row(g_direct, g.row(&rows, r), g.step, len, lg, &mut gb);
                let yr = read_row(y_direct, y.row(&rows, r), y.step, len, ly, &mut yb);
                if d_direct {
                    backward_row(gr, yr, std::slice::from_raw_parts_mut(d.row(&rows, r) as *mut F, len), log);
                } else {
                    backward_row(gr, yr, &mut db, log);
                    st(&db, d.row(&rows, r), d.step);
                }
            }
        }
    });
}
