//! Indexing along one dim: `index_select` (gather whole slices) and `index_add` (scatter-add
//! whole slices, e.g. the embedding gradient). An index out of range is an error naming it.

use crate::dense::Operand;
use crate::elementwise::loader;
use crate::math::Float;
use crate::view::{err, par_ranges, Ptr, View};
use crate::{DType, KernelError};

/// The indices as i64 (any integer dtype), checked against `bound`.
fn indices(op: &str, index: &View, bound: i64) -> Result<Vec<i64>, KernelError> {
    index.validate(op)?;
    if index.sizes.len() > 1 || !matches!(index.dtype, DType::I64 | DType::I32) {
        return Err(err(op, format!("index must be a 1-D int64 or int32 tensor, got {:?} {}", index.sizes, index.dtype.name())));
    }
    let n = index.numel();
    let mut out = vec![0i64; n];
    if n > 0 {
        let step = index.strides.first().copied().unwrap_or(1) as isize;
        unsafe { loader::<i64>(index.dtype, None)(index.ptr, step, &mut out) };
    }
    if let Some(&bad) = out.iter().find(|&&i| i < -bound || i >= bound) {
        return Err(err(op, format!("index {bad} is out of bounds for dimension with size {bound}")));
    }
    // negative indices count from the end, as in PyTorch's index_select
    Ok(out.into_iter().map(|i| if i < 0 { i + bound } else { i }).collect())
}

/// Splits a view around `dim`: (outer sizes, outer strides, inner sizes, inner strides).
struct Split {
    outer: Vec<(i64, i64)>,
    inner: Vec<(i64, i64)>,
    step: i64,
}

fn split(v: &View, dim: usize) -> Split {
    let pairs: Vec<(i64, i64)> = v.sizes.iter().copied().zip(v.strides.iter().copied()).collect();
    Split { outer: pairs[..dim].to_vec(), inner: pairs[dim + 1..].to_vec(), step: v.strides[dim] }
}

/// Element offsets of every position of `dims` (row-major).
pub(crate) fn offsets(dims: &[(i64, i64)]) -> Vec<isize> {
    let mut out = vec![0isize];
    for &(n, s) in dims {
        out = out.iter().flat_map(|&o| (0..n).map(move |i| o + (i * s) as isize)).collect();
    }
    out
}

/// `dst = src.index_select(dim, index)`: `dst` has `src`'s sizes with `dim` replaced by the
/// number of indices; both have one dtype.
pub fn index_select(dst: &View, src: &View, dim: usize, index: &View) -> Result<(), KernelError> {
    const OP: &str = "index_select";
    dst.validate(OP)?;
    src.validate(OP)?;
    let rank = src.sizes.len();
    let (src, dst, dim) = if rank == 0 {
        (View { sizes: vec![1], strides: vec![1], ..src.clone() }, View { sizes: vec![dst.numel() as i64], strides: vec![1], ..dst.clone() }, 0)
    } else {
        (src.clone(), dst.clone(), dim)
    };
    if dim >= src.sizes.len() || dst.dtype != src.dtype {
        return Err(err(OP, format!("bad dim {dim} or dtypes {} / {}", src.dtype.name(), dst.dtype.name())));
    }
    let idx = indices(OP, index, src.sizes[dim])?;
    let mut want = src.sizes.clone();
    want[dim] = idx.len() as i64;
    if dst.sizes != want {
        return Err(err(OP, format!("output of size {:?}, expected {want:?}", dst.sizes)));
    }
    if dst.numel() == 0 {
        return Ok(());
    }
    dst.check_writable(OP)?;
    let (s, d) = (split(&src, dim), split(&dst, dim));
    let (so, si, doo, di) = (offsets(&s.outer), offsets(&s.inner), offsets(&d.outer), offsets(&d.inner));
    let size = src.dtype.size();
    let (sp, dp) = (Ptr::new(src.ptr), Ptr::new(dst.ptr));
    // contiguous inner rows copy as bytes
    let rows_contiguous = si.len() <= 1 || (si.windows(2).all(|w| w[1] - w[0] == 1) && di.windows(2).all(|w| w[1] - w[0] == 1));
    let k = idx.len();
    par_ranges(so.len() * k, (1 << 14) / si.len().max(1) + 1, |range| {
        for t in range {
            let (o, j) = (t / k, t % k);
            let sbase = so[o] + (idx[j] * s.step) as isize;
            let dbase = doo[o] + (j as i64 * d.step) as isize;
            unsafe {
                if rows_contiguous {
                    std::ptr::copy_nonoverlapping(sp.byte_at(sbase + si[0], size), dp.byte_at(dbase + di[0], size), size * si.len());
                } else {
                    for (a, b) in si.iter().zip(&di) {
                        std::ptr::copy_nonoverlapping(sp.byte_at(sbase + a, size), dp.byte_at(dbase + b, size), size);
                    }
                }
            }
        }
    });
    Ok(())
}

/// `dst[.., index[k], ..] += alpha * src[.., k, ..]` along `dim`, accumulating in f32 (f64 for
/// f64) and rounding once. With `scale_by_count`, each contribution is divided by how often
/// its index occurs; indices equal to `skip` contribute nothing (embedding's padding_idx).
pub fn index_add(
    dst: &View,
    dim: usize,
    index: &View,
    src: &View,
    alpha: f64,
    skip: Option<i64>,
    scale_by_count: bool,
) -> Result<(), KernelError> {
    const OP: &str = "index_add";
    dst.validate(OP)?;
    src.validate(OP)?;
    if dst.sizes.is_empty() {
        // a 0-dim tensor indexes like a vector of one
        let one = |v: &View| View { sizes: vec![1], strides: vec![1], ..v.clone() };
        let s = if src.sizes.is_empty() { one(src) } else { src.clone() };
        return index_add(&one(dst), 0, index, &s, alpha, skip, scale_by_count);
    }
    if dst.dtype.is_complex() || src.dtype != dst.dtype || dim >= dst.sizes.len().max(1) || src.sizes.len() != dst.sizes.len() {
        return Err(err(OP, format!("expected real tensors of one dtype and equal rank, got {:?} {} and {:?} {}", dst.sizes, dst.dtype.name(), src.sizes, src.dtype.name())));
    }
    if !dst.dtype.is_floating() && scale_by_count {
        return Err(err(OP, "scale_by_count needs a floating tensor".into()));
    }
    let idx = indices(OP, index, dst.sizes[dim])?;
    let mut want = dst.sizes.clone();
    want[dim] = idx.len() as i64;
    if src.sizes != want {
        return Err(err(OP, format!("source of size {:?}, expected {want:?}", src.sizes)));
    }
    dst.check_writable(OP)?;
    if !dst.dtype.is_floating() {
        add_int(dst, dim, &idx, src, alpha as i64, skip)
    } else if dst.dtype == DType::F64 {
        add::<f64>(dst, dim, &idx, src, alpha, skip, scale_by_count)
    } else {
        add::<f32>(dst, dim, &idx, src, alpha, skip, scale_by_count)
    }
}

/// [`index_add`] of integer and bool tensors: exact, wrapping like C++ integer arithmetic
/// (sums are taken in i64 and narrowed on the way back; bool is true where the sum is nonzero).
fn add_int(dst: &View, dim: usize, idx: &[i64], src: &View, alpha: i64, skip: Option<i64>) -> Result<(), KernelError> {
    let mut acc = crate::dense::host_values::<i64>(dst)?;
    let s = crate::dense::host_values::<i64>(src)?;
    let n = dst.sizes[dim] as usize;
    let outer: usize = dst.sizes[..dim].iter().map(|&v| v as usize).product();
    let inner: usize = dst.sizes[dim + 1..].iter().map(|&v| v as usize).product();
    let k = idx.len();
    for o in 0..outer {
        for (j, &i) in idx.iter().enumerate() {
            if skip == Some(i) {
                continue;
            }
            for c in 0..inner {
                let d = &mut acc[(o * n + i as usize) * inner + c];
                *d = d.wrapping_add(alpha.wrapping_mul(s[(o * k + j) * inner + c]));
            }
        }
    }
    crate::dense::store_values(dst, &acc)
}

#[allow(clippy::too_many_arguments)]
fn add<F: Float>(dst: &View, dim: usize, idx: &[i64], src: &View, alpha: f64, skip: Option<i64>, scale_by_count: bool) -> Result<(), KernelError> {
    let ct = F::DTYPE;
    // the destination, in compute precision: read (it accumulates), then written back
    let acc = Operand::of(dst, ct)?;
    let s = Operand::of(src, ct)?;
    let (ap, sp) = (acc.ptr::<F>(), s.ptr::<F>());
    let n = dst.sizes[dim] as usize;
    let outer: usize = dst.sizes[..dim].iter().map(|&v| v as usize).product();
    let inner: usize = dst.sizes[dim + 1..].iter().map(|&v| v as usize).product();
    let mut counts = vec![0u32; n];
    for &i in idx {
        counts[i as usize] += 1;
    }
    let k = idx.len();
    let (ap, sp) = (Ptr::new(ap as *mut u8), Ptr::new(sp as *mut u8));
    let size = std::mem::size_of::<F>();
    // parallel over outer slices and blocks of columns: each target element is owned by one
    // task, which adds the indices in order, so results do not depend on the split
    const BLOCK: usize = 256;
    let blocks = inner.div_ceil(BLOCK).max(1);
    par_ranges(outer * blocks, 1, |range| {
        for t in range {
            let (o, b) = (t / blocks, t % blocks);
            let (c0, c1) = (b * BLOCK, ((b + 1) * BLOCK).min(inner));
            for (j, &i) in idx.iter().enumerate() {
                if skip == Some(i) {
                    continue;
                }
                let scale = F::c(if scale_by_count { alpha / counts[i as usize] as f64 } else { alpha });
                unsafe {
                    let d = std::slice::from_raw_parts_mut(ap.byte_at(((o * n + i as usize) * inner + c0) as isize, size) as *mut F, c1 - c0);
                    let s = std::slice::from_raw_parts(sp.byte_at(((o * k + j) * inner + c0) as isize, size) as *const F, c1 - c0);
                    for (dv, &sv) in d.iter_mut().zip(s) {
                        *dv = *dv + scale * sv;
                    }
                }
            }
        }
    });
    match acc {
        Operand::Borrowed(_) => Ok(()),
        Operand::Staged(d) => d.store(dst),
    }
}
