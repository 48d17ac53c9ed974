//! Dense staging buffers: a contiguous copy of a view in the dtype a kernel computes in.
//! Kernels that need packed operands (matmul in f32 for f16/bf16 data, convolution) stage
//! through these and write the result back with one rounding.

use crate::copy::copy;
use crate::dtype::DType;
use crate::view::View;
use crate::KernelError;

/// A zero-initialised, 8-byte aligned buffer seen as a contiguous view.
pub(crate) struct Dense {
    _buf: Vec<u64>,
    pub(crate) view: View,
}

// The buffer is owned; the view only points into it.
unsafe impl Send for Dense {}
unsafe impl Sync for Dense {}

impl Dense {
    pub(crate) fn zeroed(dtype: DType, sizes: &[i64]) -> Dense {
        let n: usize = sizes.iter().map(|&s| s.max(0) as usize).product();
        let mut buf = vec![0u64; (n * dtype.size()).div_ceil(8).max(1)];
        let view = View::contiguous(buf.as_mut_ptr() as *mut u8, dtype, sizes);
        Dense { _buf: buf, view }
    }

    /// A contiguous copy of `src` converted to `dtype`.
    pub(crate) fn of(src: &View, dtype: DType) -> Result<Dense, KernelError> {
        let d = Dense::zeroed(dtype, &src.sizes);
        copy(&d.view, src)?;
        Ok(d)
    }

    pub(crate) fn ptr<T>(&self) -> *mut T {
        self.view.ptr as *mut T
    }

    /// Writes the buffer into `dst` (same sizes), converting to its dtype.
    pub(crate) fn store(&self, dst: &View) -> Result<(), KernelError> {
        copy(dst, &self.view)
    }
}
