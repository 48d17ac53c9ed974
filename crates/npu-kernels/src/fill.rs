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
