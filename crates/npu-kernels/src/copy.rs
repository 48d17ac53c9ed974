//! `copy_`: strided copy between views of equal sizes, converting dtypes.

use crate::convert::{dispatch, dispatch_bits, Element};
use crate::dtype::DType;
use crate::simd;
use crate::view::{err, par_ranges, Layout, Ptr, View};
use crate::KernelError;
use half::{bf16, f16};

/// Conversions are compute-bound: split above ~64K elements.
const CONVERT_GRAIN: usize = 32 * 1024;
/// Plain copies are bandwidth-bound: split above ~1 MiB.
const MEMCPY_GRAIN_BYTES: usize = 512 * 1024;

/// Copies `src` into `dst` (same sizes; `src` may broadcast with stride 0), converting each
/// element with PyTorch's rules. `dst` and `src` must not partially overlap; copying a view
/// onto itself is a no-op.
pub fn copy(dst: &View, src: &View) -> Result<(), KernelError> {
    let n = dst.validate("copy_")?;
    src.validate("copy_")?;
    if dst.sizes != src.sizes {
        return Err(err(
            "copy_",
            format!(
                "destination size {:?} does not match source size {:?}",
                dst.sizes, src.sizes
            ),
        ));
    }
    if n == 0 {
        return Ok(());
    }
    dst.check_writable("copy_")?;
    if dst.dtype == src.dtype && dst.ptr == src.ptr && dst.strides == src.strides {
        return Ok(());
    }
    let layout = Layout::new(&dst.sizes, [&dst.strides, &src.strides]);
    let (d, s) = (Ptr::new(dst.ptr), Ptr::new(src.ptr));
    if dst.dtype == src.dtype {
        // Same dtype: move bits (keeps NaN payloads and -0.0), dispatched on size alone.
        dispatch_bits!(dst.dtype.size(), T => copy_bits::<T>(&layout, d, s));
    } else {
        dispatch!(dst.dtype, D => dispatch!(src.dtype, S => copy_convert::<D, S>(&layout, d, s)));
    }
    Ok(())
}

fn copy_bits<T: Copy>(layout: &Layout<2>, dst: Ptr, src: Ptr) {
    if copy_transposed::<T>(layout, dst, src) {
        return;
    }
    let [ds, ss] = layout.inner_strides();
    let grain = MEMCPY_GRAIN_BYTES / std::mem::size_of::<T>();
    par_ranges(layout.numel(), grain, |range| {
        layout.for_each_row(range, |_, [od, os], len| unsafe {
            let (d, s) = (dst.at::<T>(od), src.at::<T>(os));
            if ds == 1 && ss == 1 {
                std::ptr::copy(s, d, len);
            } else {
                for k in 0..len as isize {
                    *d.offset(k * ds) = *s.offset(k * ss);
                }
            }
        })
    });
}

/// Side of the square tiles of [`copy_transposed`]: 32 rows of one operand's cache lines.
const TILE: usize = 32;

/// A copy whose two inner dims are transposed between the operands (`x.t().contiguous()`, a
/// layout change between NCHW and NHWC): one operand runs along the last dim, the other along
/// the one before. Row by row, one side would touch a new cache line per element; square tiles
/// read and write whole lines on both sides. Returns false (nothing copied) for other layouts.
fn copy_transposed<T: Copy>(layout: &Layout<2>, dst: Ptr, src: Ptr) -> bool {
    let (shape, strides) = layout.dims();
    let nd = shape.len();
    if nd < 2 || shape[nd - 1] < TILE || shape[nd - 2] < TILE {
        return false;
    }
    let ([ds, ss], [ds2, ss2]) = (strides[nd - 1], strides[nd - 2]);
    if !((ds == 1 && ss2 == 1) || (ss == 1 && ds2 == 1)) {
        return false;
    }
    let (rows, cols) = (shape[nd - 2], shape[nd - 1]);
    let (tr, tc) = (rows.div_ceil(TILE), cols.div_ceil(TILE));
    let outer = &shape[..nd - 2];
    let tiles = outer.iter().product::<usize>() * tr * tc;
    let grain = (MEMCPY_GRAIN_BYTES / std::mem::size_of::<T>() / (TILE * TILE)).max(1);
    par_ranges(tiles, grain, |range| {
        for t in range {
            let (mut o, ti, tj) = (t / (tr * tc), t / tc % tr, t % tc);
            // the outer dims' offsets of plane `o`
            let (mut od, mut os) = (0isize, 0isize);
            for d in (0..nd - 2).rev() {
                let i = (o % outer[d]) as isize;
                o /= outer[d];
                od += i * strides[d][0];
                os += i * strides[d][1];
            }
            for i in ti * TILE..((ti + 1) * TILE).min(rows) {
                let (rd, rs) = (od + i as isize * ds2, os + i as isize * ss2);
                for j in tj * TILE..((tj + 1) * TILE).min(cols) {
                    let j = j as isize;
                    unsafe { *dst.at::<T>(rd + j * ds) = *src.at::<T>(rs + j * ss) };
                }
            }
        }
    });
    true
}

fn copy_convert<D: Element, S: Element>(layout: &Layout<2>, dst: Ptr, src: Ptr) {
    let [ds, ss] = layout.inner_strides();
    par_ranges(layout.numel(), CONVERT_GRAIN, |range| {
        layout.for_each_row(range, |_, [od, os], len| unsafe {
            let (d, s) = (dst.at::<D>(od), src.at::<S>(os));
            // Raw pointers, not slices: an in-place conversion between same-size dtypes
            // (dst and src at one address) is legal in PyTorch.
            if ds == 1 && ss == 1 {
                // f32 <-> f16/bf16 is every autocast's copy; the scalar loops do not vectorize.
                if D::DTYPE == DType::F16 && S::DTYPE == DType::F32 {
                    return simd::f32_to_f16(s as *const f32, d as *mut f16, len);
                }
                if D::DTYPE == DType::F32 && S::DTYPE == DType::F16 {
                    return simd::f16_to_f32(s as *const f16, d as *mut f32, len);
                }
                if D::DTYPE == DType::BF16 && S::DTYPE == DType::F32 {
                    return simd::f32_to_bf16(s as *const f32, d as *mut bf16, len);
                }
                if D::DTYPE == DType::F32 && S::DTYPE == DType::BF16 {
                    return simd::bf16_to_f32(s as *const bf16, d as *mut f32, len);
                }
                for k in 0..len {
                    *d.add(k) = (*s.add(k)).cast::<D>();
                }
            } else {
                for k in 0..len as isize {
                    *d.offset(k * ds) = (*s.offset(k * ss)).cast::<D>();
                }
            }
        })
    });
}
