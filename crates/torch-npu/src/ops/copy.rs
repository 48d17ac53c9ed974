//! `_copy_from`: copies between npu tensors, and between the host and the device, with dtype
//! conversion and broadcasting. Host copies are asynchronous only from and to pinned memory
//! with non_blocking=True, as on CUDA; otherwise they return once the data has arrived.
use npu_kernels::View;
use npu_runtime as rt;
use npu_runtime::Event;

use super::shape::expand_to;
use super::{launch, Ctx, DeviceKind, Tensor};
use crate::status::{Error, Result};

fn copy_work(dst: View, src: View) -> impl FnOnce() -> std::result::Result<(), String> + Send {
    move || npu_kernels::copy(&dst, &src).map_err(|e| e.0)
}

pub fn copy_from(ctx: &Ctx) -> Result<()> {
    let op = ctx.op.as_str();
    let src = ctx.tensor(0)?;
    let dst = ctx.tensor(1)?;
    let non_blocking = ctx.bool(2);
    if src.is_conj != dst.is_conj || src.is_neg != dst.is_neg {
        return Err(Error::not_implemented(format!(
            "{op}: copies that resolve a conjugate or negative bit are not supported on the NPU yet"
        )));
    }
    let src_view = expand_to(&src.view, dst.sizes(), op)?;
    if dst.numel() > 0 {
        match (src.device, dst.device) {
            (DeviceKind::Npu, DeviceKind::Npu) => device_to_device(op, &src, &dst, src_view)?,
            (DeviceKind::Cpu, DeviceKind::Npu) => {
                host_copy(op, dst.index, dst.view.clone(), src_view, src.view.ptr, non_blocking)?
            }
            (DeviceKind::Npu, DeviceKind::Cpu) => {
                host_copy(op, src.index, dst.view.clone(), src_view, dst.view.ptr, non_blocking)?
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

fn device_to_device(op: &str, src: &Tensor, dst: &Tensor, src_view: View) -> Result<()> {
    if src.index == dst.index {
        return launch(op, dst.index, copy_work(dst.view.clone(), src_view));
    }
    // Across devices: the copy runs on the destination's stream after the source's pending
    // work, and the source's stream waits for the copy before reusing its memory.
    let src_stream = rt::current_stream(src.index)?;
    let dst_stream = rt::current_stream(dst.index)?;
    let ready = Event::new(false);
    ready.record(&src_stream)?;
    dst_stream.wait_event(&ready);
    launch(op, dst.index, copy_work(dst.view.clone(), src_view))?;
    let done = Event::new(false);
    done.record(&dst_stream)?;
    src_stream.wait_event(&done);
    Ok(())
}

/// `host_ptr` is the CPU side's memory: if it is pinned and the copy non-blocking, the copy
/// stays queued and the pinned block is kept until it ran; otherwise wait for it.
fn host_copy(
    op: &str,
    device: i32,
    dst: View,
    src: View,
    host_ptr: *mut u8,
    non_blocking: bool,
) -> Result<()> {
    let stream = rt::current_stream(device)?;
    launch(op, device, copy_work(dst, src))?;
    if non_blocking && rt::is_pinned(host_ptr) {
        rt::host_record_stream(host_ptr, stream);
        Ok(())
    } else {
        Ok(stream.synchronize()?)
    }
}
