//! Activations against f64 references, and their gradients against central finite differences
//! of those references (so a wrong derivative formula cannot agree with itself).

mod common;

use common::*;
use npu_kernels::{activation, activation_backward, Activation, ActivationGrad, DType, View};

const FLOATS: [DType; 4] = [DType::F32, DType::F64, DType::F16, DType::BF16];

fn erf(x: f64) -> f64 {
    // Abramowitz-Stegun 7.1.26 is too coarse; integrate instead (Simpson, fine grid).
    let n = 2000;
    let h = x / n as f64;
    let f = |t: f64| (-t * t).exp();
    let mut s = f(0.0) + f(x);
    for i in 1..n {
        s += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
    }
    s * h / 3.0 * std::f64::consts::FRAC_2_SQRT_PI
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn forward(op: Activation, x: f64) -> f64 {
    match op {
        Activation::Threshold { threshold, value } => if x <= threshold { value } else { x },
        Activation::Hardtanh { min, max } => x.clamp(min, max),
        Activation::LeakyRelu { slope } => if x > 0.0 { x } else { x * slope },
        Activation::Elu { alpha, scale, input_scale } => {
            if x > 0.0 { x * scale } else { alpha * scale * ((x * input_scale).exp() - 1.0) }
        }
        Activation::Softplus { beta, threshold } => {
            if x * beta > threshold { x } else { (1.0 + (x * beta).exp()).ln() / beta }
        }
        Activation::Hardswish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
        Activation::Hardsigmoid => (x + 3.0).clamp(0.0, 6.0) / 6.0,
        Activation::Mish => x * (1.0 + x.exp()).ln().tanh(),
        Activation::Logit { eps } => {
            let z = eps.map_or(x, |e| x.clamp(e, 1.0 - e));
            (z / (1.0 - z)).ln()
        }
        Activation::Hardshrink { lambda } => if x.abs() <= lambda { 0.0 } else { x },
        Activation::Softshrink { lambda } => if x > lambda { x - lambda } else if x < -lambda { x + lambda } else { 0.0 },
        Activation::RoundDecimals { decimals } => {
            let p = 10f64.powi(decimals.abs() as i32);
            if decimals < 0 { (x / p).round_ties_even() * p } else { (x * p).round_ties_even() / p }
        }
    }
}

/// The forward of a gradient op, as a function of x.
fn forward_of(op: ActivationGrad) -> Box<dyn Fn(f64) -> f64> {
    use ActivationGrad as G;
    match op {
        G::Threshold { threshold } => Box::new(move |x| forward(Activation::Threshold { threshold, value: 0.0 }, x)),
        G::Hardtanh { min, max } => Box::new(move |x| forward(Activation::Hardtanh { min, max }, x)),
        G::LeakyRelu { slope } => Box::new(move |x| forward(Activation::LeakyRelu { slope }, x)),
        G::Elu { alpha, scale, input_scale, .. } => Box::new(move |x| forward(Activation::Elu { alpha, scale, input_scale }, x)),
        G::Softplus { beta, threshold } => Box::new(move |x| forward(Activation::Softplus { beta, threshold }, x)),
        G::Hardswish => Box::new(|x| forward(Activation::Hardswish, x)),
        G::Hardsigmoid => Box::new(|x| forward(Activation::Hardsigmoid, x)),
        G::Mish => Box::new(|x| forward(Activation::Mish, x)),
        G::Logit { eps } => Box::new(move |x| forward(Activation::Logit { eps }, x)),
        G::Shrink { lambda } => Box::new(move |x| forward(Activation::Softshrink { lambda }, x)),
        G::GeluErf => Box::new(|x| 0.5 * x * (1.0 + erf(x / 2f64.sqrt()))),
        G::GeluTanh => Box::new(|x| 0.5 * x * (1.0 + (0.797_884_560_802_865_4 * (x + 0.044715 * x * x * x)).tanh())),
        G::Silu => Box::new(|x| x * sigmoid(x)),
        G::Sigmoid => Box::new(sigmoid),
        G::Tanh => Box::new(f64::tanh),
    }
}

/// Whether the op's kernel takes the forward output rather than the input.
fn saves_output(op: ActivationGrad) -> bool {
    matches!(op, ActivationGrad::Sigmoid | ActivationGrad::Tanh | ActivationGrad::Elu { is_result: true, .. })
}

/// Sample points: a grid that avoids the kinks (0, ±3, thresholds) by an offset.
fn points() -> Vec<f64> {
    (0..97).map(|i| -6.0 + i as f64 * 0.125 + 0.0371).collect()
}

fn filled(dt: DType, vals: &[f64], strided: bool) -> (Buf, View) {
    let n = vals.len() as i64;
    let step = if strided { 2 } else { 1 };
    let mut b = Buf::new(dt, (n * step) as usize);
    for (i, &v) in vals.iter().enumerate() {
        b.set(i as i64 * step, &write(dt, V::F(v)));
    }
    let v = b.view(&[n], &[step], 0);
    (b, v)
}

fn tolerance(dt: DType) -> f64 {
    match dt {
        DType::F64 => 1e-9,
        DType::F32 => 2e-5,
        DType::F16 => 4e-3,
        _ => 3e-2,
    }
}

fn close(dt: DType, got: f64, want: f64) -> bool {
    let t = tolerance(dt);
    (got - want).abs() <= t * (1.0 + want.abs())
}

#[test]
fn forward_matches_reference() {
    let ops = [
        Activation::Threshold { threshold: 0.5, value: -2.0 },
        Activation::Hardtanh { min: -1.5, max: 2.0 },
        Activation::LeakyRelu { slope: 0.01 },
        Activation::Elu { alpha: 1.3, scale: 1.05, input_scale: 0.9 },
        Activation::Softplus { beta: 2.0, threshold: 5.0 },
        Activation::Hardswish,
        Activation::Hardsigmoid,
        Activation::Mish,
        Activation::Logit { eps: Some(0.2) },
        Activation::Hardshrink { lambda: 0.5 },
        Activation::Softshrink { lambda: 0.7 },
        Activation::RoundDecimals { decimals: 1 },
        Activation::RoundDecimals { decimals: -1 },
    ];
    for op in ops {
        for dt in FLOATS {
            for strided in [false, true] {
                let xs: Vec<f64> = points().iter().map(|&x| read(dt, &write(dt, V::F(x))).real()).collect();
                let (_s, sv) = filled(dt, &xs, strided);
                let (d, dv) = Buf::contiguous(dt, &[xs.len() as i64]);
                let compute = dt;
                activation(op, &dv, &sv, compute).unwrap();
                for (i, &x) in xs.iter().enumerate() {
                    let got = d.f64s()[i];
                    let want = forward(op, x);
                    assert!(close(dt, got, want), "{op:?} {dt:?} x={x}: got {got}, want {want}");
                }
            }
        }
    }
}

/// logit without eps on (0, 1), and its gradient's NaN outside [0, 1].
#[test]
fn logit_without_eps() {
    let xs: Vec<f64> = (1..40).map(|i| i as f64 / 40.0).chain([-0.5, 1.5]).collect();
    let (_s, sv) = filled(DType::F64, &xs, false);
    let (d, dv) = Buf::contiguous(DType::F64, &[xs.len() as i64]);
    activation(Activation::Logit { eps: None }, &dv, &sv, DType::F64).unwrap();
    let (g, gv) = Buf::contiguous(DType::F64, &[xs.len() as i64]);
    let ones = vec![1.0; xs.len()];
    let (_o, ov) = filled(DType::F64, &ones, false);
    activation_backward(ActivationGrad::Logit { eps: None }, &gv, &ov, &sv, DType::F64).unwrap();
    for (i, &x) in xs.iter().enumerate() {
        let (y, dy) = (d.f64s()[i], g.f64s()[i]);
        if (0.0..=1.0).contains(&x) {
            assert!((y - (x / (1.0 - x)).ln()).abs() < 1e-12 && (dy - 1.0 / (x * (1.0 - x))).abs() < 1e-9, "x={x}");
        } else {
            assert!(y.is_nan() && dy.is_nan(), "x={x}");
        }
    }
}

#[test]
fn integer_threshold_and_hardtanh() {
    let xs: Vec<f64> = (-5..6).map(|i| i as f64).collect();
    for dt in [DType::I64, DType::I32, DType::I8, DType::U8] {
        for op in [Activation::Threshold { threshold: 1.0, value: 7.0 }, Activation::Hardtanh { min: 0.0, max: 3.0 }] {
            let xs: Vec<f64> = xs.iter().map(|&x| read(dt, &write(dt, V::I(x as i64))).real()).collect();
            let (mut s, sv) = Buf::contiguous(dt, &[xs.len() as i64]);
            for (i, &x) in xs.iter().enumerate() {
                s.set(i as i64, &write(dt, V::I(x as i64)));
            }
            let (d, dv) = Buf::contiguous(dt, &[xs.len() as i64]);
            activation(op, &dv, &sv, dt).unwrap();
            let want: Vec<f64> = xs.iter().map(|&x| forward(op, x)).collect();
            assert_eq!(d.f64s(), want, "{op:?} {dt:?}");
        }
    }
    let (_s, sv) = Buf::contiguous(DType::I32, &[3]);
    let (_d, dv) = Buf::contiguous(DType::I32, &[3]);
    assert!(activation(Activation::Mish, &dv, &sv, DType::I32).unwrap_err().0.contains("not implemented"));
}

#[test]
fn backward_matches_finite_differences() {
    use ActivationGrad as G;
    let ops = [
        G::Threshold { threshold: 0.5 },
        G::Hardtanh { min: -1.5, max: 2.0 },
        G::LeakyRelu { slope: 0.2 },
        G::Elu { alpha: 1.3, scale: 1.05, input_scale: 0.9, is_result: false },
        G::Elu { alpha: 1.3, scale: 1.05, input_scale: 0.9, is_result: true },
        G::Softplus { beta: 2.0, threshold: 5.0 },
        G::Hardswish,
        G::Hardsigmoid,
        G::Mish,
        G::Logit { eps: Some(0.2) },
        G::Shrink { lambda: 0.5 },
        G::GeluErf,
        G::GeluTanh,
        G::Silu,
        G::Sigmoid,
        G::Tanh,
    ];
    for op in ops {
        let f = forward_of(op);
        for dt in FLOATS {
            let xs = points();
            // the exact derivative of the reference, by central differences in f64
            let h = 1e-6;
            let deriv: Vec<f64> = xs.iter().map(|&x| (f(x + h) - f(x - h)) / (2.0 * h)).collect();
            let grads: Vec<f64> = (0..xs.len()).map(|i| read(dt, &write(dt, V::F(1.0 + (i % 5) as f64 * 0.25))).real()).collect();
            let saved: Vec<f64> = xs.iter().map(|&x| if saves_output(op) { f(x) } else { x }).collect();
            let saved: Vec<f64> = saved.iter().map(|&v| read(dt, &write(dt, V::F(v))).real()).collect();
            let (_g, gv) = filled(dt, &grads, true);
            let (_s, sv) = filled(dt, &saved, false);
            let (d, dv) = Buf::contiguous(dt, &[xs.len() as i64]);
            activation_backward(op, &dv, &gv, &sv, dt).unwrap();
            for i in 0..xs.len() {
                let got = d.f64s()[i];
                let want = grads[i] * deriv[i];
                // f16/bf16 round the saved value, which moves the derivative a little more
                // (f64 is held to the accuracy of the finite difference itself, ~1e-7)
                let ok = close(dt, got, want) || (dt == DType::F64 && (got - want).abs() < 1e-7 * (1.0 + want.abs())) || (dt != DType::F64 && dt != DType::F32 && (got - want).abs() < 0.05 * (1.0 + want.abs()));
                assert!(ok, "{op:?} {dt:?} x={}: got {got}, want {want}", xs[i]);
            }
        }
    }
}
