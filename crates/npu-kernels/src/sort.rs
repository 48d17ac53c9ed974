//! sort and topk along one dim. Each line is ordered as by a stable sort of its positions (keys
//! compared exactly: f64 for floats, i64 for integers and bool), NaN counting as larger than
//! every number as in PyTorch; values are then copied bit for bit and positions written as
//! int64 indices. Lines run in parallel.

use crate::elementwise::loader;
use crate::gather::offsets;
use crate::scatter::rank1;
use crate::view::{err, par_ranges, Ptr, View};
use crate::{DType, KernelError};

fn line_dims(v: &View, dim: usize) -> Vec<(i64, i64)> {
    (0..v.sizes.len()).filter(|&d| d != dim).map(|d| (v.sizes[d], v.strides[d])).collect()
}

/// A float as an integer of the same order, for sorting: -0.0 and 0.0 are one key, and every
/// NaN is one key above all numbers (PyTorch's order).
#[inline]
fn float_key(v: f64) -> i64 {
    if v.is_nan() {
        return i64::MAX;
    }
    let bits = if v == 0.0 { 0 } else { v.to_bits() as i64 };
    // negative floats order backwards as integers: flip their magnitude bits
    if bits < 0 {
        bits ^ i64::MAX
    } else {
        bits
    }
}

/// Puts the `k` first entries of `line` (key, position) in order, descending keys when asked,
/// equal keys by position: the order of a stable sort, computed with an unstable one on a
/// total order (and, for k < n, a selection first).
fn order(line: &mut [(i64, usize)], k: usize, descending: bool) {
    if descending {
        // `!` reverses the order of two's complement integers
        line.iter_mut().for_each(|e| e.0 = !e.0);
    }
    if k == 0 {
        return;
    }
    if k < line.len() {
        line.select_nth_unstable(k - 1);
    }
    line[..k].sort_unstable();
}

/// The first `k` positions of every line of `src` along `dim` in sorted order, written to
/// `values` (src's dtype) and `indices` (int64), both of src's sizes with `dim` = k.
fn select(op: &str, values: &View, indices: &View, src: &View, dim: usize, k: usize, descending: bool) -> Result<(), KernelError> {
    let (values, indices, src) = (rank1(values), rank1(indices), rank1(src));
    for v in [&values, &indices, &src] {
        v.validate(op)?;
    }
    values.check_writable(op)?;
    indices.check_writable(op)?;
    if src.dtype.is_complex() {
        return Err(err(op, format!("\"{op}\" not implemented for '{}'", src.dtype.name())));
    }
    let n = src.sizes[dim] as usize;
    let mut want = src.sizes.clone();
    want[dim] = k as i64;
    if values.sizes != want || indices.sizes != want || values.dtype != src.dtype || indices.dtype != DType::I64 {
        return Err(err(op, format!("outputs must be {want:?} ({} and int64), got {:?} {} and {:?} {}", src.dtype.name(), values.sizes, values.dtype.name(), indices.sizes, indices.dtype.name())));
    }
    if values.numel() == 0 {
        return Ok(());
    }
    let (ss, vs, is) = (offsets(&line_dims(&src, dim)), offsets(&line_dims(&values, dim)), offsets(&line_dims(&indices, dim)));
    let (sstep, vstep, istep) = (src.strides[dim] as isize, values.strides[dim] as isize, indices.strides[dim] as isize);
    let float = src.dtype.is_floating();
    let (lf, li) = (loader::<f64>(src.dtype, None), loader::<i64>(src.dtype, None));
    let size = src.dtype.size();
    let (sp, vp, ip) = (Ptr::new(src.ptr), Ptr::new(values.ptr), Ptr::new(indices.ptr));
    par_ranges(ss.len(), 4096 / n.max(1) + 1, |lines| {
        let (mut kf, mut ki, mut line) = (vec![0f64; n], vec![0i64; n], vec![(0i64, 0usize); n]);
        for l in lines {
            let start = unsafe { sp.byte_at(ss[l], size) };
            if float {
                unsafe { lf(start, sstep, &mut kf) };
                line.iter_mut().zip(&kf).enumerate().for_each(|(i, (e, &v))| *e = (float_key(v), i));
            } else {
                unsafe { li(start, sstep, &mut ki) };
                line.iter_mut().zip(&ki).enumerate().for_each(|(i, (e, &v))| *e = (v, i));
            }
            order(&mut line, k, descending);
            for (j, &(_, p)) in line[..k].iter().enumerate() {
                unsafe {
                    std::ptr::copy_nonoverlapping(sp.byte_at(ss[l] + p as isize * sstep, size), vp.byte_at(vs[l] + j as isize * vstep, size), size);
                    *(ip.byte_at(is[l] + j as isize * istep, 8) as *mut i64) = p as i64;
                }
            }
        }
    });
    Ok(())
}

/// `sort`: every line along `dim` in ascending (or descending) order, stably.
pub fn sort(values: &View, indices: &View, src: &View, dim: usize, descending: bool) -> Result<(), KernelError> {
    let n = rank1(src).sizes.get(dim).copied().unwrap_or(1) as usize;
    select("sort", values, indices, src, dim, n, descending)
}

/// `topk`: the `k` largest (or smallest) of every line along `dim`, in sorted order.
pub fn topk(values: &View, indices: &View, src: &View, k: usize, dim: usize, largest: bool) -> Result<(), KernelError> {
    let n = rank1(src).sizes.get(dim).copied().unwrap_or(1) as usize;
    if k > n {
        return Err(err("topk", format!("selected index k out of range (k = {k}, dimension size {n})")));
    }
    select("topk", values, indices, src, dim, k, largest)
}
