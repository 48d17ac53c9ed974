//! embedding_bag: sums, means or maxima of bags of embedding rows, and the gradients of the
//! weight and of the per-sample weights. Bags are given by offsets into a 1-d index list;
//! entries equal to `padding_idx` are skipped (and not counted in a mean). Sums run in f32
//! (f64 for f64) in index order.

use crate::dense::{float_compute, host_values, store_values, Operand, P};
use crate::math::Float;
use crate::view::{err, par_ranges, View};
use crate::{DType, KernelError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BagMode {
    Sum,
    Mean,
    Max,
}

/// The fixed parameters of one embedding_bag call.
#[derive(Clone, Copy, Debug)]
pub struct BagSpec {
    pub mode: BagMode,
    /// an index value whose rows are skipped (already wrapped to [0, num_embeddings))
    pub padding_idx: Option<i64>,
    pub include_last_offset: bool,
}

/// Host copies of indices and offsets, validated: every index in range, offsets starting at
/// 0, non-decreasing and within the index list.
struct Bags {
    indices: Vec<i64>,
    /// (start, end) in `indices` of each bag
    ranges: Vec<(usize, usize)>,
}

fn bags(op: &str, indices: &View, offsets: &View, rows: i64, include_last: bool) -> Result<Bags, KernelError> {
    let idx = host_values::<i64>(indices)?;
    let off = host_values::<i64>(offsets)?;
    if let Some(&bad) = idx.iter().find(|&&i| i < 0 || i >= rows) {
        return Err(err(op, format!("Expected idx >= 0 && idx < num_embeddings but found idx to be {bad}")));
    }
    if let Some(&first) = off.first() {
        if first != 0 {
            return Err(err(op, format!("offsets[0] has to be 0, i.e., the first sequence in the mini-batch has to start from position 0. However, got {first}")));
        }
    }
    let n = idx.len() as i64;
    if off.windows(2).any(|w| w[1] < w[0]) || off.last().is_some_and(|&l| l > n) {
        return Err(err(op, format!("offsets must be non-decreasing and at most the number of indices ({n})")));
    }
    let bags = if include_last { off.len().saturating_sub(1) } else { off.len() };
    let ranges = (0..bags)
        .map(|b| {
            let end = if b + 1 < off.len() { off[b + 1] } else { n };
            (off[b] as usize, end.max(off[b]) as usize)
        })
        .collect();
    Ok(Bags { indices: idx, ranges })
}

/// Forward: `out` [B, D]; `offset2bag` [N] (the bag of each index); `bag_size` [B] (entries
/// that are not padding, for mean and max; zeros for sum, as PyTorch CPU); `max_indices`
/// [B, D] for max (the row each maximum came from), else [B] zeros.
#[allow(clippy::too_many_arguments)]
pub fn embedding_bag(
    out: &View,
    offset2bag: &View,
    bag_size: &View,
    max_indices: &View,
    weight: &View,
    indices: &View,
    offsets: &View,
    per_sample_weights: Option<&View>,
    spec: BagSpec,
) -> Result<(), KernelError> {
    const OP: &str = "embedding_bag";
    for v in [out, offset2bag, bag_size, max_indices, weight, indices, offsets].into_iter().chain(per_sample_weights) {
        v.validate(OP)?;
    }
    for v in [out, offset2bag, bag_size, max_indices] {
        v.check_writable(OP)?;
    }
    if weight.sizes.len() != 2 || !weight.dtype.is_floating() || out.dtype != weight.dtype {
        return Err(err(OP, format!("expected a 2-d float weight and an output of its dtype, got {:?} {} and {}", weight.sizes, weight.dtype.name(), out.dtype.name())));
    }
    let (rows, dim) = (weight.sizes[0], weight.sizes[1]);
    let b = bags(OP, indices, offsets, rows, spec.include_last_offset)?;
    let nb = b.ranges.len();
    let want_max = if spec.mode == BagMode::Max { vec![nb as i64, dim] } else { vec![nb as i64] };
    if out.sizes != [nb as i64, dim] || offset2bag.sizes != [b.indices.len() as i64] || bag_size.sizes != [nb as i64] || max_indices.sizes != want_max {
        return Err(err(OP, "output shapes do not match the bags".into()));
    }
    if let Some(p) = per_sample_weights {
        if spec.mode != BagMode::Sum || p.sizes != [b.indices.len() as i64] {
            return Err(err(OP, "per_sample_weights need mode 'sum' and one weight per index".into()));
        }
    }
    let mut o2b = vec![0i64; b.indices.len()];
    let mut sizes = vec![0i64; nb];
    for (bag, &(s, e)) in b.ranges.iter().enumerate() {
        o2b[s..e].fill(bag as i64);
        if spec.mode != BagMode::Sum {
            sizes[bag] = b.indices[s..e].iter().filter(|&&i| Some(i) != spec.padding_idx).count() as i64;
        }
    }
    store_values(offset2bag, &o2b)?;
    store_values(bag_size, &sizes)?;
    match float_compute(&[weight]) {
        DType::F64 => forward::<f64>(out, max_indices, weight, per_sample_weights, &b, spec),
        _ => forward::<f32>(out, max_indices, weight, per_sample_weights, &b, spec),
    }
}

fn forward<F: Float>(out: &View, max_indices: &View, weight: &View, psw: Option<&View>, b: &Bags, spec: BagSpec) -> Result<(), KernelError> {
    let dim = weight.sizes[1] as usize;
    let w = Operand::of(weight, F::DTYPE)?;
    let scale: Option<Vec<F>> = psw.map(|p| host_values::<F>(p)).transpose()?;
    let dst = Operand::output(out, F::DTYPE);
    let (wp, dp) = (P(w.ptr::<F>()), P(dst.ptr::<F>()));
    let mut argmax = vec![0i64; if spec.mode == BagMode::Max { b.ranges.len() * dim } else { b.ranges.len() }];
    let ap = P(argmax.as_mut_ptr());
    par_ranges(b.ranges.len(), (4096 / dim.max(1)).max(1), |range| {
        for bag in range {
            let (s, e) = b.ranges[bag];
            let row = unsafe { dp.slice(bag * dim, dim) };
            row.fill(F::ZERO);
            let mut count = 0usize;
            for k in s..e {
                let i = b.indices[k];
                if Some(i) == spec.padding_idx {
                    continue;
                }
                let src = unsafe { std::slice::from_raw_parts(wp.get().add(i as usize * dim) as *const F, dim) };
                match spec.mode {
                    BagMode::Sum | BagMode::Mean => {
                        let c = scale.as_ref().map_or(F::ONE, |s| s[k]);
                        for (o, &v) in row.iter_mut().zip(src) {
                            *o = *o + if scale.is_some() { v * c } else { v };
                        }
                    }
                    BagMode::Max => {
                        let am = unsafe { ap.slice(bag * dim, dim) };
                        for d in 0..dim {
                            // the first maximum wins
                            if count == 0 || src[d] > row[d] {
                                row[d] = src[d];
                                am[d] = i;
                            }
                        }
                    }
                }
                count += 1;
            }
            if spec.mode == BagMode::Mean && count > 0 {
                let c = F::c(count as f64);
                row.iter_mut().for_each(|o| *o = *o / c);
            }
        }
    });
    store_values(max_indices, &argmax)?;
    dst.finish(out)
}

/// The gradient of the weight, `grad_weight` [num_embeddings, D] (overwritten), from `grad`
/// [B, D] and the forward's `offset2bag`, `bag_size` and `max_indices`. With
/// `scale_grad_by_freq`, each row's gradient is divided by how often its index occurs.
#[allow(clippy::too_many_arguments)]
pub fn embedding_bag_backward(
    grad_weight: &View,
    grad: &View,
    indices: &View,
    offset2bag: &View,
    bag_size: &View,
    max_indices: &View,
    per_sample_weights: Option<&View>,
    mode: BagMode,
    padding_idx: Option<i64>,
    scale_grad_by_freq: bool,
) -> Result<(), KernelError> {
    const OP: &str = "embedding_bag_backward";
    for v in [grad_weight, grad, indices, offset2bag, bag_size, max_indices].into_iter().chain(per_sample_weights) {
        v.validate(OP)?;
    }
    grad_weight.check_writable(OP)?;
    if grad_weight.sizes.len() != 2 || grad.sizes.len() != 2 || grad.sizes[1] != grad_weight.sizes[1] || !grad.dtype.is_floating() || grad.dtype != grad_weight.dtype {
        return Err(err(OP, format!("expected grad [B, D] and grad_weight [V, D] of one float dtype, got {:?} and {:?}", grad.sizes, grad_weight.sizes)));
    }
    let (rows, nb) = (grad_weight.sizes[0], grad.sizes[0]);
    let idx = host_values::<i64>(indices)?;
    let o2b = host_values::<i64>(offset2bag)?;
    let sizes = host_values::<i64>(bag_size)?;
    if o2b.len() != idx.len() || sizes.len() != nb as usize || idx.iter().any(|&i| i < 0 || i >= rows) || o2b.iter().any(|&b| b < 0 || b >= nb) {
        return Err(err(OP, "indices, offset2bag and bag_size do not match the gradient".into()));
    }
    let argmax = if mode == BagMode::Max {
        if max_indices.sizes != grad.sizes {
            return Err(err(OP, format!("max_indices must have the gradient's shape {:?}", grad.sizes)));
        }
        let a = host_values::<i64>(max_indices)?;
        if a.iter().any(|&i| i < 0 || i >= rows) {
            return Err(err(OP, "max_indices out of range".into()));
        }
        a
    } else {
        vec![]
    };
    match float_compute(&[grad]) {
        DType::F64 => backward::<f64>(grad_weight, grad, per_sample_weights, &idx, &o2b, &sizes, &argmax, mode, padding_idx, scale_grad_by_freq),
        _ => backward::<f32>(grad_weight, grad, per_sample_weights, &idx, &o2b, &sizes, &argmax, mode, padding_idx, scale_grad_by_freq),
    }
}

#[allow(clippy::too_many_arguments)]
fn backward<F: Float>(
    grad_weight: &View,
    grad: &View,
    psw: Option<&View>,
    idx: &[i64],
    o2b: &[i64],
    sizes: &[i64],
    argmax: &[i64],
    mode: BagMode,
    padding_idx: Option<i64>,
    by_freq: bool,
) -> Result<(), KernelError> {
    let (rows, dim) = (grad_weight.sizes[0] as usize, grad_weight.sizes[1] as usize);
    let g = Operand::of(grad, F::DTYPE)?;
    let scale: Option<Vec<F>> = psw.map(|p| host_values::<F>(p)).transpose()?;
    let mut freq = vec![0i64; if by_freq { rows } else { 0 }];
    for &i in idx.iter().filter(|_| by_freq) {
        freq[i as usize] += 1;
    }
    let dst = Operand::output(grad_weight, F::DTYPE);
    let (gp, dp) = (P(g.ptr::<F>()), P(dst.ptr::<F>()));
    // each task owns a range of columns of every row: no two write one element
    par_ranges(dim, 16, |cols| {
        let at = |r: usize, d: usize| dp.at(r * dim + d);
        for r in 0..rows {
            for d in cols.clone() {
                unsafe { *at(r, d) = F::ZERO };
            }
        }
        if mode == BagMode::Max {
            for (bag, &n) in sizes.iter().enumerate() {
                if n == 0 {
                    continue;
                }
                for d in cols.clone() {
                    let r = argmax[bag * dim + d] as usize;
                    unsafe { *at(r, d) = *at(r, d) + *gp.at(bag * dim + d) };
                }
            }
            return;
        }
        for (k, (&i, &bag)) in idx.iter().zip(o2b).enumerate() {
            if Some(i) == padding_idx {
                continue;
            }
            let mut c = scale.as_ref().map_or(F::ONE, |s| s[k]);
            if mode == BagMode::Mean {
                c = c / F::c(sizes[bag as usize] as f64);
            }
            if by_freq {
                c = c / F::c(freq[i as usize] as f64);
            }
            for d in cols.clone() {
                let v = unsafe { *gp.at(bag as usize * dim + d) };
                unsafe { *at(i as usize, d) = *at(i as usize, d) + v * c };
            }
        }
    });
    dst.finish(grad_weight)
}

/// The gradient of the per-sample weights (mode sum): `grad_psw[k] = <grad[bag(k)],
/// weight[indices[k]]>`, 0 for padding entries.
pub fn embedding_bag_psw_backward(grad_psw: &View, grad: &View, weight: &View, indices: &View, offsets: &View, padding_idx: Option<i64>, include_last: bool) -> Result<(), KernelError> {
    const OP: &str = "embedding_bag_per_sample_weights_backward";
    for v in [grad_psw, grad, weight, indices, offsets] {
        v.validate(OP)?;
    }
    grad_psw.check_writable(OP)?;
    if weight.sizes.len() != 2 || grad.sizes.len() != 2 || grad.sizes[1] != weight.sizes[1] || !weight.dtype.is_floating() {
        return Err(err(OP, format!("expected grad [B, D] and weight [V, D], got {:?} and {:?}", grad.sizes, weight.sizes)));
    }
    let b = bags(OP, indices, offsets, weight.sizes[0], include_last)?;
    if grad_psw.sizes != [b.indices.len() as i64] || grad.sizes[0] != b.ranges.len() as i64 {
        return Err(err(OP, "gradient shapes do not match the bags".into()));
    }
    let (gw, gg) = (host_values::<f64>(weight)?, host_values::<f64>(grad)?);
    let dim = weight.sizes[1] as usize;
    let single = float_compute(&[weight]) != DType::F64;
    let mut out = vec![0f64; b.indices.len()];
    for (bag, &(s, e)) in b.ranges.iter().enumerate() {
        for k in s..e {
            let i = b.indices[k];
            if Some(i) == padding_idx {
                continue;
            }
            let (w, g) = (&gw[i as usize * dim..][..dim], &gg[bag * dim..][..dim]);
            out[k] = if single {
                w.iter().zip(g).fold(0f32, |a, (&x, &y)| a + (x as f32) * (y as f32)) as f64
            } else {
                w.iter().zip(g).map(|(x, y)| x * y).sum()
            };
        }
    }
    store_values(grad_psw, &out)
}
