//! `_amp_foreach_non_finite_check_and_unscale_` and `_amp_update_scale_`: what
//! `torch.amp.GradScaler("npu")` calls each step. Both run on the stream and read the scale,
//! found_inf and growth tracker there, so a training step never waits for the host.
use npu_kernels::{DType, View};

use super::optim::{read_scalar, write_scalar};
use super::{launch, Ctx, DeviceKind, Tensor};
use crate::status::{Error, Result};

/// A one-element npu tensor of `dtype` on device `device` (the first one checked sets it).
fn scalar_state(op: &str, t: &Tensor, what: &str, dtype: DType, device: &mut Option<i32>) -> Result<View> {
    if t.device != DeviceKind::Npu || device.is_some_and(|d| d != t.index) {
        let want = device.map_or_else(|| "an npu tensor".to_string(), |d| format!("on npu:{d}"));
        return Err(Error::runtime(format!("{op}: {what} must be {want}, got a tensor on {}", t.describe_device())));
    }
    *device = Some(t.index);
    if t.numel() != 1 {
        return Err(Error::runtime(format!("{op}: {what} must be a 1-element tensor, got shape {:?}", t.sizes())));
    }
    if t.dtype() != dtype {
        let kind = if dtype == DType::I32 { "an int" } else { "a float" };
        return Err(Error::runtime(format!("{op}: {what} must be {kind} tensor, got {}", t.dtype().name())));
    }
    Ok(t.view.clone())
}

fn non_finite_check_and_unscale(ctx: &Ctx) -> Result<()> {
    let op = ctx.op;
    let grads = ctx.tensor_list(0)?;
    if grads.is_empty() {
        return Ok(());
    }
    let mut device = None;
    let found_inf = scalar_state(&op, &ctx.tensor(1)?, "found_inf", DType::F32, &mut device)?;
    let inv_scale = scalar_state(&op, &ctx.tensor(2)?, "inv_scale", DType::F32, &mut device)?;
    let device = device.expect("found_inf set it");
    let mut views = Vec::with_capacity(grads.len());
    for g in &grads {
        if g.device != DeviceKind::Npu || g.index != device {
            return Err(Error::runtime(format!("{op}: one of scaled_grads is on {}, not on npu:{device} with found_inf", g.describe_device())));
        }
        npu_kernels::check_unscale_target(&g.view).map_err(|e| Error::runtime(e.0))?;
        views.push(g.view.clone());
    }
    launch(&op, device, move || {
        let inv = read_scalar(&inv_scale)? as f32;
        let mut found = false;
        for v in &views {
            found |= npu_kernels::unscale_and_check(v, inv).map_err(|e| e.0)?;
        }
        if found {
            write_scalar(&found_inf, 1.0)?;
        }
        Ok(())
    })
}

fn update_scale(ctx: &Ctx) -> Result<()> {
    let op = ctx.op;
    let mut device = None;
    let scale = scalar_state(&op, &ctx.tensor(0)?, "current_scale", DType::F32, &mut device)?;
    let tracker = scalar_state(&op, &ctx.tensor(1)?, "growth_tracker", DType::I32, &mut device)?;
    let found_inf = scalar_state(&op, &ctx.tensor(2)?, "found_inf", DType::F32, &mut device)?;
    let (growth, backoff, interval) = (ctx.double(3), ctx.double(4), ctx.int(5));
    launch(&op, device.expect("current_scale set it"), move || {
        let (s, t) = npu_kernels::update_scale(
            read_scalar(&scale)? as f32,
            read_scalar(&tracker)? as i32,
            read_scalar(&found_inf)? as f32,
            growth,
            backoff,
            interval,
        );
        write_scalar(&scale, s as f64)?;
        write_scalar(&tracker, t as f64)
    })?;
    ctx.return_arg(0);
    Ok(())
}

pub const OPS: &[(&str, fn(&Ctx) -> Result<()>)] = &[
    ("_amp_foreach_non_finite_check_and_unscale_", non_finite_check_and_unscale),
    ("_amp_update_scale_", update_scale),
];
