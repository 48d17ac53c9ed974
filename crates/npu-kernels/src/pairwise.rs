//! Elementwise losses of an input and a target (before any reduction) and their gradients,
//! plus log_sigmoid and glu, with the formulas of PyTorch's CPU kernels (`Loss.cpp`,
//! `Activation.cpp`). Float compute: f16/bf16 in f32 rounded once, f64 in f64.

use crate::binary::{binary, BinaryOp};
use crate::dense::Dense;
use crate::dtype::DType;
use crate::loss::Reduction;
use crate::reduce::{reduce, ReduceOp};
use crate::scalar::Scalar;
use crate::elementwise::{drive, loader, map1, map2, not_implemented, reject_complex, storer, Input};
use crate::math::Float;
use crate::view::View;
use crate::KernelError;

/// The elementwise loss of input x and target t.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PairLoss {
    /// (x - t)²
    Mse,
    /// |d| < beta ? 0.5 d² / beta : |d| - 0.5 beta (beta = 0: |d|)
    SmoothL1 { beta: f64 },
    /// |d| < delta ? 0.5 d² : delta (|d| - 0.5 delta)
    Huber { delta: f64 },
    /// (t - 1) log1p(-x) - t log x, each log clamped at -100
    Bce,
    /// glu's forward: x · sigmoid(t) (x and t the two halves)
    Glu,
}

impl PairLoss {
    pub fn name(self) -> &'static str {
        match self {
            PairLoss::Mse => "mse_loss",
            PairLoss::SmoothL1 { .. } => "smooth_l1_loss",
            PairLoss::Huber { .. } => "huber_loss",
            PairLoss::Bce => "binary_cross_entropy",
            PairLoss::Glu => "glu",
        }
    }
}

/// Which derivative [`pair_backward`] writes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PairGrad {
    /// d loss / d x of a [`PairLoss`] (for Glu: with respect to the first half).
    Input(PairLoss),
    /// glu's gradient with respect to the gate (second half).
    GluGate,
}

fn compute_of(dtype: DType) -> Option<DType> {
    matches!(dtype, DType::F16 | DType::BF16).then_some(dtype)
}

/// `dst = loss(x, t)` elementwise (all of one float dtype, equal sizes; broadcast views allowed).
pub fn pair_loss(loss: PairLoss, dst: &View, x: &View, t: &View) -> Result<(), KernelError> {
    let name = loss.name();
    reject_complex(name, &[dst.dtype, x.dtype, t.dtype])?;
    match x.dtype {
        DType::F64 => forward::<f64>(loss, dst, x, t, None),
        DType::F32 | DType::F16 | DType::BF16 => forward::<f32>(loss, dst, x, t, compute_of(x.dtype)),
        d => Err(not_implemented(name, d)),
    }
}

fn forward<F: Float>(loss: PairLoss, dst: &View, x: &View, t: &View, via: Option<DType>) -> Result<(), KernelError> {
    drive::<F, F, 2>(
        loss.name(),
        dst,
        [Input::View(x, loader::<F>(x.dtype, via)), Input::View(t, loader::<F>(t.dtype, via))],
        via.is_none(),
        storer::<F>(dst.dtype, via),
        via.is_none(),
        &|[a, b], out| {
            let (zero, half, one) = (F::ZERO, F::c(0.5), F::ONE);
            match loss {
                PairLoss::Mse => map2!(a, b, out, |x: F, t: F| (x - t) * (x - t)),
                PairLoss::SmoothL1 { beta } => {
                    let bt = F::c(beta);
                    map2!(a, b, out, |x: F, t: F| {
                        let d = (x - t).abs();
                        if d < bt { half * d * d / bt } else { d - half * bt }
                    })
                }
                PairLoss::Huber { delta } => {
                    let dl = F::c(delta);
                    map2!(a, b, out, |x: F, t: F| {
                        let d = (x - t).abs();
                        if d < dl { half * d * d } else { dl * (d - half * dl) }
                    })
                }
                PairLoss::Bce => {
                    let floor = F::c(-100.0);
                    let clamp = |v: F| if v > floor { v } else { floor };
                    map2!(a, b, out, |x: F, t: F| (t - one) * clamp((zero - x).ln_1p()) - t * clamp(x.ln()))
                }
                PairLoss::Glu => map2!(a, b, out, |x: F, g: F| x / (one + (zero - g).vexp())),
            }
            Ok(())
        },
    )
}

/// `dst = grad · ∂loss/∂x · norm` (or glu's gate gradient), elementwise over (grad, x, t).
pub fn pair_backward(which: PairGrad, dst: &View, grad: &View, x: &View, t: &View, norm: f64) -> Result<(), KernelError> {
    let name = match which {
        PairGrad::Input(l) => l.name(),
        PairGrad::GluGate => "glu_backward",
    };
    reject_complex(name, &[dst.dtype, grad.dtype, x.dtype, t.dtype])?;
    match x.dtype {
        DType::F64 => backward::<f64>(which, name, dst, grad, x, t, norm, None),
        DType::F32 | DType::F16 | DType::BF16 => backward::<f32>(which, name, dst, grad, x, t, norm, compute_of(x.dtype)),
        d => Err(not_implemented(name, d)),
    }
}

#[allow(clippy::too_many_arguments)]
fn backward<F: Float>(which: PairGrad, name: &str, dst: &View, grad: &View, x: &View, t: &View, norm: f64, via: Option<DType>) -> Result<(), KernelError> {
    drive::<F, F, 3>(
        name,
        dst,
        [
            Input::View(grad, loader::<F>(grad.dtype, via)),
            Input::View(x, loader::<F>(x.dtype, via)),
            Input::View(t, loader::<F>(t.dtype, via)),
        ],
        via.is_none(),
        storer::<F>(dst.dtype, via),
        via.is_none(),
        &|[g, a, b], out| {
            let (zero, one, k) = (F::ZERO, F::ONE, F::c(norm));
            let each = |out: &mut [F], f: &dyn Fn(F, F, F) -> F| {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = f(g.get(i), a.get(i), b.get(i));
                }
            };
            match which {
                PairGrad::Input(PairLoss::Mse) => each(out, &|g, x, t| F::c(2.0) * (x - t) * g * k),
                PairGrad::Input(PairLoss::SmoothL1 { beta }) => {
                    let bt = F::c(beta);
                    each(out, &|g, x, t| {
                        let d = x - t;
                        let s = if d <= -bt { -one } else if d >= bt { one } else { d / bt };
                        s * g * k
                    })
                }
                PairGrad::Input(PairLoss::Huber { delta }) => {
                    let dl = F::c(delta);
                    each(out, &|g, x, t| {
                        let d = x - t;
                        let s = if d <= -dl { -dl } else if d >= dl { dl } else { d };
                        s * g * k
                    })
                }
                PairGrad::Input(PairLoss::Bce) => {
                    let eps = F::c(1e-12);
                    each(out, &|g, x, t| {
                        let den = (one - x) * x;
                        g * k * (x - t) / if den > eps { den } else { eps }
                    })
                }
                PairGrad::Input(PairLoss::Glu) => each(out, &|g, _x, gate| g * k / (one + (zero - gate).vexp())),
                PairGrad::GluGate => each(out, &|g, x, gate| {
                    let s = one / (one + (zero - gate).vexp());
                    g * k * x * s * (one - s)
                }),
            }
            Ok(())
        },
    )
}

/// log_sigmoid: `min(x, 0) - log1p(exp(-|x|))`.
pub fn log_sigmoid(dst: &View, x: &View) -> Result<(), KernelError> {
    let name = "log_sigmoid_forward";
    reject_complex(name, &[dst.dtype, x.dtype])?;
    fn run<F: Float>(dst: &View, x: &View, via: Option<DType>) -> Result<(), KernelError> {
        drive::<F, F, 1>("log_sigmoid_forward", dst, [Input::View(x, loader::<F>(x.dtype, via))], via.is_none(), storer::<F>(dst.dtype, via), via.is_none(), &|[a], out| {
            let zero = F::ZERO;
            map1!(a, out, |x: F| {
                let m = if x < zero { x } else { zero };
                m - (zero - x.abs()).vexp().ln_1p()
            });
            Ok(())
        })
    }
    match x.dtype {
        DType::F64 => run::<f64>(dst, x, None),
        DType::F32 | DType::F16 | DType::BF16 => run::<f32>(dst, x, compute_of(x.dtype)),
        d => Err(not_implemented(name, d)),
    }
}

/// log_sigmoid's gradient: `grad · (x < 0 ? 1 - s : s)` with `s = e/(1+e)`, `e = exp(-|x|)`.
pub fn log_sigmoid_backward(dst: &View, grad: &View, x: &View) -> Result<(), KernelError> {
    let name = "log_sigmoid_backward";
    reject_complex(name, &[dst.dtype, grad.dtype, x.dtype])?;
    fn run<F: Float>(dst: &View, grad: &View, x: &View, via: Option<DType>) -> Result<(), KernelError> {
        drive::<F, F, 2>(
            "log_sigmoid_backward",
            dst,
            [Input::View(grad, loader::<F>(grad.dtype, via)), Input::View(x, loader::<F>(x.dtype, via))],
            via.is_none(),
            storer::<F>(dst.dtype, via),
            via.is_none(),
            &|[g, a], out| {
                let (zero, one) = (F::ZERO, F::ONE);
                map2!(g, a, out, |dy: F, x: F| {
                    let e = (zero - x.abs()).vexp();
                    let s = e / (one + e);
                    if x < zero { dy * (one - s) } else { dy * s }
                });
                Ok(())
            },
        )
    }
    match x.dtype {
        DType::F64 => run::<f64>(dst, grad, x, None),
        DType::F32 | DType::F16 | DType::BF16 => run::<f32>(dst, grad, x, compute_of(x.dtype)),
        d => Err(not_implemented(name, d)),
    }
}

/// A loss with its reduction: `dst` is `x`'s shape (`None`) or 0-dim (`Mean`, `Sum`). The
/// elementwise losses are rounded to `x`'s dtype first and then reduced (f32 accumulation for
/// 16-bit and f32 data, f64 for f64), as PyTorch computes `loss.mean()`; `weight` (broadcast to
/// `x`) multiplies each element before the reduction.
pub fn pair_loss_reduced(loss: PairLoss, dst: &View, x: &View, t: &View, weight: Option<&View>, reduction: Reduction) -> Result<(), KernelError> {
    let staged;
    let elems = if reduction == Reduction::None {
        dst
    } else {
        staged = Dense::zeroed(x.dtype, &x.sizes);
        &staged.view
    };
    pair_loss(loss, elems, x, t)?;
    if let Some(w) = weight {
        binary(BinaryOp::Mul, elems, elems, w, Scalar::Int(1), x.dtype)?;
    }
    let op = match reduction {
        Reduction::None => return Ok(()),
        Reduction::Mean => ReduceOp::Mean,
        Reduction::Sum => ReduceOp::Sum,
    };
    let rank = x.sizes.len();
    let all = View { sizes: vec![1; rank], strides: vec![0; rank], ..dst.clone() };
    let acc = if x.dtype == DType::F64 { DType::F64 } else { DType::F32 };
    reduce(op, &all, elems, &(0..rank).collect::<Vec<_>>(), acc)
}
