//! Activation ops with parameters (threshold, hardtanh, leaky_relu, elu, softplus, hardswish,
//! hardsigmoid, mish, gelu) and the backward op of every activation autograd asks for.
use npu_kernels::{Activation, ActivationGrad, DType, UnaryOp};

use super::elementwise::{check_overlap, input, input_view, output, plan, unary, Kind, Variant};
use super::{launch_sized, Ctx};
use crate::status::{Error, Result};

fn float_only(name: &str, compute: DType) -> Result<()> {
    if compute.is_floating() {
        Ok(())
    } else {
        Err(Error::runtime(format!("{name}: \"{name}_cpu\" not implemented for '{}'", compute.name())))
    }
}

/// op(self, params..) as op / op_ / op.out.
fn forward(ctx: &Ctx, act: Activation, variant: Variant) -> Result<()> {
    let name = ctx.op;
    let a = input(ctx, 0)?;
    // logit of integers is a float, as for the other log functions
    let kind = if matches!(act, Activation::Logit { .. }) { Kind::Float } else { Kind::Promoted };
    let p = plan(ctx, &[&a], kind, variant)?;
    if !matches!(act, Activation::Threshold { .. } | Activation::Hardtanh { .. }) {
        float_only(act.name(), p.compute)?;
    } else if p.compute == DType::Bool {
        return Err(Error::runtime(format!("{name}: \"{}_cpu\" not implemented for 'Bool'", act.name())));
    }
    let out = output(ctx, variant, &p.sizes, p.result, p.device)?;
    if out.numel() == 0 {
        return Ok(());
    }
    if variant != Variant::Functional {
        check_overlap(&name, &out, &[&a])?;
    }
    let (va, keep) = input_view(&a, &p.sizes, &name)?;
    let (dst, compute) = (out.view.clone(), p.compute);
    launch_sized(&name, p.device, dst.numel(), move || {
        let _keep = keep;
        npu_kernels::activation(act, &dst, &va, compute).map_err(|e| e.0)
    })
}

/// op_backward(grad_output, saved, params..) as the functional and .grad_input overloads;
/// `saved` is argument `saved_arg`.
fn backward(ctx: &Ctx, op: ActivationGrad, variant: Variant, saved_arg: usize) -> Result<()> {
    let name = ctx.op;
    let (g, s) = (input(ctx, 0)?, input(ctx, saved_arg)?);
    let p = plan(ctx, &[&g, &s], Kind::Promoted, variant)?;
    float_only(op.name(), p.compute)?;
    let out = output(ctx, variant, &p.sizes, p.result, p.device)?;
    if out.numel() == 0 {
        return Ok(());
    }
    if variant != Variant::Functional {
        check_overlap(&name, &out, &[&g, &s])?;
    }
    let (vg, kg) = input_view(&g, &p.sizes, &name)?;
    let (vs, ks) = input_view(&s, &p.sizes, &name)?;
    let (dst, compute) = (out.view.clone(), p.compute);
    launch_sized(&name, p.device, dst.numel(), move || {
        let _keep = (kg, ks);
        npu_kernels::activation_backward(op, &dst, &vg, &vs, compute).map_err(|e| e.0)
    })
}

fn gelu_approximation(ctx: &Ctx, i: usize) -> Result<bool> {
    match ctx.string(i)?.as_str() {
        "none" => Ok(false),
        "tanh" => Ok(true),
        other => Err(Error::runtime(format!("{}: approximate argument must be either none or tanh, got '{other}'", ctx.op))),
    }
}

fn gelu(ctx: &Ctx, variant: Variant) -> Result<()> {
    let op = if gelu_approximation(ctx, 1)? { UnaryOp::GeluTanh } else { UnaryOp::GeluErf };
    unary(ctx, op, Kind::Promoted, variant)
}

fn threshold(ctx: &Ctx) -> Result<Activation> {
    Ok(Activation::Threshold { threshold: ctx.scalar_f64(1)?, value: ctx.scalar_f64(2)? })
}
fn hardtanh(ctx: &Ctx) -> Result<Activation> {
    Ok(Activation::Hardtanh { min: ctx.scalar_f64(1)?, max: ctx.scalar_f64(2)? })
}
fn leaky_relu(ctx: &Ctx) -> Result<Activation> {
    Ok(Activation::LeakyRelu { slope: ctx.scalar_f64(1)? })
}
fn elu(ctx: &Ctx) -> Result<Activation> {
    Ok(Activation::Elu { alpha: ctx.scalar_f64(1)?, scale: ctx.scalar_f64(2)?, input_scale: ctx.scalar_f64(3)? })
}
fn softplus(ctx: &Ctx) -> Result<Activation> {
    Ok(Activation::Softplus { beta: ctx.scalar_f64(1)?, threshold: ctx.scalar_f64(2)? })
}

/// Adapters for the op table: `name => body` where body maps the context to the call.
macro_rules! adapters {
    ($($name:ident => |$ctx:ident| $body:expr;)*) => {
        $(pub fn $name($ctx: &Ctx) -> Result<()> { $body })*
    };
}

adapters! {
    threshold_fn => |c| forward(c, threshold(c)?, Variant::Functional);
    threshold_ => |c| forward(c, threshold(c)?, Variant::InPlace);
    threshold_out => |c| forward(c, threshold(c)?, Variant::Out);
    hardtanh_fn => |c| forward(c, hardtanh(c)?, Variant::Functional);
    hardtanh_ => |c| forward(c, hardtanh(c)?, Variant::InPlace);
    hardtanh_out => |c| forward(c, hardtanh(c)?, Variant::Out);
    leaky_relu_fn => |c| forward(c, leaky_relu(c)?, Variant::Functional);
    leaky_relu_ => |c| forward(c, leaky_relu(c)?, Variant::InPlace);
    leaky_relu_out => |c| forward(c, leaky_relu(c)?, Variant::Out);
    elu_fn => |c| forward(c, elu(c)?, Variant::Functional);
    elu_ => |c| forward(c, elu(c)?, Variant::InPlace);
    elu_out => |c| forward(c, elu(c)?, Variant::Out);
    softplus_fn => |c| forward(c, softplus(c)?, Variant::Functional);
    softplus_out => |c| forward(c, softplus(c)?, Variant::Out);
    hardswish_fn => |c| forward(c, Activation::Hardswish, Variant::Functional);
    hardswish_ => |c| forward(c, Activation::Hardswish, Variant::InPlace);
    hardswish_out => |c| forward(c, Activation::Hardswish, Variant::Out);
    hardsigmoid_fn => |c| forward(c, Activation::Hardsigmoid, Variant::Functional);
    hardsigmoid_ => |c| forward(c, Activation::Hardsigmoid, Variant::InPlace);
    hardsigmoid_out => |c| forward(c, Activation::Hardsigmoid, Variant::Out);
    mish_fn => |c| forward(c, Activation::Mish, Variant::Functional);
    mish_ => |c| forward(c, Activation::Mish, Variant::InPlace);
    mish_out => |c| forward(c, Activation::Mish, Variant::Out);
    logit_fn => |c| forward(c, Activation::Logit { eps: c.opt_double(1) }, Variant::Functional);
    logit_ => |c| forward(c, Activation::Logit { eps: c.opt_double(1) }, Variant::InPlace);
    logit_out => |c| forward(c, Activation::Logit { eps: c.opt_double(1) }, Variant::Out);
    hardshrink_fn => |c| forward(c, Activation::Hardshrink { lambda: c.scalar_f64(1)? }, Variant::Functional);
    hardshrink_out => |c| forward(c, Activation::Hardshrink { lambda: c.scalar_f64(1)? }, Variant::Out);
    softshrink_fn => |c| forward(c, softshrink(c)?, Variant::Functional);
    softshrink_out => |c| forward(c, softshrink(c)?, Variant::Out);
    round_decimals_fn => |c| forward(c, Activation::RoundDecimals { decimals: c.int(1) }, Variant::Functional);
    round_decimals_ => |c| forward(c, Activation::RoundDecimals { decimals: c.int(1) }, Variant::InPlace);
    round_decimals_out => |c| forward(c, Activation::RoundDecimals { decimals: c.int(1) }, Variant::Out);
    gelu_fn => |c| gelu(c, Variant::Functional);
    gelu_ => |c| gelu(c, Variant::InPlace);
    gelu_out => |c| gelu(c, Variant::Out);

    threshold_backward => |c| backward(c, ActivationGrad::Threshold { threshold: c.scalar_f64(2)? }, Variant::Functional, 1);
    threshold_backward_out => |c| backward(c, ActivationGrad::Threshold { threshold: c.scalar_f64(2)? }, Variant::Out, 1);
    hardtanh_backward => |c| backward(c, ActivationGrad::Hardtanh { min: c.scalar_f64(2)?, max: c.scalar_f64(3)? }, Variant::Functional, 1);
    hardtanh_backward_out => |c| backward(c, ActivationGrad::Hardtanh { min: c.scalar_f64(2)?, max: c.scalar_f64(3)? }, Variant::Out, 1);
    leaky_relu_backward => |c| backward(c, ActivationGrad::LeakyRelu { slope: c.scalar_f64(2)? }, Variant::Functional, 1);
    leaky_relu_backward_out => |c| backward(c, ActivationGrad::LeakyRelu { slope: c.scalar_f64(2)? }, Variant::Out, 1);
    elu_backward => |c| backward(c, elu_grad(c)?, Variant::Functional, 5);
    elu_backward_out => |c| backward(c, elu_grad(c)?, Variant::Out, 5);
    softplus_backward => |c| backward(c, ActivationGrad::Softplus { beta: c.scalar_f64(2)?, threshold: c.scalar_f64(3)? }, Variant::Functional, 1);
    softplus_backward_out => |c| backward(c, ActivationGrad::Softplus { beta: c.scalar_f64(2)?, threshold: c.scalar_f64(3)? }, Variant::Out, 1);
    hardswish_backward => |c| backward(c, ActivationGrad::Hardswish, Variant::Functional, 1);
    hardswish_backward_out => |c| backward(c, ActivationGrad::Hardswish, Variant::Out, 1);
    hardsigmoid_backward => |c| backward(c, ActivationGrad::Hardsigmoid, Variant::Functional, 1);
    hardsigmoid_backward_out => |c| backward(c, ActivationGrad::Hardsigmoid, Variant::Out, 1);
    mish_backward => |c| backward(c, ActivationGrad::Mish, Variant::Functional, 1);
    logit_backward => |c| backward(c, ActivationGrad::Logit { eps: c.opt_double(2) }, Variant::Functional, 1);
    logit_backward_out => |c| backward(c, ActivationGrad::Logit { eps: c.opt_double(2) }, Variant::Out, 1);
    shrink_backward => |c| backward(c, ActivationGrad::Shrink { lambda: c.scalar_f64(2)? }, Variant::Functional, 1);
    shrink_backward_out => |c| backward(c, ActivationGrad::Shrink { lambda: c.scalar_f64(2)? }, Variant::Out, 1);
    gelu_backward => |c| backward(c, gelu_grad(c)?, Variant::Functional, 1);
    gelu_backward_out => |c| backward(c, gelu_grad(c)?, Variant::Out, 1);
    silu_backward => |c| backward(c, ActivationGrad::Silu, Variant::Functional, 1);
    silu_backward_out => |c| backward(c, ActivationGrad::Silu, Variant::Out, 1);
    sigmoid_backward => |c| backward(c, ActivationGrad::Sigmoid, Variant::Functional, 1);
    sigmoid_backward_out => |c| backward(c, ActivationGrad::Sigmoid, Variant::Out, 1);
    tanh_backward => |c| backward(c, ActivationGrad::Tanh, Variant::Functional, 1);
    tanh_backward_out => |c| backward(c, ActivationGrad::Tanh, Variant::Out, 1);
}

/// softshrink(self, lambd): PyTorch refuses a negative lambda.
fn softshrink(c: &Ctx) -> Result<Activation> {
    let lambda = c.scalar_f64(1)?;
    if lambda < 0.0 {
        return Err(Error::runtime(format!("{}: lambda must be greater or equal to 0, but found to be {lambda}.", c.op)));
    }
    Ok(Activation::Softshrink { lambda })
}

fn gelu_grad(c: &Ctx) -> Result<ActivationGrad> {
    Ok(if gelu_approximation(c, 2)? { ActivationGrad::GeluTanh } else { ActivationGrad::GeluErf })
}

/// elu_backward(grad_output, alpha, scale, input_scale, is_result, self_or_result)
fn elu_grad(c: &Ctx) -> Result<ActivationGrad> {
    Ok(ActivationGrad::Elu {
        alpha: c.scalar_f64(1)?,
        scale: c.scalar_f64(2)?,
        input_scale: c.scalar_f64(3)?,
        is_result: c.bool(4),
    })
}

/// (ATen name, adapter) for the op table.
pub const OPS: &[(&str, fn(&Ctx) -> Result<()>)] = &[
    ("threshold", threshold_fn),
    ("threshold_", threshold_),
    ("threshold.out", threshold_out),
    ("hardtanh", hardtanh_fn),
    ("hardtanh_", hardtanh_),
    ("hardtanh.out", hardtanh_out),
    ("leaky_relu", leaky_relu_fn),
    ("leaky_relu_", leaky_relu_),
    ("leaky_relu.out", leaky_relu_out),
    ("elu", elu_fn),
    ("elu_", elu_),
    ("elu.out", elu_out),
    ("softplus", softplus_fn),
    ("softplus.out", softplus_out),
    ("hardswish", hardswish_fn),
    ("hardswish_", hardswish_),
    ("hardswish.out", hardswish_out),
    ("hardsigmoid", hardsigmoid_fn),
    ("hardsigmoid_", hardsigmoid_),
    ("hardsigmoid.out", hardsigmoid_out),
    ("mish", mish_fn),
    ("mish_", mish_),
    ("mish.out", mish_out),
    ("gelu", gelu_fn),
    ("gelu_", gelu_),
    ("gelu.out", gelu_out),
    ("threshold_backward", threshold_backward),
    ("threshold_backward.grad_input", threshold_backward_out),
    ("hardtanh_backward", hardtanh_backward),
    ("hardtanh_backward.grad_input", hardtanh_backward_out),
    ("leaky_relu_backward", leaky_relu_backward),
    ("leaky_relu_backward.grad_input", leaky_relu_backward_out),
    ("elu_backward", elu_backward),
    ("elu_backward.grad_input", elu_backward_out),
    ("softplus_backward", softplus_backward),
    ("softplus_backward.grad_input", softplus_backward_out),
    ("hardswish_backward", hardswish_backward),
    ("hardswish_backward.out", hardswish_backward_out),
    ("hardsigmoid_backward", hardsigmoid_backward),
    ("hardsigmoid_backward.grad_input", hardsigmoid_backward_out),
    ("mish_backward", mish_backward),
    ("logit", logit_fn),
    ("logit_", logit_),
    ("logit.out", logit_out),
    ("logit_backward", logit_backward),
    ("logit_backward.grad_input", logit_backward_out),
    ("hardshrink", hardshrink_fn),
    ("hardshrink.out", hardshrink_out),
    ("softshrink", softshrink_fn),
    ("softshrink.out", softshrink_out),
    ("round.decimals", round_decimals_fn),
    ("round_.decimals", round_decimals_),
    ("round.decimals_out", round_decimals_out),
    ("hardshrink_backward", shrink_backward),
    ("hardshrink_backward.grad_input", shrink_backward_out),
    ("softshrink_backward", shrink_backward),
    ("softshrink_backward.grad_input", shrink_backward_out),
    ("gelu_backward", gelu_backward),
    ("gelu_backward.grad_input", gelu_backward_out),
    ("silu_backward", silu_backward),
    ("silu_backward.grad_input", silu_backward_out),
    ("sigmoid_backward", sigmoid_backward),
    ("sigmoid_backward.grad_input", sigmoid_backward_out),
    ("tanh_backward", tanh_backward),
    ("tanh_backward.grad_input", tanh_backward_out),
];
