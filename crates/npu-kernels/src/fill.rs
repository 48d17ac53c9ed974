//! `fill_`: writes one scalar into every element of a strided view.

use crate::convert::{dispatch, Element};
use crate::scalar::Scalar;
use crate::view::{par_ranges, Layout, Ptr, View};
use crate::KernelError;

const FILL_GRAIN_BYTES: usize = 512 * 1024;

/// Fills `dst` with `value`, converted like PyTorch's `fill_` (including its overflow check:
/// `fill_(300)` on int8 is an error). Broadcast (stride-0) destinations are allowed, as in
/// PyTorch: every alias gets the same value.
pub fn fill(dst: &View, value: Scalar) -> Result<(), KernelError> {
    let n = dst.validate("fill_")?;
    value.check_fits(dst.dtype)?;
    if n == 0 {
        return Ok(());
    }
    dispatch!(dst.dtype, T => fill_typed::<T>(dst, value.to_element::<T>()));
    Ok(())
}

fn fill_typed<T: Element>(dst: &View, v: T) {
    // Broadcast dims are dropped so no address is written twice (and never by two threads).
    let layout = Layout::<1>::without_broadcast(&dst.sizes, [&dst.strides], 0);
    let [stride] = layout.inner_strides();
    let p = Ptr::new(dst.ptr);
    par_ranges(
        layout.numel(),
        FILL_GRAIN_BYTES / std::mem::size_of::<T>(),
        |range| {
            layout.for_each_row(range, |_, [off], len| unsafe {
                let d = p.at::<T>(off);
                if stride == 1 {
                    std::slice::from_raw_parts_mut(d, len).fill(v);
                } else {
                    for k in 0..len as isize {
                        *d.offset(k * stride) = v;
                    }
                }
            })
        },
    );
}

/// `dst[i] = start + i * step` over a 1-D `dst` (arange, and linspace with its step), computed
/// in f64 for float dtypes and i64 for integer ones, then converted.
pub fn arange(dst: &View, start: Scalar, step: Scalar) -> Result<(), KernelError> {
    let n = dst.validate("arange")?;
    if dst.sizes.len() != 1 {
        return Err(KernelError(format!("arange: expected a 1-D output, got {:?}", dst.sizes)));
    }
    if n == 0 {
        return Ok(());
    }
    dst.check_writable("arange")?;
    let stride = dst.strides[0] as isize;
    let as_f64 = |s: Scalar| match s {
        Scalar::Bool(b) => b as u8 as f64,
        Scalar::Int(i) => i as f64,
        Scalar::Float(f) | Scalar::Complex(f, _) => f,
    };
    let as_i64 = |s: Scalar| match s {
        Scalar::Bool(b) => b as i64,
        Scalar::Int(i) => i,
        Scalar::Float(f) | Scalar::Complex(f, _) => f as i64,
    };
    let ptr = crate::view::Ptr::new(dst.ptr);
    crate::view::par_ranges(n, 1 << 15, |range| {
        let vals: Vec<f64>;
        let ints: Vec<i64>;
        let (lo, len) = (range.start, range.len());
        unsafe {
            let p = ptr.byte_at(lo as isize * stride, dst.dtype.size());
            if dst.dtype.is_floating() {
                let (a, d) = (as_f64(start), as_f64(step));
                vals = (lo..lo + len).map(|i| a + d * i as f64).collect();
                crate::elementwise::storer::<f64>(dst.dtype, None)(&vals, p, stride);
            } else {
                let (a, d) = (as_i64(start), as_i64(step));
                ints = (lo..lo + len).map(|i| a.wrapping_add(d.wrapping_mul(i as i64))).collect();
                crate::elementwise::storer::<i64>(dst.dtype, None)(&ints, p, stride);
            }
        }
    });
    Ok(())
}

/// linspace (`base` None) and logspace (`base ** value`) over a 1-D `dst`, with PyTorch CPU's
/// formula: the first half steps up from `start`, the second half down from `end`, so both
/// ends are exact. Bounds are first converted to the output dtype (an integer output truncates
/// them); the step is computed in f32 for f32/f16/bf16 outputs and in f64 otherwise.
pub fn linspace(dst: &View, start: Scalar, end: Scalar, base: Option<f64>) -> Result<(), KernelError> {
    let op = if base.is_some() { "logspace" } else { "linspace" };
    let n = dst.validate(op)?;
    if dst.sizes.len() != 1 {
        return Err(KernelError(format!("{op}: expected a 1-D output, got {:?}", dst.sizes)));
    }
    dst.check_writable(op)?;
    if dst.dtype.is_complex() || dst.dtype == crate::DType::Bool {
        return Err(KernelError(format!("{op}: not implemented for '{}'", dst.dtype.name())));
    }
    start.check_fits(dst.dtype)?;
    end.check_fits(dst.dtype)?;
    if n == 0 {
        return Ok(());
    }
    let (a, b) = dispatch!(dst.dtype, T => (start.to_element::<T>().to_f64(), end.to_element::<T>().to_f64()));
    let single = matches!(dst.dtype, crate::DType::F32 | crate::DType::F16 | crate::DType::BF16);
    let half = n / 2;
    let value = move |i: usize| -> f64 {
        if n == 1 {
            return a;
        }
        if single {
            let (a, b) = (a as f32, b as f32);
            let step = (b - a) / (n - 1) as f32;
            (if i < half { a + step * i as f32 } else { b - step * (n - 1 - i) as f32 }) as f64
        } else {
            let step = (b - a) / (n - 1) as f64;
            if i < half { a + step * i as f64 } else { b - step * (n - 1 - i) as f64 }
        }
    };
    let stride = dst.strides[0] as isize;
    let ptr = Ptr::new(dst.ptr);
    par_ranges(n, 1 << 15, |range| {
        let vals: Vec<f64> = range.clone().map(|i| base.map_or(value(i), |b| b.powf(value(i)))).collect();
        unsafe {
            let p = ptr.byte_at(range.start as isize * stride, dst.dtype.size());
            crate::elementwise::storer::<f64>(dst.dtype, None)(&vals, p, stride);
        }
    });
    Ok(())
}
