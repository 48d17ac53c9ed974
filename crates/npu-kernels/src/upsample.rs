//! Interpolation of the last 1–3 dims (what `F.interpolate` calls): nearest, nearest-exact,
//! (bi/tri)linear and bicubic, forward and backward. Every mode is separable: along each dim an
//! output index reads a few input indices ("taps") with weights, computed once per dim with
//! PyTorch CPU's formulas and rounding (float index math for nearest, the compute type for
//! linear and cubic weights). An output is the nested weighted sum, outermost dim outside, in
//! the order CPU sums it; the backward adds each output gradient times its weights into the
//! input positions it read.

use crate::dense::{float_compute, Operand, P};
use crate::math::Float;
use crate::view::{err, par_ranges, View};
use crate::{DType, KernelError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interp {
    /// `mode="nearest"`: `floor(dst * scale)` (PyTorch's legacy rule).
    Nearest,
    /// `mode="nearest-exact"`: `floor((dst + 0.5) * scale)`.
    NearestExact,
    /// linear, bilinear, trilinear.
    Linear { align_corners: bool },
    /// bicubic (A = -0.75, borders clamped).
    Cubic { align_corners: bool },
}

impl Interp {
    fn taps(self) -> usize {
        match self {
            Interp::Nearest | Interp::NearestExact => 1,
            Interp::Linear { .. } => 2,
            Interp::Cubic { .. } => 4,
        }
    }
}

/// The input-per-output ratio: `scale` when given and positive is the output-per-input factor.
fn scale_value<F: Float>(input: i64, output: i64, scale: Option<f64>) -> F {
    match scale {
        Some(s) if s > 0.0 => F::c(1.0 / s),
        _ => F::c(input as f64) / F::c(output as f64),
    }
}

/// PyTorch's `area_pixel_compute_scale`.
fn area_scale<F: Float>(input: i64, output: i64, align_corners: bool, scale: Option<f64>) -> F {
    if align_corners {
        if output > 1 {
            F::c((input - 1) as f64) / F::c((output - 1) as f64)
        } else {
            F::ZERO
        }
    } else {
        scale_value::<F>(input, output, scale)
    }
}

/// PyTorch's `area_pixel_compute_source_index`.
fn source_index<F: Float>(scale: F, dst: i64, align_corners: bool, cubic: bool) -> F {
    if align_corners {
        scale * F::c(dst as f64)
    } else {
        let src = scale * (F::c(dst as f64) + F::c(0.5)) - F::c(0.5);
        if !cubic && src < F::ZERO {
            F::ZERO
        } else {
            src
        }
    }
}

/// The input index below `real` (at most `input - 1`) and the fraction past it, in [0, 1].
fn guard<F: Float>(real: F, input: i64) -> (i64, F) {
    let i = (real.floor().to_f64() as i64).min(input - 1);
    let mut lambda = real - F::c(i as f64);
    if lambda < F::ZERO {
        lambda = F::ZERO;
    }
    if lambda > F::ONE {
        lambda = F::ONE;
    }
    (i, lambda)
}

/// The cubic convolution weights (A = -0.75) of the 4 taps around a point `t` past the second.
fn cubic_weights<F: Float>(t: F) -> [F; 4] {
    let a = F::c(-0.75);
    let (two, three, four, five, eight) = (F::c(2.0), F::c(3.0), F::c(4.0), F::c(5.0), F::c(8.0));
    let near = |x: F| ((a + two) * x - (a + three)) * x * x + F::ONE;
    let far = |x: F| ((a * x - five * a) * x + eight * a) * x - four * a;
    let x1 = F::ONE - t;
    [far(t + F::ONE), near(t), near(x1), far(x1 + F::ONE)]
}

/// Taps of one dim: `k` (input index, weight) pairs per output index, flattened.
struct Taps<F> {
    k: usize,
    index: Vec<usize>,
    weight: Vec<F>,
}

fn dim_taps<F: Float>(mode: Interp, input: i64, output: i64, scale: Option<f64>) -> Taps<F> {
    let k = mode.taps();
    let (mut index, mut weight) = (Vec::with_capacity(k * output as usize), Vec::with_capacity(k * output as usize));
    for o in 0..output {
        match mode {
            Interp::Nearest => {
                // float index math, as PyTorch CPU, with its exact shortcuts
                let i = if output == input {
                    o
                } else if output == 2 * input {
                    o >> 1
                } else {
                    let s = scale_value::<f32>(input, output, scale);
                    ((o as f32 * s).floor() as i64).min(input - 1)
                };
                index.push(i as usize);
                weight.push(F::ONE);
            }
            Interp::NearestExact => {
                let s = scale_value::<f32>(input, output, scale);
                let i = ((((o as f64 + 0.5) * s as f64) as f32).floor() as i64).min(input - 1);
                index.push(i as usize);
                weight.push(F::ONE);
            }
            Interp::Linear { align_corners } => {
                let s = area_scale::<F>(input, output, align_corners, scale);
                let (i0, l1) = guard(source_index(s, o, align_corners, false), input);
                let i1 = i0 + (i0 < input - 1) as i64;
                index.extend([i0 as usize, i1 as usize]);
                weight.extend([F::ONE - l1, l1]);
            }
            Interp::Cubic { align_corners } => {
                let s = area_scale::<F>(input, output, align_corners, scale);
                let (i, t) = guard(source_index(s, o, align_corners, true), input);
                for (j, w) in cubic_weights(t).into_iter().enumerate() {
                    index.push((i - 1 + j as i64).clamp(0, input - 1) as usize);
                    weight.push(w);
                }
            }
        }
    }
    Taps { k, index, weight }
}

/// The three taps tables (leading dims of size 1 when fewer than 3 are interpolated).
struct Plan<F> {
    planes: usize,
    inp: [usize; 3],
    out: [usize; 3],
    taps: [Taps<F>; 3],
}

fn plan<F: Float>(op: &str, small: &View, large: &View, mode: Interp, scales: &[Option<f64>]) -> Result<Plan<F>, KernelError> {
    let nd = scales.len();
    let rank = large.sizes.len();
    if !(1..=3).contains(&nd) || rank <= nd || small.sizes.len() != rank || small.sizes[..rank - nd] != large.sizes[..rank - nd] {
        return Err(err(op, format!("expected views of equal leading dims and {nd} interpolated dims, got {:?} and {:?}", large.sizes, small.sizes)));
    }
    let (mut inp, mut out) = ([1usize; 3], [1usize; 3]);
    for d in 0..nd {
        let (i, o) = (large.sizes[rank - nd + d], small.sizes[rank - nd + d]);
        if i <= 0 || o <= 0 {
            return Err(err(op, format!("input and output sizes should be greater than 0, but got input {:?} and output {:?}", large.sizes, small.sizes)));
        }
        inp[3 - nd + d] = i as usize;
        out[3 - nd + d] = o as usize;
    }
    let one = || Taps { k: 1, index: vec![0], weight: vec![F::ONE] };
    let dim = |d: usize| {
        if d < 3 - nd {
            one()
        } else {
            dim_taps::<F>(mode, inp[d] as i64, out[d] as i64, scales[d - (3 - nd)])
        }
    };
    Ok(Plan { planes: large.sizes[..rank - nd].iter().product::<i64>() as usize, inp, out, taps: [dim(0), dim(1), dim(2)] })
}

/// `out = interpolate(input)`; `scales` has one entry per interpolated dim (the trailing ones).
pub fn upsample(out: &View, input: &View, mode: Interp, scales: &[Option<f64>]) -> Result<(), KernelError> {
    const OP: &str = "upsample";
    input.validate(OP)?;
    out.validate(OP)?;
    out.check_writable(OP)?;
    let nearest = matches!(mode, Interp::Nearest | Interp::NearestExact);
    let ok = |d: DType| d.is_floating() || (nearest && d == DType::U8);
    if !ok(input.dtype) || out.dtype != input.dtype {
        return Err(err(OP, format!("\"upsample\" not implemented for '{}' (output '{}')", input.dtype.name(), out.dtype.name())));
    }
    match float_compute(&[out, input]) {
        DType::F64 => forward::<f64>(out, input, plan(OP, out, input, mode, scales)?),
        _ => forward::<f32>(out, input, plan(OP, out, input, mode, scales)?),
    }
}

fn forward<F: Float>(out: &View, input: &View, p: Plan<F>) -> Result<(), KernelError> {
    if out.numel() == 0 {
        return Ok(());
    }
    let src = Operand::of(input, F::DTYPE)?;
    let dst = Operand::output(out, F::DTYPE);
    let (sp, dp) = (P(src.ptr::<F>()), P(dst.ptr::<F>()));
    let [tz, ty, _] = &p.taps;
    let (il, ol, w) = (p.inp.iter().product::<usize>(), p.out.iter().product::<usize>(), p.out[2]);
    let rows = p.out[0] * p.out[1];
    // one task per output row (plane, z, y): planes alone may be fewer than the threads
    par_ranges(p.planes * rows, (4096 / w).max(1), |range| {
        let mut lines = Lines::new(2 * tz.k * ty.k, w);
        let (mut acc, mut acc_y) = (vec![F::ZERO; w], vec![F::ZERO; w]);
        for r in range {
            let (plane, zy) = (r / rows, r % rows);
            let (z, y) = (zy / p.out[1], zy % p.out[1]);
            let x_in = unsafe { std::slice::from_raw_parts(sp.get().add(plane * il) as *const F, il) };
            // the sums of the original per-output loop, in its order, a row at a time
            acc.fill(F::ZERO);
            for a in z * tz.k..(z + 1) * tz.k {
                acc_y.fill(F::ZERO);
                for b in y * ty.k..(y + 1) * ty.k {
                    let line = tz.index[a] * p.inp[1] + ty.index[b];
                    let h = lines.get(plane * il + line, x_in, line * p.inp[2], &p);
                    let wy = ty.weight[b];
                    acc_y.iter_mut().zip(h).for_each(|(s, &v)| *s = *s + v * wy);
                }
                let wz = tz.weight[a];
                acc.iter_mut().zip(&acc_y).for_each(|(s, &v)| *s = *s + v * wz);
            }
            unsafe { dp.slice(plane * ol + zy * w, w) }.copy_from_slice(&acc);
        }
    });
    dst.finish(out)
}

/// Input rows interpolated along x, kept for the next output rows that read them (each input
/// row serves several output rows: four at a bilinear 2x upsampling). Keyed by the row's
/// element offset in the input; replaced round-robin.
struct Lines<F> {
    keys: Vec<usize>,
    rows: Vec<Vec<F>>,
    next: usize,
}

impl<F: Float> Lines<F> {
    fn new(capacity: usize, width: usize) -> Self {
        Lines { keys: vec![usize::MAX; capacity], rows: vec![vec![F::ZERO; width]; capacity], next: 0 }
    }

    /// Row `key` (at `start` in the plane `x_in`): for each output x, `sum_c in[x tap c] *
    /// weight c`, summed from zero in tap order.
    fn get(&mut self, key: usize, x_in: &[F], start: usize, p: &Plan<F>) -> &[F] {
        if let Some(i) = self.keys.iter().position(|&k| k == key) {
            return &self.rows[i];
        }
        let i = self.next;
        self.next = (i + 1) % self.keys.len();
        self.keys[i] = key;
        let tx = &p.taps[2];
        let src = &x_in[start..start + p.inp[2]];
        for ((o, idx), wt) in self.rows[i].iter_mut().zip(tx.index.chunks_exact(tx.k)).zip(tx.weight.chunks_exact(tx.k)) {
            *o = idx.iter().zip(wt).fold(F::ZERO, |s, (&j, &w)| s + src[j] * w);
        }
        &self.rows[i]
    }
}

/// The gradient of [`upsample`]: `grad_input` (overwritten) accumulates each output gradient
/// times the weights of the input positions that output read.
pub fn upsample_backward(grad_input: &View, grad_out: &View, mode: Interp, scales: &[Option<f64>]) -> Result<(), KernelError> {
    const OP: &str = "upsample_backward";
    grad_input.validate(OP)?;
    grad_out.validate(OP)?;
    grad_input.check_writable(OP)?;
    if !grad_input.dtype.is_floating() || grad_out.dtype != grad_input.dtype {
        return Err(err(OP, format!("\"upsample_backward\" not implemented for '{}' (grad_output '{}')", grad_input.dtype.name(), grad_out.dtype.name())));
    }
    match float_compute(&[grad_input, grad_out]) {
        DType::F64 => backward::<f64>(grad_input, grad_out, plan(OP, grad_out, grad_input, mode, scales)?),
        _ => backward::<f32>(grad_input, grad_out, plan(OP, grad_out, grad_input, mode, scales)?),
    }
}

fn backward<F: Float>(grad_input: &View, grad_out: &View, p: Plan<F>) -> Result<(), KernelError> {
    if grad_input.numel() == 0 {
        return Ok(());
    }
    let src = Operand::of(grad_out, F::DTYPE)?;
    let dst = Operand::output(grad_input, F::DTYPE);
    let (sp, dp) = (P(src.ptr::<F>()), P(dst.ptr::<F>()));
    let [tz, ty, tx] = &p.taps;
    let (il, ol) = (p.inp.iter().product::<usize>(), p.out.iter().product::<usize>());
    // outputs of a plane scatter into shared input positions: one task per plane
    par_ranges(p.planes, 1, |planes| {
        for plane in planes {
            let g = unsafe { std::slice::from_raw_parts(sp.get().add(plane * ol) as *const F, ol) };
            let gi = unsafe { dp.slice(plane * il, il) };
            gi.fill(F::ZERO);
            let mut o = 0;
            for z in 0..p.out[0] {
                for y in 0..p.out[1] {
                    for x in 0..p.out[2] {
                        let v = g[o];
                        o += 1;
                        for a in z * tz.k..(z + 1) * tz.k {
                            for b in y * ty.k..(y + 1) * ty.k {
                                let wzy = tz.weight[a] * ty.weight[b];
                                let base = (tz.index[a] * p.inp[1] + ty.index[b]) * p.inp[2];
                                for c in x * tx.k..(x + 1) * tx.k {
                                    let t = &mut gi[base + tx.index[c]];
                                    *t = *t + wzy * tx.weight[c] * v;
                                }
                            }
                        }
                    }
                }
            }
        }
    });
    dst.finish(grad_input)
}
