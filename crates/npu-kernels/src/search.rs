//! searchsorted / bucketize: binary search of each value in a sorted sequence (1-d, or one
//! row per row of the values), optionally through a `sorter` permutation.

use crate::dense::host_values;
use crate::view::{err, par_ranges, View};
use crate::{DType, KernelError};

/// `dst[..., j]` = the insertion point of `values[..., j]` in the matching row of `sorted`:
/// the first position whose element is `>= v` (left) or `> v` (right). NaN sorts last. `dst`
/// is i64 or i32 with `values`' shape; `values` may be 0-dim with a 1-d `sorted`.
pub fn searchsorted(dst: &View, sorted: &View, values: &View, sorter: Option<&View>, right: bool) -> Result<(), KernelError> {
    const OP: &str = "searchsorted";
    for v in [dst, sorted, values].into_iter().chain(sorter) {
        v.validate(OP)?;
    }
    dst.check_writable(OP)?;
    if !matches!(dst.dtype, DType::I64 | DType::I32) || dst.sizes != values.sizes {
        return Err(err(OP, format!("output must be int64 or int32 of shape {:?}, got {:?} {}", values.sizes, dst.sizes, dst.dtype.name())));
    }
    let rank = sorted.sizes.len();
    if rank == 0 {
        return Err(err(OP, "boundaries tensor should have positive dimension, but got 0 dimension".into()));
    }
    if rank > 1 && (values.sizes.len() != rank || values.sizes[..rank - 1] != sorted.sizes[..rank - 1]) {
        return Err(err(OP, format!(
            "boundaries tensor should be 1 dimension or the first N-1 dimensions of boundaries tensor and input value tensor must match, but we got boundaries tensor {:?} and input value tensor {:?}",
            sorted.sizes, values.sizes
        )));
    }
    if let Some(s) = sorter {
        if s.sizes != sorted.sizes || s.dtype != DType::I64 {
            return Err(err(OP, "sorter must be an int64 tensor of the boundaries' shape".into()));
        }
    }
    if sorted.dtype.is_complex() || values.dtype.is_complex() {
        return Err(err(OP, "not implemented for complex tensors".into()));
    }
    let ints = !sorted.dtype.is_floating() && !values.dtype.is_floating();
    let pos = if ints {
        positions(host_values::<i64>(sorted)?, host_values::<i64>(values)?, sorted, values, sorter, right)?
    } else {
        positions(host_values::<f64>(sorted)?, host_values::<f64>(values)?, sorted, values, sorter, right)?
    };
    crate::dense::store_values(dst, &pos)
}

fn positions<T: PartialOrd + Copy + Send + Sync>(seq: Vec<T>, vals: Vec<T>, sorted: &View, values: &View, sorter: Option<&View>, right: bool) -> Result<Vec<i64>, KernelError> {
    let len = *sorted.sizes.last().unwrap_or(&1) as usize;
    let order = sorter.map(host_values::<i64>).transpose()?;
    if let Some(o) = &order {
        if o.iter().any(|&i| i < 0 || i as usize >= len) {
            return Err(err("searchsorted", format!("sorter index out of range: expected values in [0, {len})")));
        }
    }
    let row_len = if values.sizes.is_empty() { 1 } else { *values.sizes.last().unwrap() as usize };
    let per_row = sorted.sizes.len() > 1;
    let mut out = vec![0i64; vals.len()];
    let out_ptr = crate::dense::P(out.as_mut_ptr());
    par_ranges(vals.len(), 4096, |range| {
        for k in range {
            let base = if per_row { k / row_len.max(1) * len } else { 0 };
            let at = |i: usize| match &order {
                Some(o) => seq[base + o[base + i] as usize],
                None => seq[base + i],
            };
            let v = vals[k];
            let (mut lo, mut hi) = (0usize, len);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                let m = at(mid);
                let go_right = if right { !(m > v) } else { !(m >= v) };
                if go_right {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            unsafe { *out_ptr.at(k) = lo as i64 };
        }
    });
    Ok(out)
}
