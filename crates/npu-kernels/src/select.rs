//! Counting nonzero elements and `masked_select`.

use crate::convert::dispatch_bits;
use crate::elementwise::{reject_complex, truth_loader, CHUNK};
use crate::view::{err, par_ranges, Layout, Ptr, View};
use crate::{DType, KernelError};

/// Elements per parallel block (fixed, so the split never matters).
const BLOCK: usize = 64 * 1024;

struct Shared<T>(*mut T);
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

/// Nonzero counts of consecutive `BLOCK`-element blocks of `v` (row-major order).
fn block_counts(v: &View, n: usize) -> Vec<usize> {
    let layout = Layout::<1>::new(&v.sizes, [&v.strides]);
    let [st] = layout.inner_strides();
    let load = truth_loader::<u8>(v.dtype);
    let (p, size) = (Ptr::new(v.ptr), v.dtype.size());
    let nb = n.div_ceil(BLOCK);
    let mut counts = vec![0usize; nb];
    let out = Shared(counts.as_mut_ptr());
    let out = &out;
    par_ranges(nb, 1, |range| {
        let mut buf = vec![0u8; CHUNK];
        for b in range {
            let mut c = 0usize;
            layout.for_each_row(b * BLOCK..((b + 1) * BLOCK).min(n), |_, [off], len| {
                let mut done = 0;
                while done < len {
                    let k = CHUNK.min(len - done);
                    unsafe { load(p.byte_at(off + done as isize * st, size), st, &mut buf[..k]) };
                    c += buf[..k].iter().map(|&x| x as usize).sum::<usize>();
                    done += k;
                }
            });
            unsafe { *out.0.add(b) = c };
        }
    });
    counts
}

/// Where each block's selected elements start in the output: the running sum of `counts`
/// before it.
fn block_starts(counts: &[usize]) -> Vec<usize> {
    counts.iter().scan(0, |acc, &c| Some(std::mem::replace(acc, *acc + c))).collect()
}

/// The number of nonzero elements of `src` (NaN counts as nonzero).
pub fn count_nonzero(src: &View) -> Result<usize, KernelError> {
    reject_complex("count_nonzero", &[src.dtype])?;
    let n = src.validate("count_nonzero")?;
    if n == 0 {
        return Ok(0);
    }
    Ok(block_counts(src, n).iter().sum())
}

/// `masked_select`: writes the elements of `src` where `mask` is nonzero, in row-major order,
/// into the 1-d `dst` (which must have exactly `count_nonzero(mask)` elements and `src`'s
/// dtype). `src` and `mask` have equal sizes (broadcast dims have stride 0); `mask` may have any
/// dtype.
pub fn masked_select(dst: &View, src: &View, mask: &View) -> Result<(), KernelError> {
    let name = "masked_select";
    reject_complex(name, &[mask.dtype])?;
    dst.validate(name)?;
    let n = src.validate(name)?;
    mask.validate(name)?;
    if src.sizes != mask.sizes {
        return Err(err(
            name,
            format!(
                "mask size {:?} does not match input size {:?}",
                mask.sizes, src.sizes
            ),
        ));
    }
    if dst.dtype != src.dtype {
        return Err(err(
            name,
            format!(
                "expected output dtype {} but got {}",
                src.dtype.name(),
                dst.dtype.name()
            ),
        ));
    }
    if dst.sizes.len() != 1 {
        return Err(err(
            name,
            format!("output must be 1-d, got size {:?}", dst.sizes),
        ));
    }
    let counts = if n == 0 {
        Vec::new()
    } else {
        block_counts(mask, n)
    };
    let total: usize = counts.iter().sum();
    if dst.sizes[0] as usize != total {
        return Err(err(
            name,
            format!(
                "output has {} elements but the mask selects {total}",
                dst.sizes[0]
            ),
        ));
    }
    if total == 0 {
        return Ok(());
    }
    dst.check_writable(name)?;
    let starts = block_starts(&counts);
    dispatch_bits!(src.dtype.size(), T => gather::<T>(dst, src, mask, n, &starts));
    Ok(())
}

/// Copies selected elements as `T`-sized bit patterns; block `b` starts at output `starts[b]`.
fn gather<T: Copy>(dst: &View, src: &View, mask: &View, n: usize, starts: &[usize]) {
    let layout = Layout::<2>::new(&src.sizes, [&src.strides, &mask.strides]);
    let [ss, ms] = layout.inner_strides();
    let load = truth_loader::<u8>(mask.dtype);
    let (sp, mp, dp) = (Ptr::new(src.ptr), Ptr::new(mask.ptr), Ptr::new(dst.ptr));
    let (msize, ds) = (mask.dtype.size(), dst.strides[0] as isize);
    par_ranges(starts.len(), 1, |range| {
        let mut buf = vec![0u8; CHUNK];
        for b in range {
            let mut pos = starts[b] as isize;
            layout.for_each_row(b * BLOCK..((b + 1) * BLOCK).min(n), |_, [so, mo], len| {
                let mut done = 0;
                while done < len {
                    let k = CHUNK.min(len - done);
                    unsafe {
                        load(
                            mp.byte_at(mo + done as isize * ms, msize),
                            ms,
                            &mut buf[..k],
                        );
                        for (j, &t) in buf[..k].iter().enumerate() {
                            if t != 0 {
                                let s = sp.at::<T>(so + (done + j) as isize * ss);
                                *dp.at::<T>(pos * ds) = *s;
                                pos += 1;
                            }
                        }
                    }
                    done += k;
                }
            });
        }
    });
}

/// `nonzero`: the coordinates of every nonzero element of `src` in row-major order, as the rows
/// of the int64 `dst` [count_nonzero(src), rank]. Blocks of the elements are counted, then each
/// writes its rows from its own start, in parallel.
pub fn nonzero(dst: &View, src: &View) -> Result<(), KernelError> {
    let name = "nonzero";
    reject_complex(name, &[src.dtype])?;
    let n = src.validate(name)?;
    dst.validate(name)?;
    dst.check_writable(name)?;
    let rank = src.sizes.len();
    if dst.dtype != DType::I64 || dst.sizes.len() != 2 || dst.sizes[1] != rank as i64 {
        return Err(err(name, format!("output must be int64 of shape [count, {rank}], got {:?} {}", dst.sizes, dst.dtype.name())));
    }
    let counts = if n == 0 { Vec::new() } else { block_counts(src, n) };
    let total: usize = counts.iter().sum();
    if total > dst.sizes[0] as usize {
        return Err(err(name, "more nonzero elements than output rows".into()));
    }
    if total == 0 || rank == 0 {
        // (a 0-dim nonzero is one row of no coordinates)
        return Ok(());
    }
    let starts = block_starts(&counts);
    let layout = Layout::<1>::new(&src.sizes, [&src.strides]);
    let [st] = layout.inner_strides();
    let load = truth_loader::<u8>(src.dtype);
    let (sp, dp, size) = (Ptr::new(src.ptr), Ptr::new(dst.ptr), src.dtype.size());
    let (rs, cs) = (dst.strides[0] as isize, dst.strides[1] as isize);
    let sizes = src.sizes.as_slice();
    par_ranges(starts.len(), 1, |range| {
        let mut buf = vec![0u8; CHUNK];
        let mut coord = vec![0i64; rank];
        for b in range {
            let mut row = starts[b] as isize;
            // the coordinates of linear index `at`, moved forward to each nonzero element
            let mut at = b * BLOCK;
            set_coords(&mut coord, at, sizes);
            layout.for_each_row(b * BLOCK..((b + 1) * BLOCK).min(n), |i0, [off], len| {
                let mut done = 0;
                while done < len {
                    let k = CHUNK.min(len - done);
                    unsafe { load(sp.byte_at(off + done as isize * st, size), st, &mut buf[..k]) };
                    for (j, &t) in buf[..k].iter().enumerate() {
                        if t != 0 {
                            let i = i0 + done + j;
                            advance(&mut coord, i - at, sizes);
                            at = i;
                            for (d, &c) in coord.iter().enumerate() {
                                unsafe { *dp.at::<i64>(row * rs + d as isize * cs) = c };
                            }
                            row += 1;
                        }
                    }
                    done += k;
                }
            });
        }
    });
    Ok(())
}

/// `coord` = the row-major coordinates of linear index `i` within `sizes` (none of them 0).
fn set_coords(coord: &mut [i64], mut i: usize, sizes: &[i64]) {
    for d in (0..sizes.len()).rev() {
        coord[d] = (i % sizes[d] as usize) as i64;
        i /= sizes[d] as usize;
    }
}

/// Moves `coord` forward by `delta` linear positions within `sizes`: a division only where the
/// move crosses into another innermost row.
fn advance(coord: &mut [i64], delta: usize, sizes: &[i64]) {
    let last = sizes.len() - 1;
    coord[last] += delta as i64;
    let mut d = last;
    while coord[d] >= sizes[d] && d > 0 {
        let carry = coord[d] / sizes[d];
        coord[d] %= sizes[d];
        d -= 1;
        coord[d] += carry;
    }
}

/// `isin`: `dst[i] = elements[i] ∈ test` (or ∉ with `invert`), comparing values exactly (as f64
/// when either side is floating, else as i64; NaN is in nothing). `dst` is bool, `elements`'
/// sizes; `test` any shape.
pub fn isin(dst: &View, elements: &View, test: &View, invert: bool) -> Result<(), KernelError> {
    let name = "isin";
    reject_complex(name, &[elements.dtype, test.dtype])?;
    let n = elements.validate(name)?;
    test.validate(name)?;
    dst.validate(name)?;
    dst.check_writable(name)?;
    if dst.dtype != DType::Bool || dst.sizes != elements.sizes {
        return Err(err(name, format!("output must be bool of shape {:?}, got {:?} {}", elements.sizes, dst.sizes, dst.dtype.name())));
    }
    if n == 0 {
        return Ok(());
    }
    let float = elements.dtype.is_floating() || test.dtype.is_floating();
    // every value of a view, in row-major order
    fn values<T: crate::Element + Default>(v: &View) -> Vec<T> {
        let load = crate::elementwise::loader::<T>(v.dtype, None);
        let size = v.dtype.size();
        let dims: Vec<(i64, i64)> = v.sizes.iter().copied().zip(v.strides.iter().copied()).collect();
        let p = crate::view::Ptr::new(v.ptr);
        crate::gather::offsets(&dims)
            .into_iter()
            .map(|o| {
                let mut x = [T::default()];
                unsafe { load(p.byte_at(o, size), 1, &mut x) };
                x[0]
            })
            .collect()
    }
    let found: Vec<bool> = if float {
        let mut t: Vec<f64> = values::<f64>(test).into_iter().filter(|x| !x.is_nan()).collect();
        t.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        values::<f64>(elements).iter().map(|x| t.binary_search_by(|y| y.partial_cmp(x).unwrap_or(std::cmp::Ordering::Less)).is_ok()).collect()
    } else {
        let mut t = values::<i64>(test);
        t.sort_unstable();
        values::<i64>(elements).iter().map(|x| t.binary_search(x).is_ok()).collect()
    };
    let dims: Vec<(i64, i64)> = dst.sizes.iter().copied().zip(dst.strides.iter().copied()).collect();
    for (o, f) in crate::gather::offsets(&dims).into_iter().zip(found) {
        unsafe { *dst.ptr.offset(o) = (f != invert) as u8 };
    }
    Ok(())
}

/// `masked_scatter_`: the positions of `dst` where `mask` is set, in row-major order, take the
/// consecutive elements of `source` (any shape, read in row-major order, `dst`'s dtype).
/// `mask` has `dst`'s sizes (broadcast dims have stride 0). Too few source elements is an
/// error raised before anything is written.
pub fn masked_scatter(dst: &View, mask: &View, source: &View) -> Result<(), KernelError> {
    let name = "masked_scatter_";
    let n = dst.validate(name)?;
    mask.validate(name)?;
    let available = source.validate(name)?;
    dst.check_writable(name)?;
    if mask.sizes != dst.sizes || source.dtype != dst.dtype || mask.dtype != DType::Bool {
        return Err(err(name, format!("mask {:?} and source {} must match self {:?} {}", mask.sizes, source.dtype.name(), dst.sizes, dst.dtype.name())));
    }
    if n == 0 {
        return Ok(());
    }
    let needed: usize = block_counts(mask, n).iter().sum();
    if needed > available {
        return Err(err(name, format!("Number of elements of source < number of ones in mask ({available} < {needed})")));
    }
    let flags = crate::dense::host_values::<u8>(mask)?;
    let src = crate::dense::Dense::of(source, source.dtype)?;
    let size = dst.dtype.size();
    let (dp, sp) = (Ptr::new(dst.ptr), Ptr::new(src.view.ptr));
    let rank = dst.sizes.len();
    let mut pos = vec![0i64; rank];
    let mut k = 0isize;
    for &f in &flags {
        if f != 0 {
            let off: i64 = pos.iter().zip(&dst.strides).map(|(p, s)| p * s).sum();
            unsafe { std::ptr::copy_nonoverlapping(sp.byte_at(k, size), dp.byte_at(off as isize, size), size) };
            k += 1;
        }
        crate::view::next_index(&mut pos, &dst.sizes);
    }
    Ok(())
}
