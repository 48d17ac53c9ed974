//! Advanced indexing: `x[i0, :, i2]` with integer index tensors (`index.Tensor`) and assignment
//! through them (`index_put_`, with or without accumulation). The index tensors, already
//! broadcast to one shape B, select along `dims`; the result has B in place of the indexed dims
//! when they are adjacent, and in front otherwise (NumPy's rule, which PyTorch follows).
//! Every index is checked before anything is written.

use crate::scatter::Access;
use crate::view::{err, par_ranges, Ptr, View};
use crate::{DType, KernelError};

/// The shape of `x[indices]` for `x` of `sizes`, indexed along `dims` by tensors of shape `b`.
pub fn index_result_shape(sizes: &[i64], dims: &[usize], b: &[i64]) -> Vec<i64> {
    let adjacent = dims.windows(2).all(|w| w[1] == w[0] + 1);
    let rest = (0..sizes.len()).filter(|d| !dims.contains(d)).map(|d| sizes[d]);
    if adjacent && !dims.is_empty() {
        let (first, last) = (dims[0], dims[dims.len() - 1]);
        sizes[..first].iter().copied().chain(b.iter().copied()).chain(sizes[last + 1..].iter().copied()).collect()
    } else {
        b.iter().copied().chain(rest).collect()
    }
}

/// Per result dim: the stride it moves in `x` (0 for a B dim) and in B (0 for an `x` dim).
fn plan(x: &View, dims: &[usize], b: &[i64]) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
    let mut bstrides = vec![0i64; b.len()];
    let mut acc = 1;
    for d in (0..b.len()).rev() {
        bstrides[d] = acc;
        acc *= b[d];
    }
    let adjacent = dims.windows(2).all(|w| w[1] == w[0] + 1);
    let (mut xs, mut bs) = (vec![], vec![]);
    let push_x = |d: usize, xs: &mut Vec<i64>, bs: &mut Vec<i64>| {
        xs.push(x.strides[d]);
        bs.push(0);
    };
    if adjacent && !dims.is_empty() {
        for d in 0..dims[0] {
            push_x(d, &mut xs, &mut bs);
        }
        for &s in &bstrides {
            xs.push(0);
            bs.push(s);
        }
        for d in dims[dims.len() - 1] + 1..x.sizes.len() {
            push_x(d, &mut xs, &mut bs);
        }
    } else {
        for &s in &bstrides {
            xs.push(0);
            bs.push(s);
        }
        for d in (0..x.sizes.len()).filter(|d| !dims.contains(d)) {
            push_x(d, &mut xs, &mut bs);
        }
    }
    (index_result_shape(&x.sizes, dims, b), xs, bs)
}

/// The element offset in `x` that each position of B selects (indices wrapped and checked).
fn index_offsets(op: &str, x: &View, dims: &[usize], indices: &[View]) -> Result<Vec<isize>, KernelError> {
    let b = &indices[0].sizes;
    let n: usize = b.iter().map(|&s| s as usize).product();
    let mut out = vec![0isize; n];
    let load = crate::elementwise::loader::<i64>;
    for (k, (iv, &d)) in indices.iter().zip(dims).enumerate() {
        iv.validate(op)?;
        if &iv.sizes != b {
            return Err(err(op, format!("index {k} has shape {:?}, expected the broadcast shape {b:?}", iv.sizes)));
        }
        if !matches!(iv.dtype, DType::I64 | DType::I32) {
            return Err(err(op, format!("tensors used as indices must be long or int, got {}", iv.dtype.name())));
        }
        let size = x.sizes[d];
        let (ptr, esize) = (Ptr::new(iv.ptr), iv.dtype.size());
        let lf = load(iv.dtype, None);
        let mut pos = vec![0i64; b.len()];
        for slot in out.iter_mut() {
            let off: i64 = pos.iter().zip(&iv.strides).map(|(p, s)| p * s).sum();
            let mut v = [0i64];
            unsafe { lf(ptr.byte_at(off as isize, esize), 1, &mut v) };
            let i = v[0];
            if i < -size || i >= size {
                return Err(err(op, format!("index {i} is out of bounds for dimension {d} with size {size}")));
            }
            *slot += ((if i < 0 { i + size } else { i }) * x.strides[d]) as isize;
            for q in (0..pos.len()).rev() {
                pos[q] += 1;
                if pos[q] < b[q] {
                    break;
                }
                pos[q] = 0;
            }
        }
    }
    Ok(out)
}

/// Visits result elements `range` in row-major order with their offsets in each stride set.
fn walk<const K: usize>(sizes: &[i64], strides: [&[i64]; K], range: std::ops::Range<usize>, mut f: impl FnMut([isize; K])) {
    let r = sizes.len();
    let mut pos = vec![0i64; r];
    let mut rem = range.start;
    for d in (0..r).rev() {
        pos[d] = (rem % sizes[d] as usize) as i64;
        rem /= sizes[d] as usize;
    }
    let mut offs = [0isize; K];
    for (k, s) in strides.iter().enumerate() {
        offs[k] = pos.iter().zip(s.iter()).map(|(p, s)| (p * s) as isize).sum();
    }
    for _ in range {
        f(offs);
        for d in (0..r).rev() {
            pos[d] += 1;
            for (k, s) in strides.iter().enumerate() {
                offs[k] += s[d] as isize;
            }
            if pos[d] < sizes[d] {
                break;
            }
            for (k, s) in strides.iter().enumerate() {
                offs[k] -= (s[d] * sizes[d]) as isize;
            }
            pos[d] = 0;
        }
    }
}

fn check(op: &str, x: &View, dims: &[usize], indices: &[View]) -> Result<(), KernelError> {
    x.validate(op)?;
    if indices.is_empty() || indices.len() != dims.len() {
        return Err(err(op, "one index tensor per indexed dim is needed".into()));
    }
    if dims.iter().any(|&d| d >= x.sizes.len()) || dims.windows(2).any(|w| w[1] <= w[0]) {
        return Err(err(op, format!("indexed dims {dims:?} are not increasing dims of a rank {} tensor", x.sizes.len())));
    }
    Ok(())
}

/// `dst = src[indices]` (`dst` of [`index_result_shape`], `src`'s dtype).
pub fn index_gather(dst: &View, src: &View, dims: &[usize], indices: &[View]) -> Result<(), KernelError> {
    const OP: &str = "index";
    check(OP, src, dims, indices)?;
    dst.validate(OP)?;
    dst.check_writable(OP)?;
    let (shape, xs, bs) = plan(src, dims, &indices[0].sizes);
    if dst.sizes != shape || dst.dtype != src.dtype {
        return Err(err(OP, format!("output {:?} {} must be {shape:?} {}", dst.sizes, dst.dtype.name(), src.dtype.name())));
    }
    let n = dst.numel();
    if n == 0 {
        return Ok(());
    }
    let offs = index_offsets(OP, src, dims, indices)?;
    let size = src.dtype.size();
    let (sp, dp) = (Ptr::new(src.ptr), Ptr::new(dst.ptr));
    par_ranges(n, 8192, |range| {
        walk(&shape, [&xs, &bs, &dst.strides], range, |[x, b, d]| unsafe {
            std::ptr::copy_nonoverlapping(sp.byte_at(x + offs[b as usize], size), dp.byte_at(d, size), size);
        });
    });
    Ok(())
}

/// `dst[indices] = values` (or `+=` with `accumulate`), `values` broadcast to the result shape.
/// Runs in index order, so the last of duplicate indices wins, as on PyTorch's CPU.
pub fn index_put(dst: &View, dims: &[usize], indices: &[View], values: &View, accumulate: bool) -> Result<(), KernelError> {
    const OP: &str = "index_put_";
    check(OP, dst, dims, indices)?;
    dst.check_writable(OP)?;
    values.validate(OP)?;
    let (shape, xs, bs) = plan(dst, dims, &indices[0].sizes);
    if values.dtype != dst.dtype {
        return Err(err(OP, format!("Index put requires the source and destination dtypes match, got {} for the destination and {} for the source.", dst.dtype.name(), values.dtype.name())));
    }
    // values broadcast (right-aligned) to the result shape
    if values.sizes.len() > shape.len() {
        return Err(err(OP, format!("shape mismatch: value tensor of shape {:?} cannot be broadcast to indexing result of shape {shape:?}", values.sizes)));
    }
    let pad = shape.len() - values.sizes.len();
    let mut vstrides = vec![0i64; shape.len()];
    for (k, (&n, &s)) in values.sizes.iter().zip(&values.strides).enumerate() {
        let full = shape[pad + k];
        if n != full && n != 1 {
            return Err(err(OP, format!("shape mismatch: value tensor of shape {:?} cannot be broadcast to indexing result of shape {shape:?}", values.sizes)));
        }
        vstrides[pad + k] = if n == 1 { 0 } else { s };
    }
    let n: usize = shape.iter().map(|&s| s as usize).product();
    if n == 0 {
        return Ok(());
    }
    if accumulate && dst.dtype.is_complex() {
        return Err(err(OP, format!("accumulate is not implemented for '{}'", dst.dtype.name())));
    }
    let offs = index_offsets(OP, dst, dims, indices)?;
    let size = dst.dtype.size();
    let (dp, vp) = (Ptr::new(dst.ptr), Ptr::new(values.ptr));
    let acc = Access::new(dst.dtype);
    walk(&shape, [&xs, &bs, &vstrides], 0..n, |[x, b, v]| unsafe {
        let target = dp.byte_at(x + offs[b as usize], size);
        let value = vp.byte_at(v, size);
        if accumulate {
            acc.set(target, acc.add(acc.get(target), acc.get(value)));
        } else {
            std::ptr::copy_nonoverlapping(value, target, size);
        }
    });
    Ok(())
}
