//! `tnpu_format_*`: the storage formats' shapes and conversions (npu-kernels' format.rs),
//! exported to the C++ shim, which keeps each storage's format in its descriptor.
use std::ffi::c_void;

use npu_kernels::{DType, Format, View};

use crate::ops::launch;
use crate::status::{ffi_call, Error, Result};

const OP: &str = "npu_format_cast";

fn format_of(code: i64) -> Result<Format> {
    Format::from_code(code).ok_or_else(|| {
        Error::value(format!(
            "{OP}: format {code} is not supported by the NPU; supported: 0 (NCHW), 1 (NHWC), 2 (ND), 3 (NC1HWC0), \
             4 (FRACTAL_Z), 27 (NDHWC), 29 (FRACTAL_NZ), 30 (NCDHW), 32 (NDC1HWC0), 33 (FRACTAL_Z_3D), 47 (NCL)"
        ))
    })
}

fn dtype_of(code: i32) -> Result<DType> {
    DType::from_i32(code).ok_or_else(|| Error::type_error(format!("{OP}: this dtype is not supported on the NPU")))
}

/// # Safety
/// `sizes` points at `ndim` values.
unsafe fn slice<'a>(p: *const i64, n: i32) -> &'a [i64] {
    if n == 0 { &[] } else { std::slice::from_raw_parts(p, n as usize) }
}

/// The storage shape of a tensor of shape `sizes` in format `code` (at most `cap` dims).
#[no_mangle]
pub extern "C" fn tnpu_format_storage_shape(code: i64, dtype: i32, ndim: i32, sizes: *const i64, out: *mut i64, cap: i32, out_ndim: *mut i32) -> i32 {
    ffi_call(|| {
        let shape = npu_kernels::format_storage_shape(OP, format_of(code)?, unsafe { slice(sizes, ndim) }, dtype_of(dtype)?)
            .map_err(|e| Error::runtime(e.0))?;
        if shape.len() > cap as usize {
            return Err(Error::runtime(format!("{OP}: storage shape {shape:?} has too many dims")));
        }
        // SAFETY: the caller provides `cap` slots and one for the count.
        unsafe {
            std::ptr::copy_nonoverlapping(shape.as_ptr(), out, shape.len());
            *out_ndim = shape.len() as i32;
        }
        Ok(())
    })
}

/// Launches, on `device`'s current stream, the conversion between the tensor `data` (of `dtype`,
/// `sizes`, `strides`; any layout) and the storage at `storage` laid out in format `code`:
/// into the storage when `into_storage`, else out of it.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn tnpu_format_convert(
    into_storage: i32,
    code: i64,
    device: i32,
    storage: *mut c_void,
    data: *mut c_void,
    dtype: i32,
    ndim: i32,
    sizes: *const i64,
    strides: *const i64,
) -> i32 {
    ffi_call(|| {
        let format = format_of(code)?;
        let view = View::new(data as *mut u8, dtype_of(dtype)?, unsafe { slice(sizes, ndim) }.to_vec(), unsafe { slice(strides, ndim) }.to_vec());
        npu_kernels::format_storage_shape(OP, format, &view.sizes, view.dtype).map_err(|e| Error::runtime(e.0))?;
        let storage = storage as usize;
        launch(OP, device, move || {
            let result = if into_storage != 0 {
                npu_kernels::to_format(storage as *mut u8, &view, format)
            } else {
                npu_kernels::from_format(&view, storage as *const u8, format)
            };
            result.map_err(|e| e.0)
        })
    })
}
