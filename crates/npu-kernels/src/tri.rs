//! `triu` / `tril`: keep the elements on one side of a diagonal of the last two dims, zero the
//! rest. `dst` may be `src` itself (in place).

use crate::view::{err, par_ranges, Ptr, View};
use crate::KernelError;

/// `dst = triu(src, diagonal)` (`upper`) or `tril(src, diagonal)`.
pub fn triangle(dst: &View, src: &View, diagonal: i64, upper: bool) -> Result<(), KernelError> {
    let op = if upper { "triu" } else { "tril" };
    dst.validate(op)?;
    src.validate(op)?;
    let r = src.sizes.len();
    if r < 2 || dst.sizes != src.sizes || dst.dtype != src.dtype {
        return Err(err(op, format!("input tensor must have at least 2 dimensions and match the output, got {:?}", src.sizes)));
    }
    if dst.numel() == 0 {
        return Ok(());
    }
    dst.check_writable(op)?;
    let (m, n) = (src.sizes[r - 2], src.sizes[r - 1]);
    let batch: Vec<i64> = src.sizes[..r - 2].to_vec();
    let rows = batch.iter().product::<i64>() as usize * m as usize;
    let size = src.dtype.size();
    let (dp, sp) = (Ptr::new(dst.ptr), Ptr::new(src.ptr));
    par_ranges(rows, (1 << 14) / n.max(1) as usize + 1, |range| {
        for row in range {
            let (b, i) = (row / m as usize, (row % m as usize) as i64);
            // element offsets of the row's start in both views
            let (mut rem, mut od, mut os) = (b, 0i64, 0i64);
            for d in (0..r - 2).rev() {
                let k = (rem % batch[d] as usize) as i64;
                rem /= batch[d] as usize;
                od += k * dst.strides[d];
                os += k * src.strides[d];
            }
            od += i * dst.strides[r - 2];
            os += i * src.strides[r - 2];
            for j in 0..n {
                let keep = if upper { j - i >= diagonal } else { j - i <= diagonal };
                unsafe {
                    let d = dp.byte_at((od + j * dst.strides[r - 1]) as isize, size);
                    if keep {
                        std::ptr::copy(sp.byte_at((os + j * src.strides[r - 1]) as isize, size), d, size);
                    } else {
                        std::ptr::write_bytes(d, 0, size);
                    }
                }
            }
        }
    });
    Ok(())
}
