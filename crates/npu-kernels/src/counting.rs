//! Counting ops: repeat_interleave's index, bincount and histc. They read the whole input
//! once, in order (so float sums match PyTorch CPU's sequential loops).

use crate::dense::{host_values, store_values};
use crate::view::{err, View};
use crate::{DType, KernelError};

fn check_counts(op: &str, v: &View, what: &str) -> Result<Vec<i64>, KernelError> {
    v.validate(op)?;
    if v.sizes.len() != 1 || v.dtype.is_floating() || v.dtype.is_complex() || v.dtype == DType::Bool {
        return Err(err(op, format!("{what} must be a 1-d integer tensor, got {:?} {}", v.sizes, v.dtype.name())));
    }
    host_values::<i64>(v)
}

/// The repeats (1-d, non-negative) and their sum.
fn repeats_of(repeats: &View) -> Result<(Vec<i64>, i64), KernelError> {
    let r = check_counts("repeat_interleave", repeats, "repeats")?;
    if r.iter().any(|&k| k < 0) {
        return Err(err("repeat_interleave", "repeats can not be negative".into()));
    }
    let total = r.iter().sum();
    Ok((r, total))
}

/// The length of `repeat_interleave(repeats)`: the sum of `repeats` (1-d, non-negative).
pub fn repeat_total(repeats: &View) -> Result<i64, KernelError> {
    Ok(repeats_of(repeats)?.1)
}

/// `dst` (1-d) = each index `i` of `repeats` written `repeats[i]` times.
pub fn repeat_index(dst: &View, repeats: &View) -> Result<(), KernelError> {
    let (r, total) = repeats_of(repeats)?;
    dst.check_writable("repeat_interleave")?;
    if dst.sizes != [total] {
        return Err(err("repeat_interleave", format!("allocated size {:?} does not match the sum of repeats {total}", dst.sizes)));
    }
    let idx: Vec<i64> = r.iter().enumerate().flat_map(|(i, &k)| std::iter::repeat_n(i as i64, k as usize)).collect();
    store_values(dst, &idx)
}

/// The length of `bincount(input, minlength)`: `max(input) + 1`, at least `minlength`.
pub fn bincount_size(input: &View, minlength: i64) -> Result<i64, KernelError> {
    let v = check_counts("bincount", input, "input")?;
    if v.iter().any(|&x| x < 0) {
        return Err(err("bincount", "bincount only supports 1-d non-negative integral inputs.".into()));
    }
    Ok(v.iter().max().map_or(0, |m| m + 1).max(minlength))
}

/// `dst[k]` = the number of elements of `input` equal to `k` (or the sum of their `weights`),
/// summed in input order in `dst`'s dtype (i64 counts, or f32/f64 weights).
pub fn bincount(dst: &View, input: &View, weights: Option<&View>) -> Result<(), KernelError> {
    const OP: &str = "bincount";
    let v = check_counts(OP, input, "input")?;
    dst.validate(OP)?;
    dst.check_writable(OP)?;
    if dst.sizes.len() != 1 {
        return Err(err(OP, format!("expected a 1-d output, got {:?}", dst.sizes)));
    }
    let bins = dst.sizes[0] as usize;
    if v.iter().any(|&x| x < 0 || x as usize >= bins) {
        return Err(err(OP, format!("input values must be in [0, {bins})")));
    }
    match weights {
        None => {
            let mut c = vec![0i64; bins];
            v.iter().for_each(|&x| c[x as usize] += 1);
            store_values(dst, &c)
        }
        Some(w) => {
            if w.sizes != input.sizes {
                return Err(err(OP, "weights should be 1-d and have the same length as input".into()));
            }
            let wv = host_values::<f64>(w)?;
            if dst.dtype == DType::F32 {
                let mut c = vec![0f32; bins];
                v.iter().zip(&wv).for_each(|(&x, &w)| c[x as usize] += w as f32);
                store_values(dst, &c)
            } else {
                let mut c = vec![0f64; bins];
                v.iter().zip(&wv).for_each(|(&x, &w)| c[x as usize] += w);
                store_values(dst, &c)
            }
        }
    }
}

/// `histc`: counts of `input` in `dst.len()` equal bins over `[min, max]` (the data's range
/// when `min == max`, widened by 1 on each side if still equal); elements outside and NaN are
/// ignored, `max` falls in the last bin. The bin arithmetic runs in the input's dtype, rounding
/// after each operation as PyTorch CPU does for f16/bf16.
pub fn histc(dst: &View, input: &View, min: f64, max: f64) -> Result<(), KernelError> {
    const OP: &str = "histc";
    input.validate(OP)?;
    dst.validate(OP)?;
    dst.check_writable(OP)?;
    if !input.dtype.is_floating() || dst.dtype != input.dtype || dst.sizes.len() != 1 || dst.sizes[0] <= 0 {
        return Err(err(OP, format!("expected a float input and a 1-d output of its dtype with bins > 0, got {} and {:?} {}", input.dtype.name(), dst.sizes, dst.dtype.name())));
    }
    let bins = dst.sizes[0] as usize;
    let x = host_values::<f64>(input)?;
    // arithmetic in the input's dtype
    let r = |v: f64| -> f64 {
        match input.dtype {
            DType::F64 => v,
            DType::F32 => v as f32 as f64,
            DType::F16 => half::f16::from_f64(v).to_f64(),
            _ => half::bf16::from_f64(v).to_f64(),
        }
    };
    let (mut lo, mut hi) = (r(min), r(max));
    if lo == hi && !x.is_empty() {
        // NaN propagates (and is reported as a range that is not finite)
        let nan = x.iter().any(|v| v.is_nan());
        lo = if nan { f64::NAN } else { x.iter().copied().fold(f64::INFINITY, f64::min) };
        hi = if nan { f64::NAN } else { x.iter().copied().fold(f64::NEG_INFINITY, f64::max) };
    }
    if lo == hi {
        lo = r(lo - 1.0);
        hi = r(hi + 1.0);
    }
    if !(lo.is_finite() && hi.is_finite()) {
        return Err(err(OP, format!("range of [{lo}, {hi}] is not finite")));
    }
    if lo > hi {
        return Err(err(OP, "max must be larger than min".into()));
    }
    let mut c = vec![0f64; bins];
    for &v in &x {
        if !(v >= lo && v <= hi) {
            continue;
        }
        let pos = r(r(r(v - lo) * bins as f64) / r(hi - lo)) as usize;
        c[pos.min(bins - 1)] += 1.0;
    }
    store_values(dst, &c)
}
