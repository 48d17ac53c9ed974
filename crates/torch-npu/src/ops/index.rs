//! Data-dependent and multi-input shape ops: masked_select, cat.
use npu_kernels::{DType, View};
use npu_runtime as rt;

use super::elementwise::{output, Variant};
use super::promote::{result_type, Operand};
use super::shape::{broadcast_shapes, expand_to};
use super::{common_device, launch, Ctx, Tensor};
use crate::status::{Error, Result};

/// masked_select(self, mask): its size depends on the mask's values, so it waits for the
/// device (as on CUDA), counts on the host, then gathers on the device.
pub fn masked_select(ctx: &Ctx) -> Result<()> {
    let op = ctx.op.clone();
    let src = ctx.tensor(0)?;
    let mask = ctx.tensor(1)?;
    let device = common_device(&op, &[&src, &mask])?;
    if src.dtype().is_complex() {
        return Err(Error::use_fallback("complex input"));
    }
    if mask.dtype() != DType::Bool {
        return Err(Error::runtime(format!(
            "masked_select: expected BoolTensor for mask, got {}",
            mask.dtype().name()
        )));
    }
    let sizes = broadcast_shapes(src.sizes(), mask.sizes(), &op)?;
    let src_view = expand_to(&src.view, &sizes, &op)?;
    let mask_view = expand_to(&mask.view, &sizes, &op)?;
    rt::current_stream(device)?.synchronize()?;
    let n = npu_kernels::count_nonzero(&mask_view).map_err(|e| Error::runtime(e.0))?;
    let out = ctx.new_output(&[n as i64], None, src.dtype(), device)?;
    if n == 0 {
        return Ok(());
    }
    let dst = out.view.clone();
    launch(&op, device, move || npu_kernels::masked_select(&dst, &src_view, &mask_view).map_err(|e| e.0))
}

/// cat(tensors, dim) and cat.out: each input is copied into its slice of the output.
fn cat_impl(ctx: &Ctx, variant: Variant) -> Result<()> {
    let op = ctx.op.clone();
    let inputs = ctx.tensor_list(0)?;
    let dim_arg = ctx.int(1);
    if inputs.is_empty() {
        return Err(Error::value("torch.cat(): expected a non-empty list of Tensors"));
    }
    let refs: Vec<&Tensor> = inputs.iter().collect();
    let device = common_device(&op, &refs)?;
    // Legacy behaviour: 1-d empty tensors are skipped whatever their shape.
    let parts: Vec<&Tensor> = inputs.iter().filter(|t| !(t.sizes() == [0])).collect();
    let dtype = result_type(&inputs.iter().map(|t| Operand::Dim(t.dtype())).collect::<Vec<_>>(), ctx.default_float());
    let Some(first) = parts.first() else {
        output(ctx, variant, &[0], dtype, device)?;
        return Ok(());
    };
    let rank = first.sizes().len() as i64;
    if rank == 0 {
        return Err(Error::runtime("zero-dimensional tensor (at position 0) cannot be concatenated"));
    }
    let dim = if dim_arg < 0 { dim_arg + rank } else { dim_arg };
    if dim < 0 || dim >= rank {
        return Err(Error::index(format!(
            "Dimension out of range (expected to be in range of [{}, {}], but got {dim_arg})",
            -rank,
            rank - 1
        )));
    }
    let d = dim as usize;
    let mut sizes = first.sizes().to_vec();
    sizes[d] = 0;
    for (k, t) in parts.iter().enumerate() {
        if t.sizes().len() as i64 != rank {
            return Err(Error::runtime(format!(
                "Tensors must have same number of dimensions: got {rank} and {}",
                t.sizes().len()
            )));
        }
        for i in 0..rank as usize {
            if i != d && t.sizes()[i] != first.sizes()[i] {
                return Err(Error::runtime(format!(
                    "Sizes of tensors must match except in dimension {d}. Expected size {} but got size {} for tensor number {k} in the list.",
                    first.sizes()[i],
                    t.sizes()[i]
                )));
            }
        }
        sizes[d] += t.sizes()[d];
    }
    let out = output(ctx, variant, &sizes, dtype, device)?;
    let mut offset = 0i64;
    for t in parts {
        let n = t.sizes()[d];
        if n > 0 && t.numel() > 0 {
            let mut slice_sizes = out.view.sizes.clone();
            slice_sizes[d] = n;
            let start = offset * out.view.strides[d] * out.dtype().size() as i64;
            let dst = View {
                // SAFETY: the slice starts inside the output (offset < sizes[d]).
                ptr: unsafe { out.view.ptr.offset(start as isize) },
                dtype: out.dtype(),
                sizes: slice_sizes,
                strides: out.view.strides.clone(),
            };
            let src = t.view.clone();
            launch(&op, device, move || npu_kernels::copy(&dst, &src).map_err(|e| e.0))?;
        }
        offset += n;
    }
    Ok(())
}

pub fn cat(ctx: &Ctx) -> Result<()> {
    cat_impl(ctx, Variant::Functional)
}

pub fn cat_out(ctx: &Ctx) -> Result<()> {
    cat_impl(ctx, Variant::Out)
}
