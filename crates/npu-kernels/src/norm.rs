//! Normalisation layers: layer_norm (over trailing dims) and batch_norm (per channel, training
//! and eval), forward and backward. Data are staged in f32 (f64 for f64); means and variances
//! accumulate in f64, two-pass, so results match PyTorch's CPU kernels within their tolerances.
//! Sums over rows or images are done in fixed chunks, so results do not depend on the number of
//! threads.

use crate::cpu::with_avx2;
use crate::dense::{check_float, float_compute, Operand, P};
use crate::elementwise::storer;
use crate::lanes::{lane_sum_map, lane_sum_zip, lane_sum_zip3, moment_sum};
use crate::math::Float;
use crate::view::{err, par_ranges, View};
use crate::{DType, KernelError};

fn check_len(op: &str, name: &str, v: &View, n: usize) -> Result<(), KernelError> {
    if v.numel() != n || !v.is_contiguous() {
        return Err(err(op, format!("expected a contiguous {name} of {n} elements, got sizes {:?}", v.sizes)));
    }
    Ok(())
}

/// Writes `vals` (contiguous) into the contiguous view `v`, converting.
unsafe fn store_flat<F: Float>(v: &View, vals: &[F]) {
    storer::<F>(v.dtype, None)(vals, v.ptr, 1);
}

/// The number of rows of a layer norm over rows of `n` elements, after checking that `input`
/// splits into such rows and that `mean` and `rstd` hold one value per row.
fn ln_rows(op: &str, input: &View, mean: &View, rstd: &View, n: usize) -> Result<usize, KernelError> {
    let total = input.numel();
    if n > 0 && total % n != 0 {
        return Err(err(op, format!("input of size {:?} does not split into rows of {n}", input.sizes)));
    }
    let m = if n == 0 { mean.numel() } else { total / n };
    check_len(op, "mean", mean, m)?;
    check_len(op, "rstd", rstd, m)?;
    Ok(m)
}

/// Rows per chunk of the column sums (grad of weight and bias): fixed, for determinism.
const ROWS_PER_CHUNK: usize = 32;

/// `out = (x - mean) * rstd * weight + bias` per row of `n` elements (`input` has `m * n`
/// elements, rows contiguous in its logical order); `mean` and `rstd` get one value per row.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm(
    out: &View,
    mean: &View,
    rstd: &View,
    input: &View,
    weight: Option<&View>,
    bias: Option<&View>,
    n: usize,
    eps: f64,
) -> Result<(), KernelError> {
    const OP: &str = "native_layer_norm";
    let mut all = vec![out, mean, rstd, input];
    all.extend(weight);
    all.extend(bias);
    check_float(OP, &all)?;
    if out.sizes != input.sizes {
        return Err(err(OP, format!("bad sizes: input {:?}, out {:?}", input.sizes, out.sizes)));
    }
    let m = ln_rows(OP, input, mean, rstd, n)?;
    let total = input.numel();
    for w in weight.iter().chain(bias.iter()) {
        check_len(OP, "weight", w, n)?;
    }
    if total == 0 {
        // rows of zero elements (n == 0): the mean is 0/0, as on the CPU
        if m > 0 {
            crate::fill(mean, crate::Scalar::Float(f64::NAN))?;
            crate::fill(rstd, crate::Scalar::Float(f64::NAN))?;
        }
        return Ok(());
    }
    match float_compute(&all) {
        DType::F64 => ln_forward::<f64>(out, mean, rstd, input, weight, bias, m, n, eps),
        _ => ln_forward::<f32>(out, mean, rstd, input, weight, bias, m, n, eps),
    }
}

#[allow(clippy::too_many_arguments)]
fn ln_forward<F: Float>(
    out: &View,
    mean: &View,
    rstd: &View,
    input: &View,
    weight: Option<&View>,
    bias: Option<&View>,
    m: usize,
    n: usize,
    eps: f64,
) -> Result<(), KernelError> {
    let ct = F::DTYPE;
    let x = Operand::of(input, ct)?;
    let w = weight.map(|v| Operand::of(v, ct)).transpose()?;
    let b = bias.map(|v| Operand::of(v, ct)).transpose()?;
    let y = Operand::output(out, ct);
    let (xp, yp) = (P(x.ptr::<F>()), P(y.ptr::<F>()));
    let (wp, bp) = (w.as_ref().map(|o| P(o.ptr::<F>())), b.as_ref().map(|o| P(o.ptr::<F>())));
    let mut means = vec![F::ZERO; m];
    let mut rstds = vec![F::ZERO; m];
    let (mp, rp) = (P(means.as_mut_ptr()), P(rstds.as_mut_ptr()));
    par_ranges(m, (1 << 14) / n + 1, |rows| {
        for r in rows {
            unsafe {
                let (xs, ys) = (xp.slice(r * n, n), yp.slice(r * n, n));
                let ws = wp.map(|w| w.slice(0, n) as &[F]);
                let bs = bp.map(|b| b.slice(0, n) as &[F]);
                let (mu, rs) = ln_row(xs, ys, ws, bs, eps);
                *mp.at(r) = mu;
                *rp.at(r) = rs;
            }
        }
    });
    y.finish(out)?;
    unsafe {
        store_flat(mean, &means);
        store_flat(rstd, &rstds);
    }
    Ok(())
}

with_avx2!(fn ln_row<F: Float>(xs: &[F], ys: &mut [F], w: Option<&[F]>, b: Option<&[F]>, eps: f64) -> (F, F) => ln_row_body);

/// One row of layer norm: mean and variance summed in f64 (in lanes, so they vectorize),
/// then `y = (x - mean) * rstd * w + b` in the compute type. Returns (mean, rstd).
#[inline(always)]
fn ln_row_body<F: Float>(xs: &[F], ys: &mut [F], w: Option<&[F]>, b: Option<&[F]>, eps: f64) -> (F, F) {
    let n = xs.len();
    let mu = lane_sum_map(xs, |x| x.to_f64()) / n as f64;
    let var = lane_sum_map(xs, |x| {
        let d = x.to_f64() - mu;
        d * d
    }) / n as f64;
    let rs = 1.0 / (var + eps).sqrt();
    let (muf, rsf) = (F::c(mu), F::c(rs));
    match (w, b) {
        (Some(w), Some(b)) => ys.iter_mut().zip(xs).zip(w.iter().zip(b)).for_each(|((y, &x), (&w, &b))| *y = (x - muf) * rsf * w + b),
        (Some(w), None) => ys.iter_mut().zip(xs).zip(w).for_each(|((y, &x), &w)| *y = (x - muf) * rsf * w),
        (None, Some(b)) => ys.iter_mut().zip(xs).zip(b).for_each(|((y, &x), &b)| *y = (x - muf) * rsf + b),
        (None, None) => ys.iter_mut().zip(xs).for_each(|(y, &x)| *y = (x - muf) * rsf),
    }
    (muf, rsf)
}

/// Group norm over `[N, C, *]`: each of the `groups` channel groups of each image is
/// normalised by its mean and variance (f64 sums, two passes), then scaled and shifted per
/// channel; `mean` and `rstd` get one value per (image, group), `N * groups` contiguous.
#[allow(clippy::too_many_arguments)]
pub fn group_norm(
    out: &View,
    mean: &View,
    rstd: &View,
    input: &View,
    weight: Option<&View>,
    bias: Option<&View>,
    groups: usize,
    eps: f64,
) -> Result<(), KernelError> {
    const OP: &str = "native_group_norm";
    let mut all = vec![out, mean, rstd, input];
    all.extend(weight);
    all.extend(bias);
    check_float(OP, &all)?;
    if input.sizes.len() < 2 || out.sizes != input.sizes {
        return Err(err(OP, format!("expected input [N, C, *] and an output of its shape, got {:?} and {:?}", input.sizes, out.sizes)));
    }
    let (n, c) = (input.sizes[0] as usize, input.sizes[1] as usize);
    if groups == 0 || c % groups != 0 {
        return Err(err(OP, format!("{c} channels do not split into {groups} groups")));
    }
    check_len(OP, "mean", mean, n * groups)?;
    check_len(OP, "rstd", rstd, n * groups)?;
    for v in weight.iter().chain(bias.iter()) {
        check_len(OP, "weight", v, c)?;
    }
    match float_compute(&all) {
        DType::F64 => gn_forward::<f64>(out, mean, rstd, input, weight, bias, groups, eps),
        _ => gn_forward::<f32>(out, mean, rstd, input, weight, bias, groups, eps),
    }
}

#[allow(clippy::too_many_arguments)]
fn gn_forward<F: Float>(
    out: &View,
    mean: &View,
    rstd: &View,
    input: &View,
    weight: Option<&View>,
    bias: Option<&View>,
    groups: usize,
    eps: f64,
) -> Result<(), KernelError> {
    let (n, c) = (input.sizes[0] as usize, input.sizes[1] as usize);
    let s: usize = input.sizes[2..].iter().map(|&v| v as usize).product();
    let d = c / groups;
    let ct = F::DTYPE;
    let x = Operand::of(input, ct)?;
    let y = Operand::output(out, ct);
    let (xp, yp) = (P(x.ptr::<F>()), P(y.ptr::<F>()));
    let w = channel_values(weight, c)?;
    let b = channel_values(bias, c)?;
    let (mut means, mut rstds) = (vec![F::ZERO; n * groups], vec![F::ZERO; n * groups]);
    let (mp, rp) = (P(means.as_mut_ptr()), P(rstds.as_mut_ptr()));
    par_ranges(n * groups, ((1 << 14) / (d * s).max(1)).max(1), |rows| {
        for ng in rows {
            // SAFETY: a group is d * s contiguous elements of the staged input and output;
            // each task owns its groups
            unsafe {
                let base = ng * d * s;
                let xs = xp.slice(base, d * s) as &[F];
                let mu = moment_sum(xs, 0.0, false) / (d * s) as f64;
                let var = moment_sum(xs, mu, true) / (d * s) as f64;
                let rs = 1.0 / (var + eps).sqrt();
                *mp.at(ng) = F::c(mu);
                *rp.at(ng) = F::c(rs);
                for k in 0..d {
                    let ch = (ng % groups) * d + k;
                    let sc = rs * w.as_ref().map_or(1.0, |w| w[ch]);
                    let sh = b.as_ref().map_or(0.0, |b| b[ch]) - mu * sc;
                    scale_shift(xp.slice(base + k * s, s), yp.slice(base + k * s, s), F::c(sc), F::c(sh));
                }
            }
        }
    });
    y.finish(out)?;
    unsafe {
        store_flat(mean, &means);
        store_flat(rstd, &rstds);
    }
    Ok(())
}

/// Gradients of [`layer_norm`]; each is computed when its view is given.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(
    grad_out: &View,
    input: &View,
    mean: &View,
    rstd: &View,
    weight: Option<&View>,
    n: usize,
    grad_input: Option<&View>,
    grad_weight: Option<&View>,
    grad_bias: Option<&View>,
) -> Result<(), KernelError> {
    const OP: &str = "native_layer_norm_backward";
    let mut all = vec![grad_out, input, mean, rstd];
    all.extend(weight);
    all.extend(grad_input);
    all.extend(grad_weight);
    all.extend(grad_bias);
    check_float(OP, &all)?;
    if grad_out.sizes != input.sizes || grad_input.is_some_and(|g| g.sizes != input.sizes) {
        return Err(err(OP, format!("bad sizes: input {:?}, grad_output {:?}", input.sizes, grad_out.sizes)));
    }
    let m = ln_rows(OP, input, mean, rstd, n)?;
    for w in weight.iter().chain(grad_weight.iter()).chain(grad_bias.iter()) {
        if w.numel() != n {
            return Err(err(OP, format!("expected {n} elements, got sizes {:?}", w.sizes)));
        }
    }
    match float_compute(&all) {
        DType::F64 => ln_backward::<f64>(grad_out, input, mean, rstd, weight, m, n, [grad_input, grad_weight, grad_bias]),
        _ => ln_backward::<f32>(grad_out, input, mean, rstd, weight, m, n, [grad_input, grad_weight, grad_bias]),
    }
}

#[allow(clippy::too_many_arguments)]
fn ln_backward<F: Float>(
    grad_out: &View,
    input: &View,
    mean: &View,
    rstd: &View,
    weight: Option<&View>,
    m: usize,
    n: usize,
    [gi, gw, gb]: [Option<&View>; 3],
) -> Result<(), KernelError> {
    let ct = F::DTYPE;
    let (dy, x) = (Operand::of(grad_out, ct)?, Operand::of(input, ct)?);
    let (mu, rs) = (Operand::of(mean, ct)?, Operand::of(rstd, ct)?);
    let w = weight.map(|v| Operand::of(v, ct)).transpose()?;
    let (dyp, xp, mup, rsp) = (P(dy.ptr::<F>()), P(x.ptr::<F>()), P(mu.ptr::<F>()), P(rs.ptr::<F>()));
    let wp = w.as_ref().map(|o| P(o.ptr::<F>()));
    if let Some(gi) = gi {
        let o = Operand::output(gi, ct);
        let op = P(o.ptr::<F>());
        par_ranges(m, (1 << 14) / n.max(1) + 1, |rows| {
            for r in rows {
                unsafe {
                    let (dys, xs, out) = (dyp.slice(r * n, n), xp.slice(r * n, n), op.slice(r * n, n));
                    let (mu, rs) = ((*mup.at(r)).to_f64(), (*rsp.at(r)).to_f64());
                    let ws = wp.map(|w| w.slice(0, n) as &[F]);
                    ln_grad_input_row(dys, xs, ws, mu, rs, out);
                }
            }
        });
        o.finish(gi)?;
    }
    if gw.is_some() || gb.is_some() {
        // column sums in fixed chunks of rows, then the chunks in order
        let chunks = m.div_ceil(ROWS_PER_CHUNK);
        let mut partial = vec![0f64; chunks * 2 * n];
        let pp = P(partial.as_mut_ptr());
        par_ranges(chunks, 1, |cs| {
            for c in cs {
                unsafe {
                    let (sw, sb) = (pp.slice(c * 2 * n, n), pp.slice(c * 2 * n + n, n));
                    for r in c * ROWS_PER_CHUNK..((c + 1) * ROWS_PER_CHUNK).min(m) {
                        let (dys, xs) = (dyp.slice(r * n, n), xp.slice(r * n, n));
                        let (mu, rs) = ((*mup.at(r)).to_f64(), (*rsp.at(r)).to_f64());
                        ln_param_grad_row(dys, xs, mu, rs, sw, sb);
                    }
                }
            }
        });
        let (mut sw, mut sb) = (vec![0f64; n], vec![0f64; n]);
        for c in 0..chunks {
            for j in 0..n {
                sw[j] += partial[c * 2 * n + j];
                sb[j] += partial[c * 2 * n + n + j];
            }
        }
        for (g, sums) in [(gw, &sw), (gb, &sb)] {
            if let Some(g) = g {
                let vals: Vec<F> = sums.iter().map(|&v| F::c(v)).collect();
                let o = Operand::output(g, ct);
                unsafe { std::ptr::copy_nonoverlapping(vals.as_ptr(), o.ptr::<F>(), n) };
                o.finish(g)?;
            }
        }
    }
    Ok(())
}

with_avx2!(fn ln_grad_input_row<F: Float>(dys: &[F], xs: &[F], w: Option<&[F]>, mu: f64, rs: f64, out: &mut [F]) => ln_grad_input_row_body);

/// One row of the input gradient, in f64: with `g = dy * w` and `xhat = (x - mean) * rstd`,
/// `dx = rstd * (g - mean(g) - xhat * mean(g * xhat))`. The sums run in lanes.
#[inline(always)]
fn ln_grad_input_row_body<F: Float>(dys: &[F], xs: &[F], w: Option<&[F]>, mu: f64, rs: f64, out: &mut [F]) {
    let n = xs.len();
    let (dys, out) = (&dys[..n], &mut out[..n]);
    let xhat = |j: usize| (xs[j].to_f64() - mu) * rs;
    let (a, b) = match w {
        Some(w) => (
            lane_sum_zip(dys, w, |d, w| d.to_f64() * w.to_f64()),
            lane_sum_zip3(dys, w, xs, |d, w, x| d.to_f64() * w.to_f64() * ((x.to_f64() - mu) * rs)),
        ),
        None => (lane_sum_map(dys, |d| d.to_f64()), lane_sum_zip(dys, xs, |d, x| d.to_f64() * ((x.to_f64() - mu) * rs))),
    };
    let (a, b) = (a / n as f64, b / n as f64);
    match w {
        Some(w) => {
            let w = &w[..n];
            for j in 0..n {
                out[j] = F::c(rs * (dys[j].to_f64() * w[j].to_f64() - a - xhat(j) * b));
            }
        }
        None => {
            for j in 0..n {
                out[j] = F::c(rs * (dys[j].to_f64() - a - xhat(j) * b));
            }
        }
    }
}

with_avx2!(fn ln_param_grad_row<F: Float>(dys: &[F], xs: &[F], mu: f64, rs: f64, sw: &mut [f64], sb: &mut [f64]) => ln_param_grad_row_body);

/// Adds one row's contribution to the weight (`dy * xhat`) and bias (`dy`) gradient sums.
#[inline(always)]
fn ln_param_grad_row_body<F: Float>(dys: &[F], xs: &[F], mu: f64, rs: f64, sw: &mut [f64], sb: &mut [f64]) {
    let n = xs.len();
    let (dys, sw, sb) = (&dys[..n], &mut sw[..n], &mut sb[..n]);
    for j in 0..n {
        let g = dys[j].to_f64();
        sw[j] += g * (xs[j].to_f64() - mu) * rs;
        sb[j] += g;
    }
}

/// Batch normalisation over `[N, C, S]` (channels in dim 1; S the product of spatial dims).
/// Training: batch statistics (biased variance for normalising; the running stats, when given,
/// move by `momentum` with the unbiased variance). Eval: the running stats. `save_mean` and
/// `save_invstd` (C elements) get the batch statistics in training.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm(
    out: &View,
    input: &View,
    weight: Option<&View>,
    bias: Option<&View>,
    running_mean: Option<&View>,
    running_var: Option<&View>,
    save: Option<(&View, &View)>,
    training: bool,
    momentum: f64,
    eps: f64,
) -> Result<(), KernelError> {
    const OP: &str = "native_batch_norm";
    let mut all = vec![out, input];
    all.extend(weight);
    all.extend(bias);
    all.extend(running_mean);
    all.extend(running_var);
    if let Some((a, b)) = save {
        all.push(a);
        all.push(b);
    }
    check_float(OP, &all)?;
    if input.sizes.len() < 2 || out.sizes != input.sizes {
        return Err(err(OP, format!("expected input of rank >= 2 and a matching output, got {:?}", input.sizes)));
    }
    let (nb, c) = (input.sizes[0] as usize, input.sizes[1] as usize);
    let s: usize = input.sizes[2..].iter().map(|&v| v as usize).product();
    for v in [weight, bias, running_mean, running_var].into_iter().flatten() {
        if v.numel() != c {
            return Err(err(OP, format!("expected {c} elements per channel parameter, got sizes {:?}", v.sizes)));
        }
    }
    if let Some((a, b)) = save {
        check_len(OP, "save_mean", a, c)?;
        check_len(OP, "save_invstd", b, c)?;
    }
    if !training && (running_mean.is_none() || running_var.is_none()) {
        return Err(err(OP, "running_mean and running_var must be defined in evaluation mode".into()));
    }
    match float_compute(&all) {
        DType::F64 => bn_forward::<f64>(out, input, [weight, bias, running_mean, running_var], save, training, momentum, eps, nb, c, s),
        _ => bn_forward::<f32>(out, input, [weight, bias, running_mean, running_var], save, training, momentum, eps, nb, c, s),
    }
}

/// Reads a per-channel parameter as f64 values.
fn channel_values(v: Option<&View>, c: usize) -> Result<Option<Vec<f64>>, KernelError> {
    let Some(v) = v else { return Ok(None) };
    let d = Operand::of(v, DType::F64)?;
    let p = d.ptr::<f64>();
    Ok(Some((0..c).map(|i| unsafe { *p.add(i) }).collect()))
}

/// Writes per-channel f64 values into `v` (any layout), converting.
fn store_channels(v: &View, vals: &[f64]) -> Result<(), KernelError> {
    let mut vals = vals.to_vec();
    let src = View::contiguous(vals.as_mut_ptr() as *mut u8, DType::F64, &v.sizes);
    crate::copy(v, &src)
}

with_avx2!(fn affine2<F: Float>(a: &[F], b: &[F], out: &mut [F], ka: F, kb: F, k: F) => affine2_body);

/// `out = ka a + kb b + k`.
#[inline(always)]
fn affine2_body<F: Float>(a: &[F], b: &[F], out: &mut [F], ka: F, kb: F, k: F) {
    let (b, out) = (&b[..a.len()], &mut out[..a.len()]);
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = ka * x + kb * y + k;
    }
}

with_avx2!(fn scale_shift<F: Float>(xs: &[F], ys: &mut [F], sc: F, sh: F) => scale_shift_body);

#[inline(always)]
fn scale_shift_body<F: Float>(xs: &[F], ys: &mut [F], sc: F, sh: F) {
    for (y, &x) in ys.iter_mut().zip(xs) {
        *y = x * sc + sh;
    }
}

with_avx2!(fn grad_sums<F: Float>(dys: &[F], xs: &[F], mean: f64) -> (f64, f64) => grad_sums_body);

/// `sum(dy)` and `sum(dy * (x - mean))` over one plane, in f64 over lanes.
#[inline(always)]
fn grad_sums_body<F: Float>(dys: &[F], xs: &[F], mean: f64) -> (f64, f64) {
    let n = xs.len();
    let dys = &dys[..n];
    (lane_sum_map(dys, |d| d.to_f64()), lane_sum_zip(dys, xs, |d, x| d.to_f64() * (x.to_f64() - mean)))
}

with_avx2!(fn grad_input_plane<F: Float>(dys: &[F], xs: &[F], out: &mut [F], k: f64, mean: f64, c1: f64, c2: f64) => grad_input_plane_body);

/// `dx = k * (dy - c1 - (x - mean) * c2)` over one plane, in f64.
#[inline(always)]
fn grad_input_plane_body<F: Float>(dys: &[F], xs: &[F], out: &mut [F], k: f64, mean: f64, c1: f64, c2: f64) {
    let n = xs.len();
    let (dys, out) = (&dys[..n], &mut out[..n]);
    for j in 0..n {
        out[j] = F::c(k * (dys[j].to_f64() - c1 - (xs[j].to_f64() - mean) * c2));
    }
}


#[allow(clippy::too_many_arguments)]
fn bn_forward<F: Float>(
    out: &View,
    input: &View,
    [weight, bias, rmean, rvar]: [Option<&View>; 4],
    save: Option<(&View, &View)>,
    training: bool,
    momentum: f64,
    eps: f64,
    nb: usize,
    c: usize,
    s: usize,
) -> Result<(), KernelError> {
    let ct = F::DTYPE;
    let x = Operand::of(input, ct)?;
    let y = Operand::output(out, ct);
    let (xp, yp) = (P(x.ptr::<F>()), P(y.ptr::<F>()));
    let w = channel_values(weight, c)?;
    let b = channel_values(bias, c)?;
    let count = nb * s;
    let (mut means, mut vars) = (vec![0f64; c], vec![0f64; c]);
    if training {
        let (mp, vp) = (P(means.as_mut_ptr()), P(vars.as_mut_ptr()));
        par_ranges(c, 1, |chs| {
            for ch in chs {
                let plane = |i: usize| unsafe { xp.slice((i * c + ch) * s, s) };
                let mu = (0..nb).map(|i| moment_sum(plane(i), 0.0, false)).sum::<f64>() / count as f64;
                let sq = (0..nb).map(|i| moment_sum(plane(i), mu, true)).sum::<f64>();
                unsafe {
                    *mp.at(ch) = mu;
                    *vp.at(ch) = sq / count as f64;
                }
            }
        });
    } else {
        means = channel_values(rmean, c)?.unwrap_or_default();
        vars = channel_values(rvar, c)?.unwrap_or_default();
    }
    let invstd: Vec<f64> = vars.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let (wr, br) = (&w, &b);
    let (mr, ir) = (&means, &invstd);
    par_ranges(nb * c, (1 << 14) / s.max(1) + 1, |planes| {
        for pl in planes {
            let ch = pl % c;
            let scale = ir[ch] * wr.as_ref().map_or(1.0, |w| w[ch]);
            let shift = br.as_ref().map_or(0.0, |b| b[ch]) - mr[ch] * scale;
            let (sc, sh) = (F::c(scale), F::c(shift));
            unsafe { scale_shift(xp.slice(pl * s, s), yp.slice(pl * s, s), sc, sh) };
        }
    });
    y.finish(out)?;
    if training {
        if let Some((sm, si)) = save {
            store_channels(sm, &means)?;
            store_channels(si, &invstd)?;
        }
        if count > 0 {
            let unbiased = count as f64 / (count.max(2) - 1) as f64;
            if let Some(rm) = rmean {
                let old = channel_values(Some(rm), c)?.unwrap_or_default();
                let new: Vec<f64> = old.iter().zip(&means).map(|(o, m)| (1.0 - momentum) * o + momentum * m).collect();
                store_channels(rm, &new)?;
            }
            if let Some(rv) = rvar {
                let old = channel_values(Some(rv), c)?.unwrap_or_default();
                let new: Vec<f64> = old.iter().zip(&vars).map(|(o, v)| (1.0 - momentum) * o + momentum * v * unbiased).collect();
                store_channels(rv, &new)?;
            }
        }
    }
    Ok(())
}

/// Gradients of [`batch_norm`]. In training, `save_mean` and `save_invstd` are the batch
/// statistics the forward saved; in eval, the running stats are used.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    grad_out: &View,
    input: &View,
    weight: Option<&View>,
    running_mean: Option<&View>,
    running_var: Option<&View>,
    save_mean: Option<&View>,
    save_invstd: Option<&View>,
    training: bool,
    eps: f64,
    grads: [Option<&View>; 3],
) -> Result<(), KernelError> {
    const OP: &str = "native_batch_norm_backward";
    let mut all = vec![grad_out, input];
    all.extend(weight);
    all.extend(grads.iter().flatten());
    check_float(OP, &all)?;
    if input.sizes.len() < 2 || grad_out.sizes != input.sizes {
        return Err(err(OP, format!("bad sizes: input {:?}, grad_output {:?}", input.sizes, grad_out.sizes)));
    }
    let (nb, c) = (input.sizes[0] as usize, input.sizes[1] as usize);
    let s: usize = input.sizes[2..].iter().map(|&v| v as usize).product();
    let (mean, invstd) = if training {
        let m = channel_values(save_mean, c)?.ok_or_else(|| err(OP, "save_mean is required in training".into()))?;
        let i = channel_values(save_invstd, c)?.ok_or_else(|| err(OP, "save_invstd is required in training".into()))?;
        (m, i)
    } else {
        let m = channel_values(running_mean, c)?.ok_or_else(|| err(OP, "running_mean is required in eval".into()))?;
        let v = channel_values(running_var, c)?.ok_or_else(|| err(OP, "running_var is required in eval".into()))?;
        (m, v.iter().map(|v| 1.0 / (v + eps).sqrt()).collect())
    };
    if mean.len() != c || invstd.len() != c {
        return Err(err(OP, "statistics must have one value per channel".into()));
    }
    if let Some(g) = grads[0] {
        if g.sizes != input.sizes {
            return Err(err(OP, "grad_input must have the input's sizes".into()));
        }
    }
    for g in [grads[1], grads[2]].into_iter().flatten() {
        if g.numel() != c {
            return Err(err(OP, "weight and bias gradients must have one value per channel".into()));
        }
    }
    match float_compute(&all) {
        DType::F64 => bn_backward::<f64>(grad_out, input, weight, &mean, &invstd, training, nb, c, s, grads),
        _ => bn_backward::<f32>(grad_out, input, weight, &mean, &invstd, training, nb, c, s, grads),
    }
}

#[allow(clippy::too_many_arguments)]
fn bn_backward<F: Float>(
    grad_out: &View,
    input: &View,
    weight: Option<&View>,
    mean: &[f64],
    invstd: &[f64],
    training: bool,
    nb: usize,
    c: usize,
    s: usize,
    [gi, gw, gb]: [Option<&View>; 3],
) -> Result<(), KernelError> {
    let ct = F::DTYPE;
    let (dy, x) = (Operand::of(grad_out, ct)?, Operand::of(input, ct)?);
    let (dyp, xp) = (P(dy.ptr::<F>()), P(x.ptr::<F>()));
    let w = channel_values(weight, c)?;
    // per channel: sum(dy) and sum(dy * xhat)
    let (mut sum_dy, mut sum_dyx) = (vec![0f64; c], vec![0f64; c]);
    let (sp, sxp) = (P(sum_dy.as_mut_ptr()), P(sum_dyx.as_mut_ptr()));
    par_ranges(c, 1, |chs| {
        for ch in chs {
            let (mut a, mut b) = (0f64, 0f64);
            for i in 0..nb {
                let (dys, xs) = unsafe { (dyp.slice((i * c + ch) * s, s), xp.slice((i * c + ch) * s, s)) };
                let (pa, pb) = grad_sums(dys, xs, mean[ch]);
                a += pa;
                b += pb;
            }
            unsafe {
                *sp.at(ch) = a;
                *sxp.at(ch) = b * invstd[ch];
            }
        }
    });
    if let Some(gi) = gi {
        let o = Operand::output(gi, ct);
        let op = P(o.ptr::<F>());
        let count = (nb * s).max(1) as f64;
        let (wr, sr, sxr) = (&w, &sum_dy, &sum_dyx);
        par_ranges(nb * c, (1 << 14) / s.max(1) + 1, |planes| {
            for pl in planes {
                let ch = pl % c;
                let k = invstd[ch] * wr.as_ref().map_or(1.0, |w| w[ch]);
                // dx = k * (dy - mean(dy) - xhat * mean(dy * xhat)), xhat = (x - mean) * invstd;
                // in eval the statistics are constants, so dx = k * dy
                let (c1, c2) = if training { (sr[ch] / count, invstd[ch] * sxr[ch] / count) } else { (0.0, 0.0) };
                unsafe {
                    let (dys, xs, out) = (dyp.slice(pl * s, s), xp.slice(pl * s, s), op.slice(pl * s, s));
                    grad_input_plane(dys, xs, out, k, mean[ch], c1, c2);
                }
            }
        });
        o.finish(gi)?;
    }
    if let Some(gw) = gw {
        store_channels(gw, &sum_dyx)?;
    }
    if let Some(gb) = gb {
        store_channels(gb, &sum_dy)?;
    }
    Ok(())
}

/// The gradients of group_norm (`native_group_norm_backward`) for `input` [N, C, *] in `groups`
/// groups, from the forward's `mean` and `rstd` ([N, groups]): into `grads` = [input, weight,
/// bias], each optional. Sums in f64; parallel over (sample, group) for the input gradient.
#[allow(clippy::too_many_arguments)]
pub fn group_norm_backward(
    dy: &View,
    input: &View,
    mean: &View,
    rstd: &View,
    weight: Option<&View>,
    groups: usize,
    grads: [Option<&View>; 3],
) -> Result<(), KernelError> {
    let op = "native_group_norm_backward";
    let mut all = vec![dy, input, mean, rstd];
    all.extend(weight);
    all.extend(grads.iter().flatten());
    check_float(op, &all)?;
    if input.sizes.len() < 2 || dy.sizes != input.sizes {
        return Err(err(op, format!("expected input [N, C, *] and a gradient of its shape, got {:?} and {:?}", input.sizes, dy.sizes)));
    }
    let (n, c) = (input.sizes[0] as usize, input.sizes[1] as usize);
    if groups == 0 || c % groups != 0 {
        return Err(err(op, format!("{c} channels do not split into {groups} groups")));
    }
    check_len(op, "mean", mean, n * groups)?;
    check_len(op, "rstd", rstd, n * groups)?;
    match float_compute(&all) {
        DType::F64 => gn_backward::<f64>(dy, input, mean, rstd, weight, groups, grads),
        _ => gn_backward::<f32>(dy, input, mean, rstd, weight, groups, grads),
    }
}

/// [`group_norm_backward`] in the compute type `F`: one parallel pass sums `dy` and `dy * x`
/// per (image, channel) plane in f64 lanes; the weight and bias gradients and each group's
/// coefficients come from those sums; a second parallel pass writes
/// `dx = rstd w dy + c2 x + c3` (the closed form of the layer-norm-style backward).
fn gn_backward<F: Float>(
    dy: &View,
    input: &View,
    mean: &View,
    rstd: &View,
    weight: Option<&View>,
    groups: usize,
    grads: [Option<&View>; 3],
) -> Result<(), KernelError> {
    let (n, c) = (input.sizes[0] as usize, input.sizes[1] as usize);
    let s: usize = input.sizes[2..].iter().map(|&v| v as usize).product();
    let d = c / groups;
    let ct = F::DTYPE;
    let (x, g) = (Operand::of(input, ct)?, Operand::of(dy, ct)?);
    let (xp, gp) = (P(x.ptr::<F>()), P(g.ptr::<F>()));
    let mean = channel_values(Some(mean), n * groups)?.unwrap_or_default();
    let rstd = channel_values(Some(rstd), n * groups)?.unwrap_or_default();
    let w = channel_values(weight, c)?;
    let wc = |ch: usize| w.as_ref().map_or(1.0, |w| w[ch]);
    // per plane (image, channel): sum(dy) and sum(dy * x)
    let (mut sum_dy, mut sum_dyx) = (vec![0f64; n * c], vec![0f64; n * c]);
    let (sp, sxp) = (P(sum_dy.as_mut_ptr()), P(sum_dyx.as_mut_ptr()));
    par_ranges(n * c, ((1 << 14) / s.max(1)).max(1), |planes| {
        for pl in planes {
            // SAFETY: plane `pl` is s contiguous staged elements; each task owns its planes
            unsafe {
                let (xs, gs) = (xp.slice(pl * s, s) as &[F], gp.slice(pl * s, s) as &[F]);
                *sp.at(pl) = lane_sum_map(gs, |v| v.to_f64());
                *sxp.at(pl) = lane_sum_zip(gs, xs, |a, b| a.to_f64() * b.to_f64());
            }
        }
    });
    if let Some(gi) = grads[0] {
        let out = Operand::output(gi, ct);
        let op_ = P(out.ptr::<F>());
        let m = (d * s) as f64;
        par_ranges(n * c, ((1 << 14) / s.max(1)).max(1), |planes| {
            for pl in planes {
                let (ni, ch) = (pl / c, pl % c);
                let (gr, ng) = (ch / d, ni * groups + ch / d);
                let (mu, rs) = (mean[ng], rstd[ng]);
                let chans = ni * c + gr * d..ni * c + (gr + 1) * d;
                let g_dy: f64 = chans.clone().map(|p| wc(p % c) * sum_dy[p]).sum();
                let g_dyx: f64 = chans.map(|p| wc(p % c) * sum_dyx[p]).sum();
                let c2 = (g_dy * mu - g_dyx) * rs * rs * rs / m;
                let c3 = -c2 * mu - g_dy * rs / m;
                // SAFETY: as above; the output plane is the task's own
                unsafe {
                    let (xs, gs, os) = (xp.slice(pl * s, s) as &[F], gp.slice(pl * s, s) as &[F], op_.slice(pl * s, s));
                    affine2(gs, xs, os, F::c(rs * wc(ch)), F::c(c2), F::c(c3));
                }
            }
        });
        out.finish(gi)?;
    }
    if grads[1].is_some() || grads[2].is_some() {
        let (mut gw, mut gb) = (vec![0.0; c], vec![0.0; c]);
        for ni in 0..n {
            for ch in 0..c {
                let (pl, ng) = (ni * c + ch, ni * groups + ch / d);
                gw[ch] += (sum_dyx[pl] - mean[ng] * sum_dy[pl]) * rstd[ng];
                gb[ch] += sum_dy[pl];
            }
        }
        if let Some(v) = grads[1] {
            store_channels(v, &gw)?;
        }
        if let Some(v) = grads[2] {
            store_channels(v, &gb)?;
        }
    }
    Ok(())
}
