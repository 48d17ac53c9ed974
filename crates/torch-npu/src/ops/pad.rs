//! reflection_pad{1,2,3}d and replication_pad{1,2,3}d (what `F.pad` calls for modes "reflect"
//! and "replicate"), forward and backward, functional and out=.
use npu_kernels::PadMode;

use super::elementwise::{output, Variant};
use super::{common_device, launch, Ctx};
use crate::status::{Error, Result};

/// The input rank must be `k + 1` (unbatched) or `k + 2` (batched) for a `k`-d pad.
fn check_rank(op: &str, rank: usize, k: usize, pads: &[i64]) -> Result<()> {
    if pads.len() != 2 * k {
        return Err(Error::runtime(format!("{op}: padding size is expected to be {}, but got: {}", 2 * k, pads.len())));
    }
    if rank != k + 1 && rank != k + 2 {
        return Err(Error::runtime(format!("{op}: Expected {}D or {}D tensor for input, but got a {rank}D tensor", k + 1, k + 2)));
    }
    Ok(())
}

fn padded_sizes(sizes: &[i64], pads: &[i64]) -> Vec<i64> {
    let mut out = sizes.to_vec();
    let r = out.len();
    for j in 0..pads.len() / 2 {
        out[r - 1 - j] += pads[2 * j] + pads[2 * j + 1];
    }
    out
}

/// (self, padding[, out]).
fn forward(ctx: &Ctx, k: usize, mode: PadMode, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let x = ctx.tensor(0)?;
    let device = common_device(&op, &[&x])?;
    let pads = ctx.int_list(1)?;
    check_rank(&op, x.sizes().len(), k, &pads)?;
    if x.dtype().is_complex() {
        return Err(Error::use_fallback("complex input"));
    }
    check_pads(&op, x.sizes(), &pads, mode)?;
    let out = output(ctx, variant, &padded_sizes(x.sizes(), &pads), x.dtype(), device)?;
    if out.dtype() != x.dtype() {
        return Err(Error::runtime(format!("{op}: expected out dtype {}, got {}", x.dtype().name(), out.dtype().name())));
    }
    let (dst, src) = (out.view.clone(), x.view);
    launch(&op, device, move || npu_kernels::pad(&dst, &src, &pads, mode).map_err(|e| e.0))
}

/// PyTorch's argument checks, on the host (the kernel repeats them).
fn check_pads(op: &str, sizes: &[i64], pads: &[i64], mode: PadMode) -> Result<()> {
    let r = sizes.len();
    for j in 0..pads.len() / 2 {
        let (d, n) = (r - 1 - j, sizes[r - 1 - j]);
        let (l, rr) = (pads[2 * j], pads[2 * j + 1]);
        if mode == PadMode::Reflect && (l >= n || rr >= n) {
            return Err(Error::runtime(format!(
                "{op}: Argument #4: Padding size should be less than the corresponding input dimension, but got: padding ({l}, {rr}) at dimension {d} of input {sizes:?}"
            )));
        }
        if n + l + rr < 1 && n > 0 {
            return Err(Error::runtime(format!("{op}: input (size {n} at dimension {d}) is too small. Calculated output size: {}", n + l + rr)));
        }
        if n == 0 && l + rr > 0 {
            return Err(Error::runtime(format!("{op}: input tensor must have a non-empty dimension {d} to be padded, got {sizes:?}")));
        }
    }
    Ok(())
}

/// (grad_output, self, padding[, grad_input]).
fn backward(ctx: &Ctx, k: usize, mode: PadMode, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let (g, x) = (ctx.tensor(0)?, ctx.tensor(1)?);
    let device = common_device(&op, &[&g, &x])?;
    let pads = ctx.int_list(2)?;
    check_rank(&op, x.sizes().len(), k, &pads)?;
    if x.dtype().is_complex() {
        return Err(Error::use_fallback("complex input"));
    }
    check_pads(&op, x.sizes(), &pads, mode)?;
    if g.sizes() != padded_sizes(x.sizes(), &pads).as_slice() || g.dtype() != x.dtype() {
        return Err(Error::runtime(format!("{op}: grad_output {:?} does not match the padded input", g.sizes())));
    }
    let out = output(ctx, variant, x.sizes(), x.dtype(), device)?;
    let (dst, gv) = (out.view.clone(), g.view);
    launch(&op, device, move || npu_kernels::pad_backward(&dst, &gv, &pads, mode).map_err(|e| e.0))
}

pub const OPS: &[(&str, fn(&Ctx) -> Result<()>)] = {
    use PadMode::*;
    use Variant::*;
    &[
        ("reflection_pad1d", |c| forward(c, 1, Reflect, Functional)),
        ("reflection_pad1d.out", |c| forward(c, 1, Reflect, Out)),
        ("reflection_pad2d", |c| forward(c, 2, Reflect, Functional)),
        ("reflection_pad2d.out", |c| forward(c, 2, Reflect, Out)),
        ("reflection_pad3d", |c| forward(c, 3, Reflect, Functional)),
        ("reflection_pad3d.out", |c| forward(c, 3, Reflect, Out)),
        ("replication_pad1d", |c| forward(c, 1, Replicate, Functional)),
        ("replication_pad1d.out", |c| forward(c, 1, Replicate, Out)),
        ("replication_pad2d", |c| forward(c, 2, Replicate, Functional)),
        ("replication_pad2d.out", |c| forward(c, 2, Replicate, Out)),
        ("replication_pad3d", |c| forward(c, 3, Replicate, Functional)),
        ("replication_pad3d.out", |c| forward(c, 3, Replicate, Out)),
        ("reflection_pad1d_backward", |c| backward(c, 1, Reflect, Functional)),
        ("reflection_pad1d_backward.grad_input", |c| backward(c, 1, Reflect, Out)),
        ("reflection_pad2d_backward", |c| backward(c, 2, Reflect, Functional)),
        ("reflection_pad2d_backward.grad_input", |c| backward(c, 2, Reflect, Out)),
        ("reflection_pad3d_backward", |c| backward(c, 3, Reflect, Functional)),
        ("reflection_pad3d_backward.grad_input", |c| backward(c, 3, Reflect, Out)),
        ("replication_pad1d_backward", |c| backward(c, 1, Replicate, Functional)),
        ("replication_pad1d_backward.grad_input", |c| backward(c, 1, Replicate, Out)),
        ("replication_pad2d_backward", |c| backward(c, 2, Replicate, Functional)),
        ("replication_pad2d_backward.grad_input", |c| backward(c, 2, Replicate, Out)),
        ("replication_pad3d_backward", |c| backward(c, 3, Replicate, Functional)),
        ("replication_pad3d_backward.grad_input", |c| backward(c, 3, Replicate, Out)),
    ]
};
