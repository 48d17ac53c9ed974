//! Activations with parameters (and `round` with decimals, the other elementwise op that takes
//! one), and the backward of every activation: the elementwise
//! formulas of PyTorch's CPU kernels (`Activation.cpp`), float compute (f16/bf16 in f32,
//! rounded once). Parameter-free forwards (relu, gelu, silu, sigmoid, tanh) are `UnaryOp`s.

use crate::cpu::with_avx2;
use crate::dtype::DType;
use crate::elementwise::{drive, loader, map1, map2, not_implemented, reject_complex, storer, Arg, Input};
use crate::math::{Float, Int};
use crate::view::View;
use crate::KernelError;

/// An activation with parameters (forward).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// `x <= threshold ? value : x` (also for integers).
    Threshold { threshold: f64, value: f64 },
    /// `clamp(x, min, max)` (also for integers).
    Hardtanh { min: f64, max: f64 },
    LeakyRelu { slope: f64 },
    Elu { alpha: f64, scale: f64, input_scale: f64 },
    Softplus { beta: f64, threshold: f64 },
    Hardswish,
    Hardsigmoid,
    Mish,
    /// `log(z / (1 - z))`, `z` = x clamped to `[eps, 1 - eps]` when `eps` is given.
    Logit { eps: Option<f64> },
    /// `|x| <= lambda ? 0 : x`.
    Hardshrink { lambda: f64 },
    /// `x > lambda ? x - lambda : x < -lambda ? x + lambda : 0`.
    Softshrink { lambda: f64 },
    /// `round(x * 10^d) / 10^d` (`round(x / 10^-d) * 10^-d` for negative `d`), half to even.
    RoundDecimals { decimals: i64 },
}

impl Activation {
    pub fn name(self) -> &'static str {
        match self {
            Activation::Threshold { .. } => "threshold",
            Activation::Hardtanh { .. } => "hardtanh",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Elu { .. } => "elu",
            Activation::Softplus { .. } => "softplus",
            Activation::Hardswish => "hardswish",
            Activation::Hardsigmoid => "hardsigmoid",
            Activation::Mish => "mish",
            Activation::Logit { .. } => "logit",
            Activation::Hardshrink { .. } => "hardshrink",
            Activation::Softshrink { .. } => "softshrink",
            Activation::RoundDecimals { .. } => "round",
        }
    }
}

/// The gradient of an activation: `dst = grad * f'(saved)`, where `saved` is the forward
/// input, or its output where PyTorch saves that (`Sigmoid`, `Tanh`, `Elu` with `is_result`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ActivationGrad {
    /// `threshold_backward`: `saved <= threshold ? 0 : grad` (relu's backward with 0).
    Threshold { threshold: f64 },
    Hardtanh { min: f64, max: f64 },
    LeakyRelu { slope: f64 },
    Elu { alpha: f64, scale: f64, input_scale: f64, is_result: bool },
    Softplus { beta: f64, threshold: f64 },
    Hardswish,
    Hardsigmoid,
    Mish,
    /// `grad / (x (1 - x))`; outside `[eps, 1 - eps]` 0 (with `eps`) or NaN outside [0, 1].
    Logit { eps: Option<f64> },
    /// hardshrink and softshrink: `|x| <= lambda ? 0 : grad`.
    Shrink { lambda: f64 },
    GeluErf,
    GeluTanh,
    Silu,
    Sigmoid,
    Tanh,
}

impl ActivationGrad {
    pub fn name(self) -> &'static str {
        use ActivationGrad::*;
        match self {
            Threshold { .. } => "threshold_backward",
            Hardtanh { .. } => "hardtanh_backward",
            LeakyRelu { .. } => "leaky_relu_backward",
            Elu { .. } => "elu_backward",
            Softplus { .. } => "softplus_backward",
            Hardswish => "hardswish_backward",
            Hardsigmoid => "hardsigmoid_backward",
            Mish => "mish_backward",
            Logit { .. } => "logit_backward",
            Shrink { .. } => "hardshrink_backward",
            GeluErf | GeluTanh => "gelu_backward",
            Silu => "silu_backward",
            Sigmoid => "sigmoid_backward",
            Tanh => "tanh_backward",
        }
    }
}

/// `dst = op(src)`, computing in `compute` (f16/bf16 in f32, rounded once).
pub fn activation(op: Activation, dst: &View, src: &View, compute: DType) -> Result<(), KernelError> {
    let name = op.name();
    reject_complex(name, &[dst.dtype, src.dtype, compute])?;
    let int_ok = matches!(op, Activation::Threshold { .. } | Activation::Hardtanh { .. });
    match compute {
        DType::F16 | DType::BF16 => forward_float::<f32>(op, dst, src, Some(compute)),
        DType::F32 => forward_float::<f32>(op, dst, src, None),
        DType::F64 => forward_float::<f64>(op, dst, src, None),
        DType::U8 if int_ok => forward_int::<u8>(op, dst, src),
        DType::I8 if int_ok => forward_int::<i8>(op, dst, src),
        DType::I16 if int_ok => forward_int::<i16>(op, dst, src),
        DType::I32 if int_ok => forward_int::<i32>(op, dst, src),
        DType::I64 if int_ok => forward_int::<i64>(op, dst, src),
        d => Err(not_implemented(&format!("{name}_cpu"), d)),
    }
}

fn forward_float<F: Float>(op: Activation, dst: &View, src: &View, via: Option<DType>) -> Result<(), KernelError> {
    drive::<F, F, 1>(
        op.name(),
        dst,
        [Input::View(src, loader::<F>(src.dtype, via))],
        via.is_none(),
        storer::<F>(dst.dtype, via),
        via.is_none(),
        &|[a], out| {
            forward_kernel::<F>(op, a, out);
            Ok(())
        },
    )
}

with_avx2!(fn forward_kernel<F: Float>(op: Activation, a: &Arg<F>, out: &mut [F]) => forward_body);

#[inline(always)]
fn forward_body<F: Float>(op: Activation, a: &Arg<F>, out: &mut [F]) {
    let zero = F::ZERO;
    match op {
        Activation::Threshold { threshold, value } => {
            let (t, v) = (F::c(threshold), F::c(value));
            map1!(a, out, |x: F| if x <= t { v } else { x })
        }
        // clamp: min(max(x, lo), hi), so hi wins when lo > hi; NaN passes through
        Activation::Hardtanh { min, max } => {
            let (lo, hi) = (F::c(min), F::c(max));
            map1!(a, out, |x: F| {
                let y = if x < lo { lo } else { x };
                if y > hi {
                    hi
                } else {
                    y
                }
            })
        }
        Activation::LeakyRelu { slope } => {
            let s = F::c(slope);
            map1!(a, out, |x: F| if x > zero { x } else { x * s })
        }
        Activation::Elu { alpha, scale, input_scale } => {
            let (neg, pos, ins) = (F::c(alpha * scale), F::c(scale), F::c(input_scale));
            map1!(a, out, |x: F| if x <= zero { (x * ins).exp_m1() * neg } else { x * pos })
        }
        Activation::Softplus { beta, threshold } => {
            let (b, t) = (F::c(beta), F::c(threshold));
            map1!(a, out, |x: F| if x * b > t { x } else { (x * b).vexp().ln_1p() / b })
        }
        Activation::Hardswish => {
            let (three, six) = (F::c(3.0), F::c(6.0));
            map1!(a, out, |x: F| x * clamp(x + three, zero, six) / six)
        }
        Activation::Hardsigmoid => {
            let (three, six) = (F::c(3.0), F::c(6.0));
            map1!(a, out, |x: F| clamp(x + three, zero, six) / six)
        }
        Activation::Mish => map1!(a, out, |x: F| x * x.vexp().ln_1p().vtanh()),
        Activation::Logit { eps: None } => map1!(a, out, |x: F| (x / (F::ONE - x)).ln()),
        Activation::Logit { eps: Some(e) } => {
            let (lo, hi) = (F::c(e), F::ONE - F::c(e));
            map1!(a, out, |x: F| {
                let z = if x < lo { lo } else if x > hi { hi } else { x };
                (z / (F::ONE - z)).ln()
            })
        }
        Activation::Hardshrink { lambda } => {
            let l = F::c(lambda);
            map1!(a, out, |x: F| if x >= -l && x <= l { zero } else { x })
        }
        Activation::Softshrink { lambda } => {
            let l = F::c(lambda);
            // x * 0 keeps NaN
            map1!(a, out, |x: F| if x > l { x - l } else if x < -l { x + l } else { x * zero })
        }
        Activation::RoundDecimals { decimals } => {
            // the power of ten in the compute type, as PyTorch's CPU kernel
            let p = F::c(10f64.powi(decimals.unsigned_abs().min(400) as i32));
            if decimals < 0 {
                map1!(a, out, |x: F| (x / p).round_even() * p)
            } else {
                map1!(a, out, |x: F| (x * p).round_even() / p)
            }
        }
    }
}

/// min(max(x, lo), hi) with NaN propagating.
#[inline(always)]
fn clamp<F: Float>(x: F, lo: F, hi: F) -> F {
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

fn forward_int<I: Int>(op: Activation, dst: &View, src: &View) -> Result<(), KernelError> {
    // PyTorch converts the parameters to the integer type (truncating).
    let cast = |v: f64| I::from_f64(v);
    drive::<I, I, 1>(
        op.name(),
        dst,
        [Input::View(src, loader::<I>(src.dtype, None))],
        true,
        storer::<I>(dst.dtype, None),
        true,
        &|[a], out| {
            match op {
                Activation::Threshold { threshold, value } => {
                    let (t, v) = (cast(threshold), cast(value));
                    map1!(a, out, |x: I| if x <= t { v } else { x })
                }
                Activation::Hardtanh { min, max } => {
                    let (lo, hi) = (cast(min), cast(max));
                    map1!(a, out, |x: I| x.max(lo).min(hi))
                }
                _ => unreachable!("checked by activation()"),
            }
            Ok(())
        },
    )
}

/// `dst = grad * op'(saved)` for floating dtypes (computing in `compute`).
pub fn activation_backward(
    op: ActivationGrad,
    dst: &View,
    grad: &View,
    saved: &View,
    compute: DType,
) -> Result<(), KernelError> {
    let name = op.name();
    reject_complex(name, &[dst.dtype, grad.dtype, saved.dtype, compute])?;
    match compute {
        DType::F16 | DType::BF16 => backward_float::<f32>(op, dst, grad, saved, Some(compute)),
        DType::F32 => backward_float::<f32>(op, dst, grad, saved, None),
        DType::F64 => backward_float::<f64>(op, dst, grad, saved, None),
        d => Err(not_implemented(&format!("{name}_cpu"), d)),
    }
}

fn backward_float<F: Float>(
    op: ActivationGrad,
    dst: &View,
    grad: &View,
    saved: &View,
    via: Option<DType>,
) -> Result<(), KernelError> {
    drive::<F, F, 2>(
        op.name(),
        dst,
        [Input::View(grad, loader::<F>(grad.dtype, via)), Input::View(saved, loader::<F>(saved.dtype, via))],
        via.is_none(),
        storer::<F>(dst.dtype, via),
        via.is_none(),
        &|[g, s], out| {
            backward_kernel::<F>(op, g, s, out);
            Ok(())
        },
    )
}

/// sqrt(2 / pi) and the cubic coefficient of the tanh approximation of GELU.
const GELU_BETA: f64 = 0.797_884_560_802_865_4;
const GELU_KAPPA: f64 = 0.044715;

with_avx2!(fn backward_kernel<F: Float>(op: ActivationGrad, g: &Arg<F>, s: &Arg<F>, out: &mut [F]) => backward_body);

#[inline(always)]
fn backward_body<F: Float>(op: ActivationGrad, g: &Arg<F>, s: &Arg<F>, out: &mut [F]) {
    use ActivationGrad::*;
    let (zero, one, half) = (F::ZERO, F::ONE, F::c(0.5));
    match op {
        Threshold { threshold } => {
            let t = F::c(threshold);
            map2!(g, s, out, |dy: F, x: F| if x <= t { zero } else { dy })
        }
        Hardtanh { min, max } => {
            let (lo, hi) = (F::c(min), F::c(max));
            map2!(g, s, out, |dy: F, x: F| if x <= lo || x >= hi { zero } else { dy })
        }
        LeakyRelu { slope } => {
            let k = F::c(slope);
            map2!(g, s, out, |dy: F, x: F| if x > zero { dy } else { dy * k })
        }
        Elu { alpha, scale, input_scale, is_result } => {
            let (neg, pos, ins) = (F::c(alpha * scale), F::c(scale), F::c(input_scale));
            if is_result {
                map2!(g, s, out, |dy: F, y: F| if y <= zero { dy * ins * (y + neg) } else { dy * pos })
            } else {
                map2!(g, s, out, |dy: F, x: F| if x <= zero { dy * ins * neg * (x * ins).vexp() } else { dy * pos })
            }
        }
        Softplus { beta, threshold } => {
            let (b, t) = (F::c(beta), F::c(threshold));
            map2!(g, s, out, |dy: F, x: F| {
                let z = (x * b).vexp();
                if x * b > t {
                    dy
                } else {
                    dy * z / (z + one)
                }
            })
        }
        Hardswish => {
            let three = F::c(3.0);
            // PyTorch 2.15: 0 at x = -3, grad at x = 3
            map2!(g, s, out, |dy: F, x: F| {
                if x <= -three {
                    zero
                } else if x < three {
                    dy * (x / three + half)
                } else {
                    dy
                }
            })
        }
        Hardsigmoid => {
            let (three, sixth) = (F::c(3.0), F::c(1.0 / 6.0));
            map2!(g, s, out, |dy: F, x: F| if x > -three && x < three { dy * sixth } else { zero })
        }
        Mish => map2!(g, s, out, |dy: F, x: F| {
            let sig = one / (one + (-x).vexp());
            let t = x.vexp().ln_1p().vtanh();
            dy * (t + x * sig * (one - t * t))
        }),
        GeluErf => {
            let k = F::c(std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2 * 0.5);
            map2!(g, s, out, |dy: F, x: F| {
                let cdf = half * (one + x.gelu_erf());
                let pdf = (-half * x * x).vexp() * k;
                dy * (cdf + x * pdf)
            })
        }
        GeluTanh => {
            let (b, kappa) = (F::c(GELU_BETA), F::c(GELU_KAPPA));
            let three = F::c(3.0);
            map2!(g, s, out, |dy: F, x: F| {
                let x2 = x * x;
                let t = (b * (x + kappa * x2 * x)).vtanh();
                let left = half * x;
                let right = one + t;
                let dleft = half * right;
                let dright = left * (one - t * t) * b * (one + three * kappa * x2);
                dy * (dleft + dright)
            })
        }
        Silu => map2!(g, s, out, |dy: F, x: F| {
            let sig = one / (one + (-x).vexp());
            dy * sig * (one + x * (one - sig))
        }),
        Logit { eps: None } => map2!(g, s, out, |dy: F, x: F| if x < zero || x > one { F::NAN } else { dy / (x * (one - x)) }),
        Logit { eps: Some(e) } => {
            let (lo, hi) = (F::c(e), one - F::c(e));
            map2!(g, s, out, |dy: F, x: F| if x < lo || x > hi { zero } else { dy / (x * (one - x)) })
        }
        Shrink { lambda } => {
            let l = F::c(lambda);
            map2!(g, s, out, |dy: F, x: F| if x >= -l && x <= l { zero } else { dy })
        }
        Sigmoid => map2!(g, s, out, |dy: F, y: F| dy * (one - y) * y),
        Tanh => map2!(g, s, out, |dy: F, y: F| dy * (one - y * y)),
    }
}
