//! The native op table: ATen op names and the Rust adapters that serve them. An adapter reads
//! the boxed arguments, checks on the host what needs no data (devices, dtypes, shapes), then
//! launches a kernel from npu-kernels on the device's current stream.
use std::ffi::{c_char, c_void};
use std::sync::OnceLock;

use npu_runtime as rt;

use crate::status::{ffi_call, Error, Result};

mod copy;
pub mod ctx;
mod fill;
mod random;
pub mod shape;

pub use ctx::{Ctx, DeviceKind, Tensor};

type OpFn = fn(&Ctx) -> Result<()>;

const OPS: &[(&str, OpFn)] = &[
    ("_copy_from", copy::copy_from),
    ("fill_.Scalar", fill::fill_scalar),
    ("fill_.Tensor", fill::fill_tensor),
    ("zero_", fill::zero),
    ("uniform_", random::uniform),
    ("normal_", random::normal),
    ("bernoulli_.float", random::bernoulli_float),
    ("bernoulli_.Tensor", random::bernoulli_tensor),
    ("random_", random::random),
    ("random_.from", random::random_from),
    ("random_.to", random::random_to),
    ("exponential_", random::exponential),
    ("geometric_", random::geometric),
    ("log_normal_", random::log_normal),
    ("cauchy_", random::cauchy),
    ("randperm.generator_out", random::randperm),
    ("normal.Tensor_float", random::normal_tensor_float),
    ("normal.float_Tensor", random::normal_float_tensor),
    ("normal.Tensor_Tensor", random::normal_tensor_tensor),
];

/// Launches `work` on the current stream of `device`, naming it `op` in asynchronous errors.
pub fn launch<F>(op: &str, device: i32, work: F) -> Result<()>
where
    F: FnOnce() -> std::result::Result<(), String> + Send + 'static,
{
    let stream = rt::current_stream(device)?;
    stream.launch(op, Box::new(work))?;
    Ok(())
}

/// The npu device all `tensors` are on. 0-dim CPU tensors are allowed (read as scalars).
pub fn common_device(op: &str, tensors: &[&Tensor]) -> Result<i32> {
    let mut device: Option<&Tensor> = None;
    for t in tensors {
        let ok = match (t.device, device) {
            (DeviceKind::Npu, None) => {
                device = Some(t);
                true
            }
            (DeviceKind::Npu, Some(d)) => d.index == t.index,
            (DeviceKind::Cpu, _) => t.sizes().is_empty(),
            (DeviceKind::Other, _) => false,
        };
        if !ok {
            let first = device.map_or_else(|| "npu".to_string(), |d| d.describe_device());
            return Err(Error::runtime(format!(
                "Expected all tensors to be on the same device, but found at least two devices, \
                 {first} and {}! (when checking arguments for {op})",
                t.describe_device()
            )));
        }
    }
    device
        .map(|d| d.index)
        .ok_or_else(|| Error::runtime(format!("{op}: expected at least one npu tensor")))
}

fn table() -> &'static [(std::ffi::CString, OpFn)] {
    static TABLE: OnceLock<Vec<(std::ffi::CString, OpFn)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        OPS.iter().map(|(n, f)| (std::ffi::CString::new(*n).unwrap(), *f)).collect()
    })
}

pub fn names() -> impl Iterator<Item = &'static str> {
    OPS.iter().map(|(n, _)| *n)
}

#[no_mangle]
pub extern "C" fn tnpu_op_count() -> usize {
    table().len()
}

#[no_mangle]
pub extern "C" fn tnpu_op_name(index: usize) -> *const c_char {
    table().get(index).map_or(std::ptr::null(), |(n, _)| n.as_ptr())
}

/// # Safety
/// `ctx` is the shim's call context for this op.
#[no_mangle]
pub unsafe extern "C" fn tnpu_op_run(index: usize, ctx: *mut c_void) -> i32 {
    let Some((_, f)) = table().get(index) else {
        return crate::status::set_error(Error::runtime("unknown npu op"));
    };
    let f = *f;
    ffi_call(|| {
        let ctx = Ctx::new(ctx);
        f(&ctx).map_err(|mut e| {
            if !e.msg.contains(&ctx.op) {
                e.msg = format!("{}: {}", ctx.op, e.msg);
            }
            e
        })
    })
}
