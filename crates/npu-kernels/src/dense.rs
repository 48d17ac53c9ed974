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

/// A kernel operand in dtype `dtype`, contiguous: the caller's memory when it already is,
/// else a staged copy.
pub(crate) enum Operand<'a> {
    Borrowed(&'a View),
    Staged(Dense),
}

impl Operand<'_> {
    pub(crate) fn of(src: &View, dtype: DType) -> Result<Operand<'_>, KernelError> {
        Ok(if src.dtype == dtype && src.is_contiguous() {
            Operand::Borrowed(src)
        } else {
            Operand::Staged(Dense::of(src, dtype)?)
        })
    }

    /// A contiguous output: written in place when `dst` allows it, else staged (and
    /// [`Operand::finish`] writes it back).
    pub(crate) fn output(dst: &View, dtype: DType) -> Operand<'_> {
        if dst.dtype == dtype && dst.is_contiguous() {
            Operand::Borrowed(dst)
        } else {
            Operand::Staged(Dense::zeroed(dtype, &dst.sizes))
        }
    }

    pub(crate) fn ptr<T>(&self) -> *mut T {
        match self {
            Operand::Borrowed(v) => v.ptr as *mut T,
            Operand::Staged(d) => d.ptr(),
        }
    }

    /// Writes a staged output back into `dst`.
    pub(crate) fn finish(&self, dst: &View) -> Result<(), KernelError> {
        match self {
            Operand::Borrowed(_) => Ok(()),
            Operand::Staged(d) => d.store(dst),
        }
    }
}

/// A typed raw pointer that closures running on rayon threads may carry (the kernels that use
/// it split their output into disjoint parts).
/// A strided matrix: element (i, j) is at `ptr + i * rs + j * cs` (the operands of both GEMMs).
#[derive(Clone, Copy)]
pub(crate) struct Mat<T> {
    pub ptr: *mut T,
    pub rs: isize,
    pub cs: isize,
}
// Shared between the threads of one product, each writing its own part of the output.
unsafe impl<T> Send for Mat<T> {}
unsafe impl<T> Sync for Mat<T> {}

impl<T> Mat<T> {
    /// The row-major matrix at `ptr` with rows `ld` apart, transposed when `t`.
    pub(crate) fn row_major(ptr: *const T, ld: usize, t: bool) -> Mat<T> {
        let (rs, cs) = if t { (1, ld as isize) } else { (ld as isize, 1) };
        Mat { ptr: ptr as *mut T, rs, cs }
    }
    pub(crate) unsafe fn offset(self, rows: usize, cols: usize) -> Mat<T> {
        Mat { ptr: self.ptr.offset(rows as isize * self.rs + cols as isize * self.cs), ..self }
    }
}

#[derive(Clone, Copy)]
pub(crate) struct P<T>(pub(crate) *mut T);
unsafe impl<T> Send for P<T> {}
unsafe impl<T> Sync for P<T> {}

impl<T> P<T> {
    // Methods, so closures capture the whole Send + Sync wrapper, not its raw field.
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
    pub(crate) fn at(self, i: usize) -> *mut T {
        unsafe { self.0.add(i) }
    }
    /// # Safety
    /// `start..start + len` is inside the buffer and no other thread touches it meanwhile.
    pub(crate) unsafe fn slice<'a>(self, start: usize, len: usize) -> &'a mut [T] {
        std::slice::from_raw_parts_mut(self.0.add(start), len)
    }
}

/// The dtype float kernels compute in: f64 when any view is f64, else f32 (f16/bf16 included).
pub(crate) fn float_compute(views: &[&View]) -> DType {
    if views.iter().any(|v| v.dtype == DType::F64) {
        DType::F64
    } else {
        DType::F32
    }
}

/// Validates every view and requires floating dtypes (`what` names the op in the error).
pub(crate) fn check_float(op: &str, views: &[&View]) -> Result<(), KernelError> {
    for v in views {
        v.validate(op)?;
        if !v.dtype.is_floating() {
            return Err(crate::view::err(op, format!("\"{op}\" not implemented for '{}'", v.dtype.name())));
        }
    }
    Ok(())
}

/// The elements of `src` in row-major order, converted to `T` (for kernels that work on the
/// whole tensor at once: sorting, counting, searching).
pub(crate) fn host_values<T: crate::convert::Element>(src: &View) -> Result<Vec<T>, KernelError> {
    let n = src.validate("host_values")?;
    let mut out = vec![T::from_i64(0); n];
    if n > 0 {
        copy(&View::contiguous(out.as_mut_ptr() as *mut u8, T::DTYPE, &src.sizes), src)?;
    }
    Ok(out)
}

/// Writes `vals` (row-major, `dst`'s element count) into `dst`, converting to its dtype.
pub(crate) fn store_values<T: crate::convert::Element>(dst: &View, vals: &[T]) -> Result<(), KernelError> {
    let n = dst.validate("store_values")?;
    if n != vals.len() {
        return Err(crate::view::err("store_values", format!("{} values for a view of {:?}", vals.len(), dst.sizes)));
    }
    if n > 0 {
        copy(dst, &View::contiguous(vals.as_ptr() as *mut u8, T::DTYPE, &dst.sizes))?;
    }
    Ok(())
}
