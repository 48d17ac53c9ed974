//! mse_loss, smooth_l1_loss, huber_loss, binary_cross_entropy (forward and backward, every
//! reduction), log_sigmoid (behind binary_cross_entropy_with_logits) and glu.
use npu_kernels::{DType, PairGrad, PairLoss, Reduction, View};

use super::elementwise::{output, Variant};
use super::shape::{broadcast_shapes, expand_to};
use super::softmax::wrap_dim;
use super::{common_device, launch, Ctx, Tensor};
use crate::status::{Error, Result};

fn reduction(ctx: &Ctx, i: usize) -> Result<Reduction> {
    let r = ctx.int(i);
    Reduction::from_i64(r).ok_or_else(|| Error::value(format!("{}: {r} is not a valid value for reduction", ctx.op)))
}

fn float_only(op: &str, dtype: DType) -> Result<()> {
    if dtype.is_complex() {
        return Err(Error::use_fallback("complex input"));
    }
    if !dtype.is_floating() {
        return Err(Error::runtime(format!("{op}: \"{op}\" not implemented for '{}'", dtype.name())));
    }
    Ok(())
}

/// Input and target broadcast to one shape (PyTorch warns when they differ; so do we not).
fn operands(op: &str, x: &Tensor, t: &Tensor) -> Result<(Vec<i64>, View, View)> {
    if t.dtype() != x.dtype() {
        return Err(Error::runtime(format!("{op}: expected target to have dtype {}, got {}", x.dtype().name(), t.dtype().name())));
    }
    let sizes = broadcast_shapes(x.sizes(), t.sizes(), op)?;
    Ok((sizes.clone(), expand_to(&x.view, &sizes, op)?, expand_to(&t.view, &sizes, op)?))
}

fn loss_of(ctx: &Ctx, kind: &str, param: usize) -> PairLoss {
    match kind {
        "mse" => PairLoss::Mse,
        "smooth_l1" => PairLoss::SmoothL1 { beta: ctx.double(param) },
        "huber" => PairLoss::Huber { delta: ctx.double(param) },
        _ => PairLoss::Bce,
    }
}

/// (self, target, [weight,] reduction[, beta/delta][, out]).
fn forward(ctx: &Ctx, kind: &str, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let (x, t) = (ctx.tensor(0)?, ctx.tensor(1)?);
    let bce = kind == "bce";
    let weight = if bce { ctx.opt_tensor(2)? } else { None };
    let red = reduction(ctx, if bce { 3 } else { 2 })?;
    let loss = loss_of(ctx, kind, 3);
    let mut all = vec![&x, &t];
    all.extend(weight.as_ref());
    let device = common_device(&op, &all)?;
    float_only(&op, x.dtype())?;
    if let PairLoss::SmoothL1 { beta } = loss {
        if beta < 0.0 {
            return Err(Error::runtime(format!("{op}: smooth_l1_loss does not support negative values for beta.")));
        }
        if beta == 0.0 {
            return Err(Error::use_fallback("beta = 0 (l1 loss)"));
        }
    }
    if let PairLoss::Huber { delta } = loss {
        if delta <= 0.0 {
            return Err(Error::runtime(format!("{op}: huber_loss does not support non-positive values for delta.")));
        }
    }
    if bce && x.sizes() != t.sizes() {
        return Err(Error::value(format!(
            "{op}: Using a target size ({:?}) that is different to the input size ({:?}) is deprecated. Please ensure they have the same size.",
            t.sizes(), x.sizes()
        )));
    }
    let (sizes, xv, tv) = operands(&op, &x, &t)?;
    let wv = weight.as_ref().map(|w| expand_to(&w.view, &sizes, &op)).transpose()?;
    let out_sizes = if red == Reduction::None { sizes.clone() } else { vec![] };
    let out = output(ctx, variant, &out_sizes, x.dtype(), device)?;
    let dst = out.view.clone();
    launch(&op, device, move || npu_kernels::pair_loss_reduced(loss, &dst, &xv, &tv, wv.as_ref(), red).map_err(|e| e.0))
}

/// (grad_output, self, target, [weight,] reduction[, beta/delta][, grad_input]).
fn backward(ctx: &Ctx, kind: &str, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let (g, x, t) = (ctx.tensor(0)?, ctx.tensor(1)?, ctx.tensor(2)?);
    let bce = kind == "bce";
    let weight = if bce { ctx.opt_tensor(3)? } else { None };
    let red = reduction(ctx, if bce { 4 } else { 3 })?;
    let loss = loss_of(ctx, kind, 4);
    let mut all = vec![&g, &x, &t];
    all.extend(weight.as_ref());
    let device = common_device(&op, &all)?;
    float_only(&op, x.dtype())?;
    if matches!(loss, PairLoss::SmoothL1 { beta } if beta == 0.0) {
        return Err(Error::use_fallback("beta = 0 (l1 loss)"));
    }
    let (sizes, xv, tv) = operands(&op, &x, &t)?;
    let gv = expand_to(&g.view, &sizes, &op)?;
    let wv = weight.as_ref().map(|w| expand_to(&w.view, &sizes, &op)).transpose()?;
    let n: i64 = sizes.iter().product();
    let norm = if red == Reduction::Mean && n > 0 { 1.0 / n as f64 } else { 1.0 };
    let out = output(ctx, variant, &sizes, x.dtype(), device)?;
    let (dst, dtype) = (out.view.clone(), x.dtype());
    launch(&op, device, move || {
        npu_kernels::pair_backward(PairGrad::Input(loss), &dst, &gv, &xv, &tv, norm).map_err(|e| e.0)?;
        if let Some(w) = wv {
            npu_kernels::binary(npu_kernels::BinaryOp::Mul, &dst, &dst, &w, npu_kernels::Scalar::Int(1), dtype).map_err(|e| e.0)?;
        }
        Ok(())
    })
}

/// log_sigmoid_forward(self) -> (output, buffer) and .output(self, *, output, buffer).
fn log_sigmoid_forward(ctx: &Ctx, out_variant: bool) -> Result<()> {
    let op = ctx.op;
    let x = ctx.tensor(0)?;
    let device = common_device(&op, &[&x])?;
    float_only(&op, x.dtype())?;
    let out = if out_variant {
        let o = ctx.resize_arg(1, x.sizes())?;
        ctx.return_arg(1);
        ctx.return_arg(2);
        o
    } else {
        let o = ctx.new_output(x.sizes(), None, x.dtype(), device)?;
        ctx.new_output(&[0], None, x.dtype(), device)?; // the buffer CPU leaves empty too
        o
    };
    let (dst, src) = (out.view.clone(), x.view);
    launch(&op, device, move || npu_kernels::log_sigmoid(&dst, &src).map_err(|e| e.0))
}

/// log_sigmoid_backward(grad_output, self, buffer) and .grad_input.
fn log_sigmoid_backward(ctx: &Ctx, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let (g, x) = (ctx.tensor(0)?, ctx.tensor(1)?);
    let device = common_device(&op, &[&g, &x])?;
    float_only(&op, x.dtype())?;
    let sizes = broadcast_shapes(g.sizes(), x.sizes(), &op)?;
    let (gv, xv) = (expand_to(&g.view, &sizes, &op)?, expand_to(&x.view, &sizes, &op)?);
    let out = output(ctx, variant, &sizes, x.dtype(), device)?;
    let dst = out.view.clone();
    launch(&op, device, move || npu_kernels::log_sigmoid_backward(&dst, &gv, &xv).map_err(|e| e.0))
}

/// The two halves of `x` along `dim`.
fn halves(op: &str, x: &View, dim: usize) -> Result<(View, View)> {
    let n = x.sizes[dim];
    if n % 2 != 0 {
        return Err(Error::runtime(format!("{op}: Halving dimension must be even, but dimension {dim} is size {n}")));
    }
    let mut a = x.clone();
    a.sizes[dim] = n / 2;
    let mut b = a.clone();
    b.ptr = unsafe { x.ptr.offset((n / 2 * x.strides[dim]) as isize * x.dtype.size() as isize) };
    Ok((a, b))
}

/// glu(self, dim) and glu.out.
fn glu(ctx: &Ctx, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let x = ctx.tensor(0)?;
    let device = common_device(&op, &[&x])?;
    float_only(&op, x.dtype())?;
    if x.sizes().is_empty() {
        return Err(Error::runtime(format!("{op}: glu does not support scalars because halving size must be even")));
    }
    let dim = wrap_dim(&op, ctx.int(1), x.sizes().len())?;
    let (a, b) = halves(&op, &x.view, dim)?;
    let out = output(ctx, variant, &a.sizes, x.dtype(), device)?;
    let dst = out.view.clone();
    launch(&op, device, move || npu_kernels::pair_loss(PairLoss::Glu, &dst, &a, &b).map_err(|e| e.0))
}

/// glu_backward(grad_output, self, dim) and .grad_input.
fn glu_backward(ctx: &Ctx, variant: Variant) -> Result<()> {
    let op = ctx.op;
    let (g, x) = (ctx.tensor(0)?, ctx.tensor(1)?);
    let device = common_device(&op, &[&g, &x])?;
    float_only(&op, x.dtype())?;
    let dim = wrap_dim(&op, ctx.int(2), x.sizes().len())?;
    let (a, b) = halves(&op, &x.view, dim)?;
    if g.sizes() != a.sizes.as_slice() {
        return Err(Error::runtime(format!("{op}: grad_output {:?} must have the shape of glu's output {:?}", g.sizes(), a.sizes)));
    }
    let out = output(ctx, variant, x.sizes(), x.dtype(), device)?;
    let (ga, gb) = halves(&op, &out.view, dim)?;
    let gv = g.view;
    launch(&op, device, move || {
        npu_kernels::pair_backward(PairGrad::Input(PairLoss::Glu), &ga, &gv, &a, &b, 1.0).map_err(|e| e.0)?;
        npu_kernels::pair_backward(PairGrad::GluGate, &gb, &gv, &a, &b, 1.0).map_err(|e| e.0)
    })
}

pub const OPS: &[(&str, fn(&Ctx) -> Result<()>)] = {
    use Variant::*;
    &[
        ("mse_loss", |c| forward(c, "mse", Functional)),
        ("mse_loss.out", |c| forward(c, "mse", Out)),
        ("mse_loss_backward", |c| backward(c, "mse", Functional)),
        ("mse_loss_backward.grad_input", |c| backward(c, "mse", Out)),
        ("smooth_l1_loss", |c| forward(c, "smooth_l1", Functional)),
        ("smooth_l1_loss.out", |c| forward(c, "smooth_l1", Out)),
        ("smooth_l1_loss_backward", |c| backward(c, "smooth_l1", Functional)),
        ("smooth_l1_loss_backward.grad_input", |c| backward(c, "smooth_l1", Out)),
        ("huber_loss", |c| forward(c, "huber", Functional)),
        ("huber_loss.out", |c| forward(c, "huber", Out)),
        ("huber_loss_backward", |c| backward(c, "huber", Functional)),
        ("huber_loss_backward.out", |c| backward(c, "huber", Out)),
        ("binary_cross_entropy", |c| forward(c, "bce", Functional)),
        ("binary_cross_entropy.out", |c| forward(c, "bce", Out)),
        ("binary_cross_entropy_backward", |c| backward(c, "bce", Functional)),
        ("binary_cross_entropy_backward.grad_input", |c| backward(c, "bce", Out)),
        ("log_sigmoid_forward", |c| log_sigmoid_forward(c, false)),
        ("log_sigmoid_forward.output", |c| log_sigmoid_forward(c, true)),
        ("log_sigmoid_backward", |c| log_sigmoid_backward(c, Functional)),
        ("log_sigmoid_backward.grad_input", |c| log_sigmoid_backward(c, Out)),
        ("glu", |c| glu(c, Functional)),
        ("glu.out", |c| glu(c, Out)),
        ("glu_backward", |c| glu_backward(c, Functional)),
        ("glu_backward.grad_input", |c| glu_backward(c, Out)),
    ]
};
