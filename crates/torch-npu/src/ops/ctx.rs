//! Safe access to an op's boxed arguments through the shim's `tnpu_cx_*` accessors.
use std::ffi::c_void;

use npu_kernels::{DType, Scalar, View};

use crate::status::{Error, Result};

#[repr(C)]
#[derive(Clone, Copy)]
struct RawTensor {
    data: *mut c_void,
    sizes: *const i64,
    strides: *const i64,
    storage: *mut c_void,
    numel: i64,
    ndim: i32,
    dtype: i32,
    device_type: i32,
    device_index: i32,
    is_conj: u8,
    is_neg: u8,
    requires_grad: u8,
    is_wrapped_number: u8,
}

#[repr(C)]
#[derive(Default)]
struct RawScalar {
    tag: i32,
    i: i64,
    f: f64,
    imag: f64,
}

extern "C" {
    fn tnpu_cx_nargs(ctx: *mut c_void) -> i32;
    fn tnpu_cx_arg_is_none(ctx: *mut c_void, i: i32) -> i32;
    fn tnpu_cx_arg_tensor(ctx: *mut c_void, i: i32, out: *mut RawTensor) -> i32;
    fn tnpu_cx_arg_int(ctx: *mut c_void, i: i32) -> i64;
    fn tnpu_cx_arg_double(ctx: *mut c_void, i: i32) -> f64;
    fn tnpu_cx_arg_bool(ctx: *mut c_void, i: i32) -> i32;
    fn tnpu_cx_arg_scalar(ctx: *mut c_void, i: i32, out: *mut RawScalar) -> i32;
    fn tnpu_cx_arg_int_list(ctx: *mut c_void, i: i32, data: *mut *const i64, len: *mut usize) -> i32;
    fn tnpu_cx_arg_tensor_list_len(ctx: *mut c_void, i: i32) -> i32;
    fn tnpu_cx_arg_tensor_list_item(ctx: *mut c_void, i: i32, item: i32, out: *mut RawTensor) -> i32;
    fn tnpu_cx_arg_generator(
        ctx: *mut c_void,
        i: i32,
        device: i32,
        increment: u64,
        seed: *mut u64,
        offset: *mut u64,
    ) -> i32;
    fn tnpu_cx_new_output(
        ctx: *mut c_void,
        ndim: i32,
        sizes: *const i64,
        strides: *const i64,
        dtype: i32,
        device: i32,
        out: *mut RawTensor,
    ) -> i32;
    fn tnpu_cx_return_arg(ctx: *mut c_void, i: i32);
    fn tnpu_cx_return_undefined(ctx: *mut c_void);
    fn tnpu_cx_return_int(ctx: *mut c_void, v: i64);
    fn tnpu_cx_return_bool(ctx: *mut c_void, v: i32);
    fn tnpu_cx_arg_opt_tensor_list_len(ctx: *mut c_void, i: i32) -> i32;
    fn tnpu_cx_arg_opt_tensor_list_item(ctx: *mut c_void, i: i32, item: i32, out: *mut RawTensor) -> i32;
    fn tnpu_cx_arg_string(ctx: *mut c_void, i: i32, out: *mut u8, cap: usize) -> i32;
    fn tnpu_cx_arg_scalar_list(ctx: *mut c_void, i: i32, out: *mut RawScalar, cap: usize) -> i32;
    fn tnpu_cx_pack_results(ctx: *mut c_void);
    fn tnpu_cx_arg_bool_list(ctx: *mut c_void, i: i32, out: *mut u8, cap: usize) -> i32;
    fn tnpu_cx_resize_arg(
        ctx: *mut c_void,
        i: i32,
        ndim: i32,
        sizes: *const i64,
        out: *mut RawTensor,
    ) -> i32;
    fn tnpu_cx_default_dtype() -> i32;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    Cpu,
    Npu,
    Other,
}

/// A tensor argument: its memory as a kernel view, plus what the adapter must check.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub view: View,
    pub storage: usize,
    pub device: DeviceKind,
    pub index: i32,
    pub is_conj: bool,
    pub is_neg: bool,
    /// A Python number PyTorch wrapped into a 0-dim CPU tensor (promotes like a scalar).
    pub is_wrapped_number: bool,
}

impl Tensor {
    pub fn dtype(&self) -> DType {
        self.view.dtype
    }
    pub fn sizes(&self) -> &[i64] {
        &self.view.sizes
    }
    pub fn numel(&self) -> usize {
        self.view.numel()
    }
    pub fn describe_device(&self) -> String {
        match self.device {
            DeviceKind::Npu => format!("npu:{}", self.index),
            DeviceKind::Cpu => "cpu".into(),
            DeviceKind::Other => "another device".into(),
        }
    }
}

fn tensor_from(raw: &RawTensor, op: &str) -> Result<Tensor> {
    let dtype = DType::from_i32(raw.dtype)
        .ok_or_else(|| Error::type_error(format!("{op}: this dtype is not supported on the NPU")))?;
    let n = raw.ndim as usize;
    // SAFETY: the shim points sizes/strides at the TensorImpl's arrays of length ndim, alive
    // for the whole call.
    let (sizes, strides) = unsafe {
        (
            std::slice::from_raw_parts(raw.sizes, n).to_vec(),
            std::slice::from_raw_parts(raw.strides, n).to_vec(),
        )
    };
    Ok(Tensor {
        view: View { ptr: raw.data as *mut u8, dtype, sizes, strides },
        storage: raw.storage as usize,
        device: match raw.device_type {
            0 => DeviceKind::Cpu,
            1 => DeviceKind::Npu,
            _ => DeviceKind::Other,
        },
        index: raw.device_index,
        is_conj: raw.is_conj != 0,
        is_neg: raw.is_neg != 0,
        is_wrapped_number: raw.is_wrapped_number != 0,
    })
}

fn scalar_of(raw: &RawScalar) -> Scalar {
    match raw.tag {
        0 => Scalar::Bool(raw.i != 0),
        1 => Scalar::Int(raw.i),
        3 => Scalar::Complex(raw.f, raw.imag),
        _ => Scalar::Float(raw.f),
    }
}

fn raw_tensor() -> RawTensor {
    RawTensor {
        data: std::ptr::null_mut(),
        sizes: std::ptr::null(),
        strides: std::ptr::null(),
        storage: std::ptr::null_mut(),
        numel: 0,
        ndim: 0,
        dtype: 0,
        device_type: 0,
        device_index: 0,
        is_conj: 0,
        is_neg: 0,
        requires_grad: 0,
        is_wrapped_number: 0,
    }
}

/// One op call. Accessor failures are recorded by the shim, which raises them itself; the
/// adapter only has to stop, so they come back as an `Error` whose message it never shows.
pub struct Ctx {
    raw: *mut c_void,
    /// The schema name ("aten::add"), as error messages give it.
    pub op: &'static str,
}

fn accessor_failed() -> Error {
    Error::runtime("argument access failed")
}

impl Ctx {
    /// # Safety
    /// `raw` is the shim's call context, valid for the duration of the call; `op` is the
    /// schema name of its operator.
    pub unsafe fn new(raw: *mut c_void, op: &'static str) -> Ctx {
        Ctx { raw, op }
    }

    pub fn nargs(&self) -> usize {
        unsafe { tnpu_cx_nargs(self.raw) as usize }
    }

    pub fn is_none(&self, i: usize) -> bool {
        unsafe { tnpu_cx_arg_is_none(self.raw, i as i32) != 0 }
    }

    pub fn opt_tensor(&self, i: usize) -> Result<Option<Tensor>> {
        let mut raw = raw_tensor();
        if unsafe { tnpu_cx_arg_tensor(self.raw, i as i32, &mut raw) } == 0 {
            return Ok(None);
        }
        tensor_from(&raw, &self.op).map(Some)
    }

    pub fn tensor(&self, i: usize) -> Result<Tensor> {
        self.opt_tensor(i)?
            .ok_or_else(|| Error::value(format!("{}: argument {i} must be a tensor", self.op)))
    }

    /// A Tensor[] argument (undefined entries are an error).
    pub fn tensor_list(&self, i: usize) -> Result<Vec<Tensor>> {
        let n = unsafe { tnpu_cx_arg_tensor_list_len(self.raw, i as i32) };
        if n < 0 {
            return Err(Error::type_error(format!("{}: argument {i} must be a list of tensors", self.op)));
        }
        (0..n)
            .map(|k| {
                let mut raw = raw_tensor();
                if unsafe { tnpu_cx_arg_tensor_list_item(self.raw, i as i32, k, &mut raw) } == 0 {
                    return Err(Error::value(format!("{}: tensor {k} of the list is undefined", self.op)));
                }
                tensor_from(&raw, &self.op)
            })
            .collect()
    }

    /// A `Tensor?[]` argument.
    pub fn opt_tensor_list(&self, i: usize) -> Result<Vec<Option<Tensor>>> {
        let n = unsafe { tnpu_cx_arg_opt_tensor_list_len(self.raw, i as i32) };
        if n < 0 {
            return Err(Error::type_error(format!("{}: argument {i} must be a list of optional tensors", self.op)));
        }
        (0..n)
            .map(|k| {
                let mut raw = raw_tensor();
                match unsafe { tnpu_cx_arg_opt_tensor_list_item(self.raw, i as i32, k, &mut raw) } {
                    0 => Ok(None),
                    1 => tensor_from(&raw, &self.op).map(Some),
                    _ => Err(accessor_failed()),
                }
            })
            .collect()
    }

    pub fn int(&self, i: usize) -> i64 {
        unsafe { tnpu_cx_arg_int(self.raw, i as i32) }
    }

    pub fn opt_int(&self, i: usize) -> Option<i64> {
        (!self.is_none(i)).then(|| self.int(i))
    }

    pub fn double(&self, i: usize) -> f64 {
        unsafe { tnpu_cx_arg_double(self.raw, i as i32) }
    }

    /// A `float?` argument.
    pub fn opt_double(&self, i: usize) -> Option<f64> {
        (!self.is_none(i)).then(|| self.double(i))
    }

    pub fn bool(&self, i: usize) -> bool {
        unsafe { tnpu_cx_arg_bool(self.raw, i as i32) != 0 }
    }

    pub fn scalar(&self, i: usize) -> Result<Scalar> {
        let mut raw = RawScalar::default();
        if unsafe { tnpu_cx_arg_scalar(self.raw, i as i32, &mut raw) } != 0 {
            return Err(accessor_failed());
        }
        Ok(scalar_of(&raw))
    }

    /// A Scalar[] argument.
    pub fn scalar_list(&self, i: usize) -> Result<Vec<Scalar>> {
        let n = unsafe { tnpu_cx_arg_scalar_list(self.raw, i as i32, std::ptr::null_mut(), 0) };
        if n < 0 {
            return Err(Error::type_error(format!("{}: argument {i} must be a list of scalars", self.op)));
        }
        let mut raw: Vec<RawScalar> = (0..n).map(|_| RawScalar::default()).collect();
        unsafe { tnpu_cx_arg_scalar_list(self.raw, i as i32, raw.as_mut_ptr(), raw.len()) };
        Ok(raw.iter().map(scalar_of).collect())
    }

    /// Makes the results appended so far one Tensor[] result.
    pub fn pack_results(&self) {
        unsafe { tnpu_cx_pack_results(self.raw) }
    }

    pub fn int_list(&self, i: usize) -> Result<Vec<i64>> {
        let mut data = std::ptr::null();
        let mut len = 0usize;
        if unsafe { tnpu_cx_arg_int_list(self.raw, i as i32, &mut data, &mut len) } != 0 {
            return Err(accessor_failed());
        }
        Ok(if len == 0 { vec![] } else { unsafe { std::slice::from_raw_parts(data, len).to_vec() } })
    }

    /// A str argument.
    pub fn string(&self, i: usize) -> Result<String> {
        let mut buf = [0u8; 64];
        let n = unsafe { tnpu_cx_arg_string(self.raw, i as i32, buf.as_mut_ptr(), buf.len()) };
        if n < 0 || n as usize > buf.len() {
            return Err(Error::type_error(format!("{}: argument {i} must be a short string", self.op)));
        }
        Ok(String::from_utf8_lossy(&buf[..n as usize]).into_owned())
    }

    /// A float argument given as a Scalar (int, float or bool), as f64.
    pub fn scalar_f64(&self, i: usize) -> Result<f64> {
        Ok(match self.scalar(i)? {
            Scalar::Bool(b) => b as u8 as f64,
            Scalar::Int(v) => v as f64,
            Scalar::Float(v) => v,
            Scalar::Complex(re, _) => re,
        })
    }

    /// A bool[] argument.
    pub fn bool_list(&self, i: usize) -> Result<Vec<bool>> {
        let mut buf = [0u8; 16];
        let n = unsafe { tnpu_cx_arg_bool_list(self.raw, i as i32, buf.as_mut_ptr(), buf.len()) };
        if n < 0 || n as usize > buf.len() {
            return Err(Error::type_error(format!("{}: argument {i} must be a short list of bools", self.op)));
        }
        Ok(buf[..n as usize].iter().map(|&b| b != 0).collect())
    }

    /// (seed, offset) of the generator argument `i`, reserving `increment` Philox counters.
    pub fn generator(&self, i: usize, device: i32, increment: u64) -> Result<(u64, u64)> {
        let (mut seed, mut offset) = (0u64, 0u64);
        let st = unsafe {
            tnpu_cx_arg_generator(self.raw, i as i32, device, increment, &mut seed, &mut offset)
        };
        if st != 0 {
            return Err(accessor_failed());
        }
        Ok((seed, offset))
    }

    /// (seed, offset) of the device's default generator, for ops without a generator argument.
    pub fn default_generator(&self, device: i32, increment: u64) -> Result<(u64, u64)> {
        let (mut seed, mut offset) = (0u64, 0u64);
        let st = unsafe { tnpu_cx_arg_generator(self.raw, -1, device, increment, &mut seed, &mut offset) };
        if st != 0 {
            return Err(accessor_failed());
        }
        Ok((seed, offset))
    }

    /// A new npu tensor (contiguous unless `strides` is given), appended to the results.
    pub fn new_output(
        &self,
        sizes: &[i64],
        strides: Option<&[i64]>,
        dtype: DType,
        device: i32,
    ) -> Result<Tensor> {
        let mut raw = raw_tensor();
        let st = unsafe {
            tnpu_cx_new_output(
                self.raw,
                sizes.len() as i32,
                sizes.as_ptr(),
                strides.map_or(std::ptr::null(), |s| s.as_ptr()),
                dtype as i32,
                device,
                &mut raw,
            )
        };
        if st != 0 {
            return Err(accessor_failed());
        }
        tensor_from(&raw, &self.op)
    }

    /// Resizes the out= tensor argument `i` to `sizes` (if needed) and returns it anew.
    pub fn resize_arg(&self, i: usize, sizes: &[i64]) -> Result<Tensor> {
        let mut raw = raw_tensor();
        let st = unsafe {
            tnpu_cx_resize_arg(self.raw, i as i32, sizes.len() as i32, sizes.as_ptr(), &mut raw)
        };
        if st != 0 {
            return Err(accessor_failed());
        }
        tensor_from(&raw, &self.op)
    }

    /// torch.get_default_dtype().
    pub fn default_float(&self) -> DType {
        DType::from_i32(unsafe { tnpu_cx_default_dtype() }).unwrap_or(DType::F32)
    }

    /// Appends an undefined tensor to the results (a gradient that was not asked for).
    pub fn return_undefined(&self) {
        unsafe { tnpu_cx_return_undefined(self.raw) }
    }

    /// Appends an int (or SymInt) result.
    pub fn return_int(&self, v: i64) {
        unsafe { tnpu_cx_return_int(self.raw, v) }
    }

    /// Appends a bool result.
    pub fn return_bool(&self, v: bool) {
        unsafe { tnpu_cx_return_bool(self.raw, v as i32) }
    }

    /// Returns argument `i` itself (in-place and out= ops).
    pub fn return_arg(&self, i: usize) {
        unsafe { tnpu_cx_return_arg(self.raw, i as i32) }
    }
}
