//! Convolution: `convolution_overrideable` and `convolution_backward_overrideable`, the two ops
//! PyTorch's `_convolution` and `convolution_backward` hand a PrivateUse1 device (the CPU
//! fallback cannot serve them: their composite kernels only throw). Every conv1d/2d/3d and
//! conv_transpose reaches them.
use npu_kernels::{conv_output_sizes, ConvParams};

use super::{common_device, launch, Ctx, DeviceKind, Tensor};
use crate::status::{Error, Result};

/// stride, padding, dilation, transposed, output_padding, groups, from argument `first` on.
fn params(ctx: &Ctx, first: usize) -> Result<ConvParams> {
    Ok(ConvParams {
        stride: ctx.int_list(first)?,
        padding: ctx.int_list(first + 1)?,
        dilation: ctx.int_list(first + 2)?,
        transposed: ctx.bool(first + 3),
        output_padding: ctx.int_list(first + 4)?,
        groups: ctx.int(first + 5),
    })
}

/// All tensors on one npu device, with one floating (or int64) dtype.
fn check_tensors(op: &str, tensors: &[&Tensor]) -> Result<i32> {
    if let Some(t) = tensors.iter().find(|t| t.device != DeviceKind::Npu) {
        return Err(Error::runtime(format!(
            "Expected all tensors to be on the same device, but found at least two devices, npu and {}! (when checking arguments for {op})",
            t.describe_device()
        )));
    }
    let device = common_device(op, tensors)?;
    let dtype = tensors[0].dtype();
    if let Some(t) = tensors.iter().find(|t| t.dtype() != dtype) {
        return Err(Error::runtime(format!(
            "{op}: Input type ({}) and weight type ({}) should be the same",
            dtype.name(),
            t.dtype().name()
        )));
    }
    if dtype.is_complex() {
        return Err(Error::not_implemented(format!("{op}: complex convolution is not supported on the NPU")));
    }
    // int64 convolves exactly, as on CPU; other integer dtypes are refused there too
    if !dtype.is_floating() && dtype != npu_kernels::DType::I64 {
        return Err(Error::runtime(format!("{op}: \"slow_conv2d_cpu\" not implemented for '{}'", dtype.name())));
    }
    Ok(device)
}

fn kernel_error(op: &str) -> impl Fn(npu_kernels::KernelError) -> Error + '_ {
    move |e| Error::runtime(format!("{op}: {}", e.0.trim_start_matches("convolution: ")))
}

/// convolution_overrideable(input, weight, bias?, stride, padding, dilation, transposed,
/// output_padding, groups)
pub fn convolution(ctx: &Ctx) -> Result<()> {
    let op = ctx.op;
    let (input, weight, bias) = (ctx.tensor(0)?, ctx.tensor(1)?, ctx.opt_tensor(2)?);
    let p = params(ctx, 3)?;
    let mut all = vec![&input, &weight];
    all.extend(bias.as_ref());
    let device = check_tensors(&op, &all)?;
    let sizes = conv_output_sizes(input.sizes(), weight.sizes(), &p).map_err(kernel_error(&op))?;
    if let Some(b) = &bias {
        if b.sizes() != [sizes[1]] {
            return Err(Error::runtime(format!(
                "{op}: Given weight of size {:?}, expected bias to be 1-dimensional with {} elements, but got bias of size {:?} instead",
                weight.sizes(),
                sizes[1],
                b.sizes()
            )));
        }
    }
    let out = ctx.new_output(&sizes, None, input.dtype(), device)?;
    let (o, x, w, b) = (out.view, input.view, weight.view, bias.map(|b| b.view));
    launch(&op, device, move || npu_kernels::conv_forward(&o, &x, &w, b.as_ref(), &p).map_err(|e| e.0))
}

/// convolution_backward_overrideable(grad_output, input, weight, stride, padding, dilation,
/// transposed, output_padding, groups, output_mask) -> (grad_input, grad_weight, grad_bias)
pub fn convolution_backward(ctx: &Ctx) -> Result<()> {
    let op = ctx.op;
    let (grad_out, input, weight) = (ctx.tensor(0)?, ctx.tensor(1)?, ctx.tensor(2)?);
    let p = params(ctx, 3)?;
    let mask = ctx.bool_list(9)?;
    if mask.len() != 3 {
        return Err(Error::runtime(format!("{op}: output_mask must have 3 elements")));
    }
    let device = check_tensors(&op, &[&grad_out, &input, &weight])?;
    let sizes = conv_output_sizes(input.sizes(), weight.sizes(), &p).map_err(kernel_error(&op))?;
    if grad_out.sizes() != sizes.as_slice() {
        return Err(Error::runtime(format!(
            "{op}: grad_output has shape {:?}, expected {:?}",
            grad_out.sizes(),
            sizes
        )));
    }
    let dtype = input.dtype();
    let shapes = [input.sizes().to_vec(), weight.sizes().to_vec(), vec![sizes[1]]];
    let mut grads = Vec::with_capacity(3);
    for (want, shape) in mask.iter().zip(&shapes) {
        if *want {
            grads.push(Some(ctx.new_output(shape, None, dtype, device)?.view));
        } else {
            ctx.return_undefined();
            grads.push(None);
        }
    }
    if grads.iter().all(Option::is_none) {
        return Ok(());
    }
    let (dy, x, w) = (grad_out.view, input.view, weight.view);
    launch(&op, device, move || {
        npu_kernels::conv_backward(&dy, &x, &w, &p, grads[0].as_ref(), grads[1].as_ref(), grads[2].as_ref())
            .map_err(|e| e.0)
    })
}
