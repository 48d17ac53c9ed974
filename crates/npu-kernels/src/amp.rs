//! The two kernels behind `torch.amp.GradScaler`: unscaling gradients while looking for
//! infinities and NaNs (`_amp_foreach_non_finite_check_and_unscale_`), and the dynamic loss
//! scale update (`_amp_update_scale_`). Both follow PyTorch's CPU and CUDA kernels: the check
//! looks at each gradient as stored, the product is taken in f32 (f64 for f64 gradients) and
//! rounded once, and an `inv_scale` of exactly 1 leaves the values untouched.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::elementwise::{drive, loader, map1, storer, Input};
use crate::math::Float;
use crate::view::{err, View};
use crate::{DType, KernelError};

const UNSCALE: &str = "_amp_foreach_non_finite_check_and_unscale_";

/// What `unscale_and_check` needs of a gradient, checked without reading it (callers check on
/// the host before launching): a floating dtype, a valid view, no element written twice.
pub fn check_unscale_target(grad: &View) -> Result<(), KernelError> {
    if !grad.dtype.is_floating() || grad.dtype.is_complex() {
        return Err(err(UNSCALE, format!("scaled_grads must be floating point tensors, got {}", grad.dtype.name())));
    }
    grad.validate(UNSCALE)?;
    grad.check_writable(UNSCALE)
}

/// Multiplies `grad` (in place, any layout) by `inv_scale`; returns whether any of its
/// elements was infinite or NaN before the multiplication.
pub fn unscale_and_check(grad: &View, inv_scale: f32) -> Result<bool, KernelError> {
    let name = UNSCALE;
    check_unscale_target(grad)?;
    let found = AtomicBool::new(false);
    fn go<F: Float>(name: &str, grad: &View, inv_scale: F, found: &AtomicBool) -> Result<(), KernelError> {
        let load = loader::<F>(grad.dtype, None);
        let unit = inv_scale == F::c(1.0);
        drive::<F, F, 1>(name, grad, [Input::View(grad, load)], true, storer::<F>(grad.dtype, None), true, &|[a], out| {
            let mut bad = false;
            map1!(a, out, |x: F| {
                bad |= !x.is_finite();
                if unit { x } else { x * inv_scale }
            });
            if bad {
                found.store(true, Ordering::Relaxed);
            }
            Ok(())
        })
    }
    match grad.dtype {
        DType::F64 => go::<f64>(name, grad, inv_scale as f64, &found)?,
        _ => go::<f32>(name, grad, inv_scale, &found)?,
    }
    Ok(found.load(Ordering::Relaxed))
}

/// The loss scale after one step: a step that found infinities backs the scale off and
/// restarts the count of good steps; `growth_interval` good steps in a row grow it (unless the
/// grown scale would be infinite). Returns the new (scale, growth_tracker).
pub fn update_scale(scale: f32, growth_tracker: i32, found_inf: f32, growth_factor: f64, backoff_factor: f64, growth_interval: i64) -> (f32, i32) {
    if found_inf != 0.0 {
        return ((scale as f64 * backoff_factor) as f32, 0);
    }
    let good = growth_tracker.wrapping_add(1);
    if good as i64 == growth_interval {
        let grown = (scale as f64 * growth_factor) as f32;
        (if grown.is_finite() { grown } else { scale }, 0)
    } else {
        (scale, good)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_rule() {
        assert_eq!(update_scale(8.0, 5, 1.0, 2.0, 0.5, 3), (4.0, 0));
        assert_eq!(update_scale(8.0, 0, 0.0, 2.0, 0.5, 3), (8.0, 1));
        assert_eq!(update_scale(8.0, 2, 0.0, 2.0, 0.5, 3), (16.0, 0));
        assert_eq!(update_scale(f32::MAX, 2, 0.0, 2.0, 0.5, 3), (f32::MAX, 0));
    }

    #[test]
    fn unit_scale_keeps_values() {
        let mut x = [1.5f32, f32::NAN, -2.0];
        let v = View::contiguous(x.as_mut_ptr() as *mut u8, DType::F32, &[3]);
        assert!(unscale_and_check(&v, 1.0).unwrap());
        assert_eq!((x[0], x[2]), (1.5, -2.0));
        assert!(x[1].is_nan());
    }

    #[test]
    fn rejects_integer_grads() {
        let mut x = [1i64];
        let v = View::contiguous(x.as_mut_ptr() as *mut u8, DType::I64, &[1]);
        assert!(unscale_and_check(&v, 0.5).unwrap_err().0.contains("floating point"));
    }
}
