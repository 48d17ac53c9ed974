//! The fused optimizer steps behind `torch.optim.Adam/AdamW/SGD(fused=True)`: one pass over each
//! parameter that reads the gradient and the state and writes the parameter and the state, with
//! the formulas of PyTorch's fused kernels (math in f32 for f16/bf16/f32, in f64 for f64). A
//! gradient scale (GradScaler) divides the gradient first and the unscaled gradient is stored
//! back, as the CUDA kernels do.

use crate::elementwise::{loader, storer, LoadFn, StoreFn};
use crate::math::Float;
use crate::view::{err, par_ranges, Ptr, View};
use crate::{DType, Element, KernelError};

#[derive(Clone, Copy, Debug)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    pub eps: f64,
    pub amsgrad: bool,
    pub maximize: bool,
    /// Decoupled weight decay (AdamW) instead of L2 added to the gradient (Adam).
    pub decoupled: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct SgdConfig {
    pub lr: f64,
    pub weight_decay: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub nesterov: bool,
    pub maximize: bool,
    pub first_step: bool,
}

const CHUNK: usize = 2048;

/// The element count when every view has `first`'s sizes and strides and that layout is
/// non-overlapping and dense (so the elements are `numel` consecutive slots from `ptr`).
/// Reads no data: callers check on the host before launching.
pub fn fused_layout(op: &str, views: &[&View]) -> Result<usize, KernelError> {
    let first = views[0];
    for v in views {
        v.validate(op)?;
        v.check_writable(op)?;
        if v.sizes != first.sizes || (v.numel() > 1 && v.strides != first.strides) {
            return Err(err(op, format!("tensors of one parameter must share sizes and strides: {:?}/{:?} and {:?}/{:?}", first.sizes, first.strides, v.sizes, v.strides)));
        }
        if !v.dtype.is_floating() || v.dtype.is_complex() {
            return Err(err(op, format!("expected floating point tensors, got {}", v.dtype.name())));
        }
    }
    let mut dims: Vec<(i64, i64)> = first.sizes.iter().copied().zip(first.strides.iter().copied()).filter(|d| d.0 > 1).collect();
    dims.sort_by_key(|d| d.1);
    let mut expect = 1;
    for (size, stride) in dims {
        if stride != expect {
            return Err(err(op, format!("parameters must be dense (non-overlapping, no gaps), got strides {:?}", first.strides)));
        }
        expect *= size;
    }
    Ok(first.numel())
}

/// Chunked load/compute/store over several dense operands of possibly different dtypes.
struct Lanes<F: Element> {
    ptrs: Vec<(Ptr, usize, LoadFn<F>, StoreFn<F>)>,
}

impl<F: Element + Float> Lanes<F> {
    fn new(views: &[&View]) -> Lanes<F> {
        Lanes { ptrs: views.iter().map(|v| (Ptr::new(v.ptr), v.dtype.size(), loader::<F>(v.dtype, None), storer::<F>(v.dtype, None))).collect() }
    }

    /// Runs `f(chunk buffers)` over every chunk of `n` elements, in parallel; buffers listed in
    /// `write` are stored back.
    fn run(&self, n: usize, write: &[usize], f: impl Fn(&mut [Vec<F>]) + Sync) {
        let chunks = n.div_ceil(CHUNK);
        par_ranges(chunks, 8, |cs| {
            let mut bufs: Vec<Vec<F>> = self.ptrs.iter().map(|_| vec![F::ZERO; CHUNK]).collect();
            for c in cs {
                let (start, len) = (c * CHUNK, CHUNK.min(n - c * CHUNK));
                for (b, &(p, size, load, _)) in bufs.iter_mut().zip(&self.ptrs) {
                    b.truncate(len);
                    b.resize(len, F::ZERO);
                    unsafe { load(p.byte_at(start as isize, size), 1, b) };
                }
                f(&mut bufs);
                for &w in write {
                    let (p, size, _, store) = self.ptrs[w];
                    unsafe { store(&bufs[w], p.byte_at(start as isize, size), 1) };
                }
            }
        });
    }
}

/// The gradient to step with: divided by the GradScaler's scale (the unscaled value is stored
/// back, as CUDA's fused kernels do) and negated for `maximize`.
#[inline(always)]
fn unscaled<F: Float>(g: &mut F, inv_scale: Option<F>, maximize: bool) -> F {
    if let Some(s) = inv_scale {
        *g = *g * s;
    }
    if maximize { -*g } else { *g }
}

fn compute_f64(param: &View) -> bool {
    param.dtype == DType::F64
}

/// One Adam/AdamW step of one parameter at step number `step` (already incremented).
#[allow(clippy::too_many_arguments)]
pub fn fused_adam(
    param: &View,
    grad: &View,
    exp_avg: &View,
    exp_avg_sq: &View,
    max_exp_avg_sq: Option<&View>,
    step: f64,
    grad_scale: Option<f64>,
    cfg: &AdamConfig,
) -> Result<(), KernelError> {
    let op = if cfg.decoupled { "_fused_adamw_" } else { "_fused_adam_" };
    let mut views = vec![param, grad, exp_avg, exp_avg_sq];
    if cfg.amsgrad {
        views.push(max_exp_avg_sq.ok_or_else(|| err(op, "amsgrad needs max_exp_avg_sqs".into()))?);
    }
    let n = fused_layout(op, &views)?;
    if compute_f64(param) {
        adam_typed::<f64>(&views, n, step, grad_scale, cfg);
    } else {
        adam_typed::<f32>(&views, n, step, grad_scale, cfg);
    }
    Ok(())
}

fn adam_typed<F: Element + Float>(views: &[&View], n: usize, step: f64, grad_scale: Option<f64>, cfg: &AdamConfig) {
    let bc1 = 1.0 - cfg.beta1.powf(step);
    let bc2_sqrt = F::c((1.0 - cfg.beta2.powf(step)).sqrt());
    let step_size = F::c(cfg.lr / bc1);
    let (b1, b2, eps, wd) = (F::c(cfg.beta1), F::c(cfg.beta2), F::c(cfg.eps), F::c(cfg.weight_decay));
    let lr_wd = F::c(cfg.lr * cfg.weight_decay);
    let inv_scale = grad_scale.map(|s| F::c(1.0 / s));
    let mut write = vec![0, 2, 3];
    if grad_scale.is_some() {
        write.push(1);
    }
    if cfg.amsgrad {
        write.push(4);
    }
    Lanes::<F>::new(views).run(n, &write, |b| {
        let (p, rest) = b.split_at_mut(1);
        let (g, rest) = rest.split_at_mut(1);
        let (m, rest) = rest.split_at_mut(1);
        let (v, rest) = rest.split_at_mut(1);
        let mut mx = rest.first_mut();
        for i in 0..p[0].len() {
            let mut gi = unscaled(&mut g[0][i], inv_scale, cfg.maximize);
            let mut pi = p[0][i];
            if cfg.weight_decay != 0.0 {
                if cfg.decoupled {
                    pi = pi - lr_wd * pi;
                } else {
                    gi = gi + pi * wd;
                }
            }
            let mi = b1 * m[0][i] + (F::ONE - b1) * gi;
            let vi = b2 * v[0][i] + (F::ONE - b2) * gi * gi;
            let denom_src = match mx.as_deref_mut() {
                Some(mx) => {
                    let x = if mx[i] > vi { mx[i] } else { vi };
                    mx[i] = x;
                    x
                }
                None => vi,
            };
            let denom = denom_src.sqrt() / bc2_sqrt + eps;
            p[0][i] = pi - step_size * mi / denom;
            m[0][i] = mi;
            v[0][i] = vi;
        }
    });
}

/// One SGD step of one parameter (momentum buffer given when momentum != 0).
pub fn fused_sgd(param: &View, grad: &View, momentum_buf: Option<&View>, grad_scale: Option<f64>, cfg: &SgdConfig) -> Result<(), KernelError> {
    let op = "_fused_sgd_";
    let mut views = vec![param, grad];
    if cfg.momentum != 0.0 {
        views.push(momentum_buf.ok_or_else(|| err(op, "momentum != 0 needs momentum buffers".into()))?);
    }
    let n = fused_layout(op, &views)?;
    if compute_f64(param) {
        sgd_typed::<f64>(&views, n, grad_scale, cfg);
    } else {
        sgd_typed::<f32>(&views, n, grad_scale, cfg);
    }
    Ok(())
}

fn sgd_typed<F: Element + Float>(views: &[&View], n: usize, grad_scale: Option<f64>, cfg: &SgdConfig) {
    let (lr, wd, mom, damp) = (F::c(cfg.lr), F::c(cfg.weight_decay), F::c(cfg.momentum), F::c(cfg.dampening));
    let inv_scale = grad_scale.map(|s| F::c(1.0 / s));
    let mut write = vec![0];
    if grad_scale.is_some() {
        write.push(1);
    }
    if cfg.momentum != 0.0 {
        write.push(2);
    }
    Lanes::<F>::new(views).run(n, &write, |b| {
        let (p, rest) = b.split_at_mut(1);
        let (g, rest) = rest.split_at_mut(1);
        let mut buf = rest.first_mut();
        for i in 0..p[0].len() {
            let mut gi = unscaled(&mut g[0][i], inv_scale, cfg.maximize);
            if cfg.weight_decay != 0.0 {
                gi = gi + wd * p[0][i];
            }
            if let Some(buf) = buf.as_deref_mut() {
                let bi = if cfg.first_step { gi } else { mom * buf[i] + (F::ONE - damp) * gi };
                buf[i] = bi;
                gi = if cfg.nesterov { gi + mom * bi } else { bi };
            }
            p[0][i] = p[0][i] - lr * gi;
        }
    });
}
