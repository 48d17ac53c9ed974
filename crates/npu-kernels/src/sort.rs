//! sort and topk along one dim. Each line is ordered by a stable sort of its positions (keys
//! compared exactly: f64 for floats, i64 for integers and bool), NaN counting as larger than
//! every number as in PyTorch; values are then copied bit for bit and positions written as
//! int64 indices. Lines run in parallel.

use std::cmp::Ordering;

use crate::elementwise::loader;
use crate::gather::offsets;
use crate::scatter::rank1;
use crate::view::{err, par_ranges, Ptr, View};
use crate::{DType, KernelError};

fn line_dims(v: &View, dim: usize) -> Vec<(i64, i64)> {
    (0..v.sizes.len()).filter(|&d| d != dim).map(|d| (v.sizes[d], v.strides[d])).collect()
}

/// Orders `idx` (positions 0..n) by the keys, ascending or descending, stably.
fn order(keys_f: Option<&[f64]>, keys_i: Option<&[i64]>, idx: &mut [usize], descending: bool) {
    let cmp_f = |a: f64, b: f64| match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    };
    match (keys_f, keys_i) {
        (Some(k), _) => idx.sort_by(|&a, &b| {
            let o = cmp_f(k[a], k[b]);
            if descending { o.reverse() } else { o }
        }),
        (_, Some(k)) => idx.sort_by(|&a, &b| {
            let o = k[a].cmp(&k[b]);
            if descending { o.reverse() } else { o }
        }),
        _ => {}
    }
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
        let (mut kf, mut ki, mut idx) = (vec![0f64; n], vec![0i64; n], vec![0usize; n]);
        for l in lines {
            let start = unsafe { sp.byte_at(ss[l], size) };
            if float {
                unsafe { lf(start, sstep, &mut kf) };
            } else {
                unsafe { li(start, sstep, &mut ki) };
            }
            idx.iter_mut().enumerate().for_each(|(i, p)| *p = i);
            order(float.then_some(&kf[..]), (!float).then_some(&ki[..]), &mut idx, descending);
            for (j, &p) in idx[..k].iter().enumerate() {
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
