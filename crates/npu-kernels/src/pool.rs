//! Pooling over 1 to 3 spatial dims: max (with the indices of the maxima), average and
//! adaptive average, forward and backward. Every dim before the spatial ones is a plane index
//! (N, C), so any layout works: data are staged in logical order in f32 (f64 for f64) and
//! walked one plane per task.

use crate::cpu::with_avx2;
use crate::dense::{check_float, float_compute, Operand, P};
use crate::math::Float;
use crate::view::{err, par_ranges, View};
use crate::{DType, KernelError};

/// Window parameters (one value per spatial dim).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolParams {
    pub kernel: Vec<i64>,
    pub stride: Vec<i64>,
    pub padding: Vec<i64>,
    pub dilation: Vec<i64>,
    pub ceil_mode: bool,
}

impl PoolParams {
    /// PyTorch's `pooling_output_shape` per dim (may be < 1 for an input too small).
    pub fn output_size(&self, input: &[i64]) -> Vec<i64> {
        (0..input.len())
            .map(|d| {
                let (k, s, p, dl) = (self.kernel[d], self.stride[d], self.padding[d], self.dilation[d]);
                let span = input[d] + 2 * p - dl * (k - 1) - 1 + if self.ceil_mode { s - 1 } else { 0 };
                let mut o = span.div_euclid(s) + 1;
                // the last window must start inside the input or the left padding
                if self.ceil_mode && (o - 1) * s >= input[d] + p {
                    o -= 1;
                }
                o
            })
            .collect()
    }

    fn check(&self, op: &str, nd: usize) -> Result<(), KernelError> {
        let lens = [self.kernel.len(), self.stride.len(), self.padding.len(), self.dilation.len()];
        if !(1..=3).contains(&nd) || lens.iter().any(|&l| l != nd) {
            return Err(err(op, format!("expected parameters for {nd} spatial dims, got {self:?}")));
        }
        if self.kernel.iter().chain(&self.stride).chain(&self.dilation).any(|&v| v < 1) || self.padding.iter().any(|&p| p < 0) {
            return Err(err(op, format!("invalid pooling parameters {self:?}")));
        }
        if self.padding.iter().zip(&self.kernel).any(|(&p, &k)| p * 2 > k) {
            return Err(err(op, "pad should be at most half of effective kernel size".into()));
        }
        Ok(())
    }
}

/// Sizes padded to 3 spatial dims.
fn pad3(v: &[i64], fill: i64) -> [i64; 3] {
    let mut out = [fill; 3];
    out[3 - v.len()..].copy_from_slice(v);
    out
}

/// The number of planes (the product of the dims before the `nd` spatial ones).
fn planes(op: &str, v: &View, nd: usize) -> Result<usize, KernelError> {
    if v.sizes.len() <= nd {
        return Err(err(op, format!("expected leading dims and {nd} spatial dims, got {:?}", v.sizes)));
    }
    Ok(v.sizes[..v.sizes.len() - nd].iter().map(|&s| s as usize).product())
}

/// Leading dims followed by `spatial`.
fn with_spatial(v: &View, nd: usize, spatial: Vec<i64>) -> Vec<i64> {
    v.sizes[..v.sizes.len() - nd].iter().copied().chain(spatial).collect()
}

fn spatial(v: &View, nd: usize) -> &[i64] {
    &v.sizes[v.sizes.len() - nd..]
}

/// The valid input positions of one window: along each dim, taps `k.0..k.1` at input index
/// `start + tap * dilation` (a box, so no list is built per output).
struct Window {
    start: [i64; 3],
    k: [(i64, i64); 3],
    dl: [i64; 3],
    inp: [i64; 3],
}

impl Window {
    fn len(&self) -> i64 {
        self.k.iter().map(|&(a, b)| b - a).product()
    }
    /// Flat input index of the first valid position (0 for an empty window).
    fn first(&self) -> usize {
        let mut first = 0;
        self.for_each(|i| first = i, true);
        first
    }
    /// Calls `f` with the flat input index of every valid position, in order (only the
    /// first when `first_only`).
    #[inline(always)]
    fn for_each(&self, mut f: impl FnMut(usize), first_only: bool) {
        let (s, dl, n) = (self.start, self.dl, self.inp);
        for kz in self.k[0].0..self.k[0].1 {
            for ky in self.k[1].0..self.k[1].1 {
                let row = ((s[0] + kz * dl[0]) * n[1] + s[1] + ky * dl[1]) * n[2] + s[2];
                for kx in self.k[2].0..self.k[2].1 {
                    f((row + kx * dl[2]) as usize);
                    if first_only {
                        return;
                    }
                }
            }
        }
    }
}

/// Every output position of one plane with its window: calls `f(out_index, window, padded)`,
/// `padded` being the window's extent clipped to the padded input (for count_include_pad).
fn windows(inp: [i64; 3], out: [i64; 3], p: &PoolParams, mut f: impl FnMut(usize, &Window, i64)) {
    let (k, s) = (pad3(&p.kernel, 1), pad3(&p.stride, 1));
    let (pd, dl) = (pad3(&p.padding, 0), pad3(&p.dilation, 1));
    // along dim d for output index o: (first input index, valid taps, padded extent)
    let span = |d: usize, o: i64| {
        let start = o * s[d] - pd[d];
        let lo = if start >= 0 { 0 } else { (-start + dl[d] - 1) / dl[d] };
        let hi = if start >= inp[d] { 0 } else { ((inp[d] - 1 - start) / dl[d] + 1).min(k[d]) };
        let end = (start + (k[d] - 1) * dl[d] + 1).min(inp[d] + pd[d]);
        (start, (lo, hi.max(lo)), end - start)
    };
    let mut o = 0usize;
    for oz in 0..out[0] {
        let z = span(0, oz);
        for oy in 0..out[1] {
            let y = span(1, oy);
            for ox in 0..out[2] {
                let x = span(2, ox);
                let win = Window { start: [z.0, y.0, x.0], k: [z.1, y.1, x.1], dl, inp };
                f(o, &win, z.2 * y.2 * x.2);
                o += 1;
            }
        }
    }
}

/// Max pooling: `out` and `indices` (i64, flat index within the input plane) are
/// `[B, out_spatial..]`, `input` is `[B, in_spatial..]`. NaN wins (the last NaN of a window, as on CPU); ties keep
/// the first maximum. Integer inputs compare exactly (in i64).
pub fn max_pool(out: &View, indices: &View, input: &View, p: &PoolParams) -> Result<(), KernelError> {
    const OP: &str = "max_pool";
    let nd = p.kernel.len();
    p.check(OP, nd)?;
    out.validate(OP)?;
    input.validate(OP)?;
    if out.dtype != input.dtype || input.dtype.is_complex() || input.dtype == DType::Bool {
        return Err(err(OP, format!("\"max_pool\" not implemented for '{}' (output '{}')", input.dtype.name(), out.dtype.name())));
    }
    indices.validate(OP)?;
    let b = planes(OP, input, nd)?;
    let want = with_spatial(input, nd, p.output_size(spatial(input, nd)));
    if out.sizes != want || indices.sizes != want || indices.dtype != DType::I64 || !indices.is_contiguous() {
        return Err(err(OP, format!("expected contiguous i64 indices and an output of {want:?}")));
    }
    if out.numel() == 0 {
        return Ok(());
    }
    if !input.dtype.is_floating() {
        return max_forward::<i64>(out, indices, input, p, b, i64::MIN);
    }
    match float_compute(&[out, input]) {
        DType::F64 => max_forward::<f64>(out, indices, input, p, b, f64::NEG_INFINITY),
        _ => max_forward::<f32>(out, indices, input, p, b, f32::NEG_INFINITY),
    }
}

/// In compute type `F` (f32, f64, or i64 for integers), starting from `lowest`.
#[allow(clippy::too_many_arguments)]
fn max_forward<F: crate::convert::Element + MaxElem>(out: &View, indices: &View, input: &View, p: &PoolParams, b: usize, lowest: F) -> Result<(), KernelError> {
    let ct = F::DTYPE;
    let x = Operand::of(input, ct)?;
    let y = Operand::output(out, ct);
    let nd = p.kernel.len();
    let (inp, outs) = (pad3(spatial(input, nd), 1), pad3(spatial(out, nd), 1));
    let (il, ol) = ((inp[0] * inp[1] * inp[2]) as usize, (outs[0] * outs[1] * outs[2]) as usize);
    let (xp, yp, ip) = (P(x.ptr::<F>()), P(y.ptr::<F>()), P(indices.ptr as *mut i64));
    let (k, s, pd) = (pad3(&p.kernel, 1), pad3(&p.stride, 1), pad3(&p.padding, 0));
    let plain_2d = nd <= 2 && p.dilation.iter().all(|&d| d == 1);
    par_ranges(b, 1, |range| {
        let (mut best, mut at) = (vec![lowest; outs[2] as usize], vec![0i64; outs[2] as usize]);
        let mut phases = vec![lowest; inp[2] as usize];
        for pl in range {
            let (xs, ys, is) = unsafe { (xp.slice(pl * il, il), yp.slice(pl * ol, ol), ip.slice(pl * ol, ol)) };
            if plain_2d {
                let two = |v: [i64; 3]| [v[1], v[2]];
                max_plane_2d(xs, ys, is, [two(inp), two(outs), two(k), two(s), two(pd)], lowest, [&mut best, &mut phases], &mut at);
                continue;
            }
            windows(inp, outs, p, |o, win, _| {
                let (mut best, mut at) = (lowest, win.first());
                win.each(|i| {
                    // as PyTorch CPU: a NaN wins, and a later NaN wins again
                    let v = xs[i];
                    #[allow(clippy::eq_op)] // `v != v`: NaN, for floats and ints alike
                    if v > best || v != v {
                        best = v;
                        at = i;
                    }
                });
                ys[o] = best;
                is[o] = at as i64;
            });
        }
    });
    y.finish(out)
}

/// Element types [`max_plane_2d`] compares (the compute types of max pooling).
trait MaxElem: Copy + PartialOrd {}
impl MaxElem for f32 {}
impl MaxElem for f64 {}
impl MaxElem for i64 {}

with_avx2!(fn max_plane_2d<F: MaxElem>(xs: &[F], ys: &mut [F], is: &mut [i64], geo: [[i64; 2]; 5], lowest: F, rows: [&mut [F]; 2], at: &mut [i64]) => max_plane_2d_body);

/// [`max_pool`] of one plane in 2d (or 1d) without dilation, the same maximum and index as the
/// general path. Taps are the outer loop and a row of outputs the inner one, so the running
/// maxima update a row at a time over contiguous values (vectorized), in the same order per
/// output as the general path: ties keep the first maximum, a later NaN wins again. With a
/// column stride s, each input row is first split into its s phases (columns x with the same
/// x mod s), so that one tap's inputs for a row of outputs sit side by side.
/// The geometry is `[input, output, kernel, stride, padding]`, each (height, width);
/// `[best, phases]` and `at` are room for an output row, an input row and an output row.
#[inline(always)]
fn max_plane_2d_body<F: MaxElem>(xs: &[F], ys: &mut [F], is: &mut [i64], geo: [[i64; 2]; 5], lowest: F, [best, phases]: [&mut [F]; 2], at: &mut [i64]) {
    let [[ih, iw], [oh, ow], [kh, kw], [sh, sw], [ph, pw]] = geo;
    let (iwu, owu, swu) = (iw as usize, ow as usize, sw as usize);
    let (best, at, phases) = (&mut best[..owu], &mut at[..owu], &mut phases[..iwu]);
    // where phase p starts in `phases`: after the columns of the phases before it
    let start = |p: usize| (0..p).map(|q| (iwu - q.min(iwu)).div_ceil(swu)).sum::<usize>();
    for oy in 0..oh {
        let y0 = oy * sh - ph;
        let (ylo, yhi) = (y0.max(0), (y0 + kh).min(ih));
        for (ox, (b, a)) in best.iter_mut().zip(at.iter_mut()).enumerate() {
            *b = lowest;
            // the window's first valid tap (0 for an empty window, as the general path)
            let xlo = (ox as i64 * sw - pw).max(0);
            *a = if ylo < yhi && xlo < (ox as i64 * sw - pw + kw).min(iw) { ylo * iw + xlo } else { 0 };
        }
        for y in ylo..yhi {
            let row = &xs[(y * iw) as usize..][..iwu];
            let src: &[F] = if swu == 1 {
                row
            } else {
                let mut k = 0;
                for p in 0..swu.min(iwu) {
                    for &v in row[p..].iter().step_by(swu) {
                        phases[k] = v;
                        k += 1;
                    }
                }
                phases
            };
            for kx in 0..kw {
                // outputs whose tap kx falls inside the row: x = ox * sw - pw + kx in 0..iw
                let lo = (((pw - kx).max(0) + sw - 1) / sw).min(ow);
                let hi = if iw - 1 + pw - kx < 0 { 0 } else { ((iw - 1 + pw - kx) / sw + 1).min(ow) };
                if lo >= hi {
                    continue;
                }
                let first = (lo * sw + kx - pw) as usize;
                let vals = &src[start(first % swu) + first / swu..];
                let (lo, hi) = (lo as usize, hi as usize);
                max_taps(vals, &mut best[lo..hi], &mut at[lo..hi], y * iw + first as i64, sw);
            }
        }
        let o = (oy * ow) as usize;
        ys[o..o + owu].copy_from_slice(best);
        is[o..o + owu].copy_from_slice(at);
    }
}

/// `best[i], at[i]` take `vals[i]` (input position `pos + i * step`) where it is larger or NaN.
#[inline(always)]
fn max_taps<F: MaxElem>(vals: &[F], best: &mut [F], at: &mut [i64], pos: i64, step: i64) {
    let vals = &vals[..best.len()];
    let at = &mut at[..best.len()];
    for i in 0..best.len() {
        let v = vals[i];
        #[allow(clippy::eq_op)] // `v != v`: NaN, for floats and ints alike
        let take = (v > best[i]) | (v != v);
        best[i] = if take { v } else { best[i] };
        at[i] = if take { pos + i as i64 * step } else { at[i] };
    }
}

/// `grad_input[b, indices[b, o]] += grad_out[b, o]` (zero elsewhere).
/// `nd` is the number of spatial dims.
pub fn max_pool_backward(grad_input: &View, grad_out: &View, indices: &View, nd: usize) -> Result<(), KernelError> {
    const OP: &str = "max_pool_backward";
    check_float(OP, &[grad_input, grad_out])?;
    indices.validate(OP)?;
    let lead = grad_input.sizes.len().saturating_sub(nd);
    if grad_out.sizes != indices.sizes
        || indices.dtype != DType::I64
        || grad_input.sizes.len() != grad_out.sizes.len()
        || lead == 0
        || grad_input.sizes[..lead] != grad_out.sizes[..lead]
    {
        return Err(err(OP, format!("grad_output {:?} and indices {:?} do not match", grad_out.sizes, indices.sizes)));
    }
    grad_input.check_writable(OP)?;
    match float_compute(&[grad_input, grad_out]) {
        DType::F64 => max_backward::<f64>(grad_input, grad_out, indices, nd),
        _ => max_backward::<f32>(grad_input, grad_out, indices, nd),
    }
}

fn max_backward<F: Float>(grad_input: &View, grad_out: &View, indices: &View, nd: usize) -> Result<(), KernelError> {
    let ct = F::DTYPE;
    let b = planes("max_pool_backward", grad_out, nd)?;
    let il: usize = spatial(grad_input, nd).iter().map(|&s| s as usize).product();
    let ol: usize = spatial(grad_out, nd).iter().map(|&s| s as usize).product();
    let dy = Operand::of(grad_out, ct)?;
    let idx = Operand::of(indices, DType::I64)?;
    let gi = Operand::output(grad_input, ct);
    let (dyp, ip, gp) = (P(dy.ptr::<F>()), P(idx.ptr::<i64>()), P(gi.ptr::<F>()));
    let bad = std::sync::Mutex::new(None::<i64>);
    par_ranges(b, 1, |range| {
        for pl in range {
            let (dys, is, gs) = unsafe { (dyp.slice(pl * ol, ol), ip.slice(pl * ol, ol), gp.slice(pl * il, il)) };
            gs.fill(F::ZERO);
            for (&g, &i) in dys.iter().zip(is.iter()) {
                if i < 0 || i as usize >= il {
                    *bad.lock().unwrap_or_else(|e| e.into_inner()) = Some(i);
                    continue;
                }
                gs[i as usize] = gs[i as usize] + g;
            }
        }
    });
    if let Some(i) = bad.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(err("max_pool_backward", format!("index {i} out of range for a plane of {il} elements")));
    }
    gi.finish(grad_input)
}

/// Average pooling (no dilation): the divisor is `divisor_override`, else the window size
/// clipped to the padded input (`count_include_pad`) or to the input.
pub fn avg_pool(out: &View, input: &View, p: &PoolParams, count_include_pad: bool, divisor_override: Option<i64>) -> Result<(), KernelError> {
    const OP: &str = "avg_pool";
    let nd = p.kernel.len();
    p.check(OP, nd)?;
    if input.dtype == DType::I64 && out.dtype == DType::I64 {
        out.validate(OP)?;
        input.validate(OP)?;
    } else {
        check_float(OP, &[out, input])?;
    }
    let b = planes(OP, input, nd)?;
    let want = with_spatial(input, nd, p.output_size(spatial(input, nd)));
    if out.sizes != want {
        return Err(err(OP, format!("expected an output of {want:?}, got {:?}", out.sizes)));
    }
    if out.numel() == 0 {
        return Ok(());
    }
    if input.dtype == DType::I64 {
        return avg_int(out, input, p, count_include_pad, divisor_override, b);
    }
    match float_compute(&[out, input]) {
        DType::F64 => avg::<f64>(out, input, p, count_include_pad, divisor_override, b, false),
        _ => avg::<f32>(out, input, p, count_include_pad, divisor_override, b, false),
    }
}

/// The gradient of [`avg_pool`]: each output's gradient spread evenly over its window.
pub fn avg_pool_backward(grad_input: &View, grad_out: &View, p: &PoolParams, count_include_pad: bool, divisor_override: Option<i64>) -> Result<(), KernelError> {
    const OP: &str = "avg_pool_backward";
    let nd = p.kernel.len();
    p.check(OP, nd)?;
    check_float(OP, &[grad_input, grad_out])?;
    let b = planes(OP, grad_input, nd)?;
    let want = with_spatial(grad_input, nd, p.output_size(spatial(grad_input, nd)));
    if grad_out.sizes != want {
        return Err(err(OP, format!("expected grad_output of {want:?}, got {:?}", grad_out.sizes)));
    }
    grad_input.check_writable(OP)?;
    match float_compute(&[grad_input, grad_out]) {
        DType::F64 => avg::<f64>(grad_out, grad_input, p, count_include_pad, divisor_override, b, true),
        _ => avg::<f32>(grad_out, grad_input, p, count_include_pad, divisor_override, b, true),
    }
}

/// Forward (`backward == false`: `small` = out, `large` = input) or backward (`small` =
/// grad_out, `large` = grad_input, written).
#[allow(clippy::too_many_arguments)]
fn avg<F: Float>(small: &View, large: &View, p: &PoolParams, include_pad: bool, divisor: Option<i64>, b: usize, backward: bool) -> Result<(), KernelError> {
    let ct = F::DTYPE;
    let nd = p.kernel.len();
    let (inp, outs) = (pad3(spatial(large, nd), 1), pad3(spatial(small, nd), 1));
    let (il, ol) = ((inp[0] * inp[1] * inp[2]) as usize, (outs[0] * outs[1] * outs[2]) as usize);
    let (src, dst) = if backward {
        (Operand::of(small, ct)?, Operand::output(large, ct))
    } else {
        (Operand::of(large, ct)?, Operand::output(small, ct))
    };
    let (sp, dp) = (P(src.ptr::<F>()), P(dst.ptr::<F>()));
    par_ranges(b, 1, |range| {
        for pl in range {
            let (big, little) = if backward {
                unsafe { (dp.slice(pl * il, il), sp.slice(pl * ol, ol)) }
            } else {
                unsafe { (sp.slice(pl * il, il), dp.slice(pl * ol, ol)) }
            };
            if backward {
                big.fill(F::ZERO);
            }
            windows(inp, outs, p, |o, win, padded| {
                let div = divisor.unwrap_or(if include_pad { padded } else { win.len() });
                let inv = F::ONE / F::c(div as f64);
                mean_window(backward, big, &mut little[o], win, inv);
            });
        }
    });
    if backward {
        dst.finish(large)
    } else {
        dst.finish(small)
    }
}

/// [`avg_pool`] of int64: the window sum divided with truncation, as PyTorch CPU does.
fn avg_int(out: &View, input: &View, p: &PoolParams, include_pad: bool, divisor: Option<i64>, b: usize) -> Result<(), KernelError> {
    let nd = p.kernel.len();
    let (inp, outs) = (pad3(spatial(input, nd), 1), pad3(spatial(out, nd), 1));
    let (il, ol) = ((inp[0] * inp[1] * inp[2]) as usize, (outs[0] * outs[1] * outs[2]) as usize);
    let x = crate::dense::host_values::<i64>(input)?;
    let mut y = vec![0i64; b * ol];
    for pl in 0..b {
        let (xs, ys) = (&x[pl * il..(pl + 1) * il], &mut y[pl * ol..(pl + 1) * ol]);
        windows(inp, outs, p, |o, win, padded| {
            let div = divisor.unwrap_or(if include_pad { padded } else { win.len() });
            let mut sum = 0i64;
            win.each(|i| sum = sum.wrapping_add(xs[i]));
            ys[o] = if div == 0 { 0 } else { sum.wrapping_div(div) };
        });
    }
    crate::dense::store_values(out, &y)
}

/// Adaptive max pooling of planes `[B, in..]` to `[B, out..]` with the flat in-plane index of
/// each maximum (windows as in [`adaptive_avg_pool`]; NaN wins as in [`max_pool`]). The
/// backward is [`max_pool_backward`].
pub fn adaptive_max_pool(out: &View, indices: &View, input: &View, nd: usize) -> Result<(), KernelError> {
    const OP: &str = "adaptive_max_pool";
    check_float(OP, &[out, input])?;
    indices.validate(OP)?;
    let lead = input.sizes.len().saturating_sub(nd);
    if !(1..=3).contains(&nd) || lead == 0 || out.sizes.len() != input.sizes.len() || out.sizes[..lead] != input.sizes[..lead] {
        return Err(err(OP, format!("expected planes of equal count, got {:?} and {:?}", input.sizes, out.sizes)));
    }
    if indices.sizes != out.sizes || indices.dtype != DType::I64 || !indices.is_contiguous() {
        return Err(err(OP, format!("expected contiguous i64 indices of {:?}", out.sizes)));
    }
    out.check_writable(OP)?;
    if out.numel() == 0 {
        return Ok(());
    }
    match float_compute(&[out, input]) {
        DType::F64 => adaptive_max::<f64>(out, indices, input, nd),
        _ => adaptive_max::<f32>(out, indices, input, nd),
    }
}

/// One average-pooling window: forward, `out = sum(big[win]) * inv`; backward (`big` is the
/// gradient of the input), `big[win] += out * inv`.
#[inline]
fn mean_window<F: Float, W: Positions + ?Sized>(backward: bool, big: &mut [F], out: &mut F, win: &W, inv: F) {
    if backward {
        let g = *out * inv;
        win.each(|i| big[i] = big[i] + g);
    } else {
        let mut s = F::ZERO;
        win.each(|i| s = s + big[i]);
        *out = s * inv;
    }
}

/// The input positions of a window, in order: a [`Window`] box or a list.
trait Positions {
    fn each(&self, f: impl FnMut(usize));
}

impl Positions for Window {
    fn each(&self, f: impl FnMut(usize)) {
        self.for_each(f, false)
    }
}

impl Positions for [usize] {
    fn each(&self, f: impl FnMut(usize)) {
        self.iter().copied().for_each(f)
    }
}

/// Every output position of one plane of adaptive pooling with its window (flat input
/// indices, in order): window `o` of a dim covers `floor(o * I / O) .. ceil((o + 1) * I / O)`.
fn adaptive_windows(inp: [i64; 3], outs: [i64; 3], mut f: impl FnMut(usize, &[usize])) {
    let range = |o: i64, i: i64, n: i64| ((o * i).div_euclid(n), ((o + 1) * i + n - 1).div_euclid(n));
    let (mut win, mut o) = (Vec::new(), 0);
    for oz in 0..outs[0] {
        let (z0, z1) = range(oz, inp[0], outs[0]);
        for oy in 0..outs[1] {
            let (y0, y1) = range(oy, inp[1], outs[1]);
            for ox in 0..outs[2] {
                let (x0, x1) = range(ox, inp[2], outs[2]);
                win.clear();
                for z in z0..z1 {
                    for y in y0..y1 {
                        win.extend((x0..x1).map(|x| ((z * inp[1] + y) * inp[2] + x) as usize));
                    }
                }
                f(o, &win);
                o += 1;
            }
        }
    }
}

fn adaptive_max<F: Float>(out: &View, indices: &View, input: &View, nd: usize) -> Result<(), KernelError> {
    let (inp, outs) = (pad3(spatial(input, nd), 1), pad3(spatial(out, nd), 1));
    let b = planes("adaptive_max_pool", input, nd)?;
    let (il, ol) = ((inp[0] * inp[1] * inp[2]) as usize, (outs[0] * outs[1] * outs[2]) as usize);
    let x = Operand::of(input, F::DTYPE)?;
    let y = Operand::output(out, F::DTYPE);
    let (xp, yp, ip) = (P(x.ptr::<F>()), P(y.ptr::<F>()), P(indices.ptr as *mut i64));
    par_ranges(b, 1, |planes| {
        for pl in planes {
            let (xs, ys, is) = unsafe { (xp.slice(pl * il, il), yp.slice(pl * ol, ol), ip.slice(pl * ol, ol)) };
            adaptive_windows(inp, outs, |o, win| {
                let (mut best, mut at) = (-F::INFINITY, win[0]);
                for &i in win {
                    let v = xs[i];
                    if v > best || v.is_nan() {
                        best = v;
                        at = i;
                    }
                }
                ys[o] = best;
                is[o] = at as i64;
            });
        }
    });
    y.finish(out)
}

/// Adaptive average pooling of planes `[B, in..]` to `[B, out..]`: window `o` of a dim covers
/// `floor(o * I / O) .. ceil((o + 1) * I / O)`. With `backward`, `out` is grad_output and
/// `input` grad_input (written). `nd` is the number of spatial dims.
pub fn adaptive_avg_pool(out: &View, input: &View, nd: usize, backward: bool) -> Result<(), KernelError> {
    const OP: &str = "adaptive_avg_pool";
    check_float(OP, &[out, input])?;
    let lead = input.sizes.len().saturating_sub(nd);
    if !(1..=3).contains(&nd) || lead == 0 || out.sizes.len() != input.sizes.len() || out.sizes[..lead] != input.sizes[..lead] {
        return Err(err(OP, format!("expected planes of equal count, got {:?} and {:?}", input.sizes, out.sizes)));
    }
    if backward {
        input.check_writable(OP)?;
    } else {
        out.check_writable(OP)?;
    }
    if out.numel() == 0 && !backward {
        return Ok(());
    }
    let ct = float_compute(&[out, input]);
    match ct {
        DType::F64 => adaptive::<f64>(out, input, nd, backward),
        _ => adaptive::<f32>(out, input, nd, backward),
    }
}

fn adaptive<F: Float>(out: &View, input: &View, nd: usize, backward: bool) -> Result<(), KernelError> {
    let ct = F::DTYPE;
    let (inp, outs) = (pad3(spatial(input, nd), 1), pad3(spatial(out, nd), 1));
    let b = planes("adaptive_avg_pool", input, nd)?;
    let (il, ol) = ((inp[0] * inp[1] * inp[2]) as usize, (outs[0] * outs[1] * outs[2]) as usize);
    let (src, dst) = if backward { (Operand::of(out, ct)?, Operand::output(input, ct)) } else { (Operand::of(input, ct)?, Operand::output(out, ct)) };
    let (sp, dp) = (P(src.ptr::<F>()), P(dst.ptr::<F>()));
    par_ranges(b, 1, |planes| {
        for pl in planes {
            let (big, little) = if backward {
                unsafe { (dp.slice(pl * il, il), sp.slice(pl * ol, ol)) }
            } else {
                unsafe { (sp.slice(pl * il, il), dp.slice(pl * ol, ol)) }
            };
            if backward {
                big.fill(F::ZERO);
            }
            adaptive_windows(inp, outs, |o, win| {
                let inv = F::ONE / F::c(win.len() as f64);
                mean_window(backward, big, &mut little[o], win, inv);
            });
        }
    });
    if backward {
        dst.finish(input)
    } else {
        dst.finish(out)
    }
}
