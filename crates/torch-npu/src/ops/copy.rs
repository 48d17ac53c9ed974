//! `_copy_from`: copies between npu tensors, and between the host and the device, with dtype
//! conversion and broadcasting. Host copies are asynchronous only from and to pinned memory
//! with non_blocking=True, as on CUDA; otherwise they return once the data has arrived.
use npu_kernels::{DType, UnaryOp, View};
use npu_runtime as rt;
use npu_runtime::Event;

use super::shape::expand_to;
use super::{launch, launch_sized, Ctx, DeviceKind, Tensor};
use crate::status::{Error, Result};

/// What a copy must apply besides moving values: resolving a conjugate or negative bit that
/// only one side carries (stored = conj(stored) / -stored, symmetric in which side has it).
#[derive(Clone, Copy, Default)]
struct Resolve {
    conj: bool,
    neg: bool,
}

/// The real and imaginary parts of a complex view as real views (view_as_real's layout).
fn complex_parts(v: &View) -> Option<(View, View)> {
    let part = match v.dtype {
        DType::C64 => DType::F32,
        DType::C128 => DType::F64,
        _ => return None,
    };
    let strides: Vec<i64> = v.strides.iter().map(|s| s * 2).collect();
    let real = View { ptr: v.ptr, dtype: part, sizes: v.sizes.clone(), strides: strides.clone() };
    // SAFETY: the imaginary part is the second half of each complex element.
    let imag = View { ptr: unsafe { v.ptr.add(part.size()) }, dtype: part, sizes: v.sizes.clone(), strides };
    Some((real, imag))
}

fn negate(v: &View) -> std::result::Result<(), String> {
    npu_kernels::unary(UnaryOp::Neg, v, v, v.dtype).map_err(|e| e.0)
}

fn copy_work(dst: View, src: View, resolve: Resolve) -> impl FnOnce() -> std::result::Result<(), String> + Send {
    move || {
        npu_kernels::copy(&dst, &src).map_err(|e| e.0)?;
        if !(resolve.conj || resolve.neg) {
            return Ok(());
        }
        match complex_parts(&dst) {
            Some((real, imag)) => {
                if resolve.neg {
                    negate(&real)?;
                }
                if resolve.neg != resolve.conj {
                    negate(&imag)?;
                }
                Ok(())
            }
            // conj of a real value is itself.
            None if resolve.neg => negate(&dst),
            None => Ok(()),
        }
    }
}

pub fn copy_from(ctx: &Ctx) -> Result<()> {
    let op = ctx.op;
    let src = ctx.tensor(0)?;
    let dst = ctx.tensor(1)?;
    let non_blocking = ctx.bool(2);
    let resolve = Resolve { conj: src.is_conj != dst.is_conj, neg: src.is_neg != dst.is_neg };
    let src_view = expand_to(&src.view, dst.sizes(), op)?;
    if dst.numel() > 0 {
        match (src.device, dst.device) {
            (DeviceKind::Npu, DeviceKind::Npu) => device_to_device(op, &src, &dst, src_view, resolve)?,
            (DeviceKind::Cpu, DeviceKind::Npu) => {
                let work = copy_work(dst.view.clone(), src_view, resolve);
                host_copy(op, dst.index, dst.numel(), work, src.view.ptr, non_blocking)?
            }
            (DeviceKind::Npu, DeviceKind::Cpu) => {
                let work = copy_work(dst.view.clone(), src_view, resolve);
                host_copy(op, src.index, dst.numel(), work, dst.view.ptr, non_blocking)?
            }
            _ => {
                return Err(Error::runtime(format!(
                    "{op}: cannot copy from {} to {}",
                    src.describe_device(),
                    dst.describe_device()
                )))
            }
        }
    }
    ctx.return_arg(1);
    Ok(())
}

fn device_to_device(op: &str, src: &Tensor, dst: &Tensor, src_view: View, resolve: Resolve) -> Result<()> {
    if src.index == dst.index {
        return launch_sized(op, dst.index, dst.numel(), copy_work(dst.view.clone(), src_view, resolve));
    }
    // Across devices: the copy runs on the destination's stream after the source's pending
    // work, and the source's stream waits for the copy before reusing its memory.
    let src_stream = rt::current_stream(src.index)?;
    let dst_stream = rt::current_stream(dst.index)?;
    let ready = Event::new(false);
    ready.record(&src_stream)?;
    dst_stream.wait_event(&ready);
    launch(op, dst.index, copy_work(dst.view.clone(), src_view, resolve))?;
    let done = Event::new(false);
    done.record(&dst_stream)?;
    src_stream.wait_event(&done);
    Ok(())
}

/// `host_ptr` is the CPU side's memory: if it is pinned and the copy non-blocking, the copy
/// stays queued and the pinned block is kept until it ran; otherwise wait for it.
fn host_copy<F>(op: &str, device: i32, numel: usize, work: F, host_ptr: *mut u8, non_blocking: bool) -> Result<()>
where
    F: FnOnce() -> std::result::Result<(), String> + Send + 'static,
{
    let stream = rt::current_stream(device)?;
    launch_sized(op, device, numel, work)?;
    if non_blocking && rt::is_pinned(host_ptr) {
        rt::host_record_stream(host_ptr, stream);
        Ok(())
    } else {
        Ok(stream.synchronize()?)
    }
}
